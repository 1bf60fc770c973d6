"""Where things live: the project root, each stage's output folders, and atomic publication.

A stage's name is also its output folder (`data/<stage>/`), its metrics file
(`metrics/<stage>.json`) and its report folder (`reports/<stage>/`). Outputs are built in a
temporary sibling folder and renamed into place only on success, so a failed run never leaves a
partial output that looks valid.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding dvc.yaml or params.yaml."""
    env = os.environ.get("PUBMEDLM_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() or (folder / "params.yaml").is_file():
            return folder
    return here


def data_dir(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "data" / stage


def metrics_path(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "metrics" / f"{stage}.json"


def reports_dir(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "reports" / stage


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `final`, on error it is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; a published output is as readable as any folder
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (sorted keys, stable bytes for DVC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=True, allow_unicode=True), encoding="utf-8")


def clear_stale(path: Path) -> None:
    """Remove an earlier output before a run starts, so nothing stale survives a failure."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
