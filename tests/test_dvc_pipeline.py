"""The corpus and vocab stages under real DVC, in a temporary git repository (the repo's own dvc.yaml).

`dvc repro` twice (the second does nothing), a vocab param change reruns only vocab, and
`dvc push` then `dvc pull` in a fresh clone restores corpus and vocab byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = [pytest.mark.dvc, pytest.mark.integration]

TINY = {
    "corpus": {
        "inputs": [
            "corpus/pubmed_xml/baseline/pubmed26n1334.xml.gz",
            "corpus/pubmed_xml/updatefiles/pubmed26n1335.xml.gz",
            "corpus/pubmed_abstracts/ohsumed_single_23.tar.gz",
        ],
        "min_words": 100,
        "max_documents": 600,
        "heldout_fraction": 0.1,
    },
    "vocab": {"vocab_size": 3000, "heldout_max_documents": 50},
    "runtime": {"progress": False},
    "finetune": {"datasets": ["NCBI-disease"]},  # dvc.yaml's tune/finetune `foreach` reads this list
}


def _sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def repo(tmp_path: Path, mirror: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "platform", root / "platform", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(TINY))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBMEDLM_PROJECT_ROOT", "MLFLOW_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PUBMEDLM_DATA_MIRROR=str(mirror),
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
    )
    _sh(["git", "init", "-q"], root, env)
    _sh([sys.executable, "-m", "dvc", "init", "-q"], root, env)
    _sh(["git", "add", "-A"], root, env)
    _sh(["git", "commit", "-qm", "init"], root, env)
    return root, env


def test_repro_idempotent_selective_and_push_pull(repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    first = _sh([*dvc, "repro", "vocab"], root, env)
    assert "Running stage 'corpus'" in first and "Running stage 'vocab'" in first
    assert (root / "data/vocab/vocab.txt").is_file() and (root / "metrics/corpus.json").is_file()

    second = _sh([*dvc, "repro", "vocab"], root, env)
    assert "Running stage" not in second, second

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["vocab"]["vocab_size"] = 2500
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    third = _sh([*dvc, "repro", "vocab"], root, env)
    assert "Running stage 'vocab'" in third and "Running stage 'corpus'" not in third, third

    remote = tmp_path / "remote"
    _sh([*dvc, "remote", "add", "-d", "local", str(remote)], root, env)
    _sh(["git", "add", "-A"], root, env)
    _sh(["git", "commit", "-qm", "repro"], root, env)
    _sh([*dvc, "push", "corpus", "vocab"], root, env)

    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    assert not (clone / "data/corpus").exists()
    _sh([*dvc, "pull", "corpus", "vocab"], clone, env)
    for out in ("data/corpus", "data/vocab", "reports/vocab"):
        assert _files(clone / out) == _files(root / out), f"{out} differs after dvc pull"
    status = _sh([*dvc, "status", "vocab"], clone, env)
    assert "up to date" in status.lower(), status
