"""Where code lives, checked: the package's floors, its size rules and who may talk to MLflow.

Floors, from the top: the CLI and `evaluate_model` (orchestration over stages), then `stages/`
(one glue module per DVC stage), then the domain packages and plumbing. Nothing below a floor
imports it, a stage never imports another stage, no module imports itself back through others,
and the size rules of the house style hold (modules <= 400 lines, functions <= 60, stage
modules <= 150). Imports inside functions count: they run too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_dvc_deps import PACKAGE, SOURCE, _imported

TOP = {"pubmedlm.cli", "pubmedlm.cli_study", "pubmedlm.evaluate_model"}  # the entry points
MLFLOW_HOMES = ("pubmedlm.infra.tracking", "pubmedlm.registry")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()
GRAPH = {name: _imported(path, name) - {name} for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    assert _cycles() == []


def test_the_check_finds_a_circle() -> None:
    GRAPH["pubmedlm.config"] = GRAPH["pubmedlm.config"] | {"pubmedlm.project"}
    GRAPH["pubmedlm.project"] = GRAPH["pubmedlm.project"] | {"pubmedlm.config"}
    try:
        assert ["pubmedlm.config", "pubmedlm.project"] in _cycles()
    finally:
        GRAPH.update({name: _imported(MODULES[name], name) - {name}
                      for name in ("pubmedlm.config", "pubmedlm.project")})


def test_no_arrow_up_to_a_stage_or_the_cli() -> None:
    wrong = []
    for name, deps in GRAPH.items():
        for dep in deps:
            is_stage = dep.startswith("pubmedlm.stages.")
            if ((dep in TOP and name not in TOP)
                    or (is_stage and not (name in TOP or name == "pubmedlm.stages"))):
                wrong.append(f"{name} -> {dep}")
    assert wrong == []


def test_mlflow_is_imported_only_by_tracking_and_the_model_registry() -> None:
    importers = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m.split(".")[0] == "mlflow" for m in mods):
                importers.append(name)
    assert importers and all(n.startswith(MLFLOW_HOMES) for n in importers), sorted(set(importers))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_size_rules(name: str) -> None:
    path = MODULES[name]
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    limit = 150 if name.startswith("pubmedlm.stages.") else 400
    assert lines <= limit, f"{path.relative_to(SOURCE)}: {lines} lines (at most {limit})"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 60]
    assert not long, f"{path.relative_to(SOURCE)}: functions over 60 lines: {', '.join(long)}"
