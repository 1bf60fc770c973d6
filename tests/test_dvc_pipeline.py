"""The corpus and vocab stages under real DVC, in a temporary git repository (the repo's own dvc.yaml).

`dvc repro` twice (the second does nothing; the first runs blurb-data too, whose exports corpus and
vocab read), a vocab param change reruns only vocab, and `dvc push` then `dvc pull` in a fresh
clone restores blurb-data, corpus and vocab byte for byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from conftest import dvc_files as _files
from conftest import make_dvc_repo
from conftest import sh as _sh

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
    "blurb_data": {"datasets": ["NCBI-disease"]},  # upstream of corpus and vocab: one small dataset
    "finetune": {"datasets": ["NCBI-disease"]},  # dvc.yaml's tune/finetune `foreach` reads this list
}


@pytest.fixture
def repo(tmp_path: Path, mirror: Path) -> tuple[Path, dict[str, str]]:
    return make_dvc_repo(tmp_path, mirror, TINY)


def test_repro_idempotent_selective_and_push_pull(repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    first = _sh([*dvc, "repro", "vocab"], root, env)
    assert all(f"Running stage '{stage}'" in first for stage in ("blurb-data", "corpus", "vocab")), first
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
    _sh([*dvc, "push", "blurb-data", "corpus", "vocab"], root, env)

    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    assert not (clone / "data/corpus").exists()
    _sh([*dvc, "pull", "blurb-data", "corpus", "vocab"], clone, env)
    for out in ("data/blurb_data", "data/corpus", "data/vocab", "reports/vocab"):
        assert _files(clone / out) == _files(root / out), f"{out} differs after dvc pull"
    status = _sh([*dvc, "status", "vocab"], clone, env)
    assert "up to date" in status.lower(), status
