"""DVC dependencies that cannot drift: every module a stage runs is one of the stage's `deps`.

A stage's code is the import closure of the module its command runs inside `platform/pubmedlm`
(`pubmedlm <stage>`: `pubmedlm.stages.<stage>`; `pubmedlm blurb`: `pubmedlm.evaluate_model`;
imports inside functions count: they run too), the `__init__` of every package on the way, and
the packaged resource files those modules name. Each of them must be covered by a `deps` entry
of the stage in `dvc.yaml`: the file itself or a folder above it. Otherwise changing that code
would leave `dvc repro` reporting results of older code as up to date. The CLI (`cli.py`) only
parses arguments and dispatches: it is not a stage's dependency.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SOURCE = REPO / "platform"
PACKAGE = SOURCE / "pubmedlm"
RESOURCES = PACKAGE / "resources"


def _module_file(name: str) -> Path | None:
    base = SOURCE.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(path: Path, name: str) -> set[str]:
    """The pubmedlm modules `path` (module `name`) imports, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in out if m.split(".")[0] == "pubmedlm" and _module_file(m)}


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@cache
def closure(module: str) -> frozenset[Path]:
    """Files of `module`'s import closure inside pubmedlm, parent packages and named resources."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        for m in _with_parents(name) - seen:
            seen.add(m)
            todo.extend(_imported(_module_file(m), m) - seen)
    files = {_module_file(m) for m in seen}
    resources = {p.name: p for p in RESOURCES.iterdir() if p.is_file() and p.suffix != ".py"}
    for path in list(files):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in resources:
                files.add(resources[node.value])
    return frozenset(files)


def stages() -> dict[str, list[str]]:
    """dvc.yaml stage name -> its deps (a `foreach` stage's `${item}` deps are data, not code)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: [str(d) for d in (s.get("do", s).get("deps") or [])] for name, s in spec.items()}


def commands() -> dict[str, str]:
    """dvc.yaml stage name -> its command."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: " ".join(s.get("do", s)["cmd"].split()) for name, s in spec.items()}


def stage_module(stage: str) -> str:
    """The module a stage's command runs: `pubmedlm blurb ...` runs `evaluate_model` (the CLI only
    dispatches), `pubmedlm <name> ...` the stage module of that name."""
    words = commands()[stage].split()
    assert words[0] == "pubmedlm", f"dvc.yaml stage {stage!r} does not run a pubmedlm command"
    if words[1] == "blurb":
        return "pubmedlm.evaluate_model"
    return f"pubmedlm.stages.{words[1].replace('-', '_')}"


def uncovered(stage: str, deps: list[str]) -> list[str]:
    module = stage_module(stage)
    roots = [(REPO / d).resolve() for d in deps if "${" not in d]
    missing = []
    for path in sorted(closure(module)):
        if not any(path == r or r in path.parents for r in roots):
            missing.append(path.relative_to(REPO).as_posix())
    return missing


def test_every_pipeline_stage_has_a_stage_module() -> None:
    for name in stages():
        if stage_module(name) == "pubmedlm.evaluate_model":  # `pubmedlm blurb`: a baseline model's run
            continue
        assert stage_module(name) == f"pubmedlm.stages.{name.replace('-', '_')}", (
            f"dvc.yaml stage {name} does not run its own stage command")
        assert _module_file(stage_module(name)), f"dvc.yaml stage {name} has no module"


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_deps_cover_its_imports(stage: str) -> None:
    missing = uncovered(stage, stages()[stage])
    assert not missing, f"dvc.yaml stage {stage!r} runs code its deps do not list: {', '.join(missing)}"


def test_a_removed_dep_is_caught() -> None:
    """The check itself: dropping any code dep of the tune stage leaves an import uncovered."""
    deps = stages()["tune"]
    code = [d for d in deps if d.startswith("platform/")]
    assert code
    for dep in code:
        assert uncovered("tune", [d for d in deps if d != dep]), f"removing {dep} went unnoticed"


def test_closure_follows_function_level_and_relative_imports() -> None:
    files = {p.relative_to(PACKAGE).as_posix() for p in closure("pubmedlm.stages.finetune")}
    # the seed worker is imported at module level; fit (and through it the loop and optimizer) only
    # inside the worker function
    assert {"finetune/seeds.py", "finetune/fit.py", "train/loop.py", "train/optim.py"} <= files
    assert {"__init__.py", "finetune/__init__.py", "stages/__init__.py"} <= files
    assert "resources/blurb_tasks.yaml" in files


@pytest.mark.parametrize("path", ["params.yaml", "pipelines/profiles/paper.yaml"])
def test_every_stage_param_exists_in_params_yaml(path: str) -> None:
    """DVC refuses to record a stage whose `params` name a key params.yaml lacks: a field added to the
    config with a default but not to params.yaml breaks `dvc repro` (not the CLI, which has defaults).
    The paper profile is documented as a drop-in params.yaml, so it is held to the same rule."""
    params = yaml.safe_load((REPO / path).read_text())
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    missing = []
    for name, stage in pipeline["stages"].items():
        # a dict entry names another params file's keys: only params.yaml's are checked here
        for key in (e for e in stage.get("do", stage).get("params", []) if isinstance(e, str)):
            node = params
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(f"{name}: {key}")
                    break
                node = node[part]
    assert not missing, f"dvc.yaml names params that {path} lacks: {', '.join(missing)}"
