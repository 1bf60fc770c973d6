"""Lineage: what identifies the code and the data a run used.

- `git_state`: the commit and dirty flag of the checkout;
- `dvc_hash`: the hash DVC 3 records for a file or folder, computed the way DVC computes it;
- `lineage_hash`: a pipeline output's hash as `dvc.lock` records it, else computed (the one reader
  of DVC hashes: tracking tags, registry lineage and content ids all go through here);
- `lineage_tags`: the `git.*` and `dvc.<path>` tags a model version or run carries;
- `content_id`: what identifies a model or dataset folder (its DVC hash; a hub id stays its name).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml


def git_state(root: Path) -> dict[str, str]:
    """Commit and dirty flag of the code; 'unknown' outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
            capture_output=True, text=True, check=True,
        ).stdout
        return {"git.commit": commit, "git.dirty": str(bool(status.strip())).lower()}
    except (OSError, subprocess.CalledProcessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def dvc_hash(path: Path) -> str:
    """The hash DVC 3 records for `path` in dvc.lock: md5 of a file's bytes, or for a folder the
    md5 of its sorted (relpath, md5) listing with a `.dir` suffix."""
    if path.is_file():
        return _md5_file(path)
    entries = [
        {"md5": _md5_file(p), "relpath": p.relative_to(path).as_posix()}
        for p in sorted(path.rglob("*"))
        if p.is_file()
    ]
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(listing).hexdigest() + ".dir"


def _locked_hash(root: Path, rel: str) -> str | None:
    lock = root / "dvc.lock"
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path") == rel and out.get("md5"):
                return out["md5"]
    return None


def lineage_hash(root: Path, rel: str) -> str | None:
    """The DVC hash of `rel` (relative to the project root): from dvc.lock when a stage lists it
    as an output (no re-hashing of a large model), else computed; None when it does not exist."""
    locked = _locked_hash(root, rel)
    if locked:
        return locked
    path = root / rel
    return dvc_hash(path) if path.exists() else None


def content_id(path: str) -> str:
    """The DVC hash of a local model or dataset folder; anything else (a hub id) is its own id."""
    return dvc_hash(Path(path)) if Path(path).is_dir() else path


def lineage_tags(root: Path, paths: Iterable[str], params_file: str | Path) -> dict[str, str]:
    """`git.commit`, `git.dirty` and `dvc.<path>` for each existing path and the params file."""
    tags = dict(git_state(root))
    for rel in paths:
        h = lineage_hash(root, rel)
        if h:
            tags[f"dvc.{rel}"] = h
    params = (Path(params_file) if Path(params_file).is_absolute() else root / params_file).resolve()
    if params.is_file():
        rel = params.relative_to(root).as_posix() if params.is_relative_to(root) else params.name
        tags[f"dvc.{rel}"] = dvc_hash(params)
    return tags
