"""A shared DVC remote on an S3-compatible server (moto, a real HTTP server on localhost): the
pipeline's corpus, vocab and a (tiny) pretrained model built with `dvc repro` in one clone,
`dvc push`ed, and `dvc pull`ed in a fresh clone byte for byte. The keys come from the
environment only; the repository (git-tracked files) never holds them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import REPO, dvc_files, make_dvc_repo, sh
from services import S3Server

pytestmark = [pytest.mark.dvc, pytest.mark.integration, pytest.mark.server]

PARAMS = {
    "corpus": {"inputs": ["corpus/pubmed_abstracts/ohsumed_single_23.tar.gz"], "min_words": 100,
               "max_documents": 400, "heldout_fraction": 0.1},
    "vocab": {"vocab_size": 2000, "heldout_max_documents": 20},
    "pack": {"seq_lengths": [64], "nsp": False},
    "pretrain": {"init": "scratch",
                 "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
                           "max_position_embeddings": 64, "dropout": 0.1},
                 "phases": [{"seq_len": 64, "steps": 4, "global_batch": 8}], "eval_every": 4,
                 "eval_batches": 1, "checkpoint_every": 4, "log_every": 1},
    "blurb_data": {"datasets": ["NCBI-disease"]},  # upstream of corpus and vocab: one small dataset
    "finetune": {"datasets": ["NCBI-disease"]},
}


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    server = S3Server.start(tmp_path, ("dvc",))
    yield server
    server.stop()


def test_push_and_pull_through_s3_remote(s3: S3Server, mirror: Path, tmp_path: Path) -> None:
    ref = yaml.safe_load((REPO / "params.yaml").read_text())
    params = {**PARAMS, "runtime": {**ref["runtime"], "progress": False, "num_workers": 1,
                                    "cpus_per_worker": 2, "micro_batch_size": 8,
                                    "dvc_remote": "s3://dvc/pubmedlm", "dvc_remote_endpoint": s3.url}}
    root, env = make_dvc_repo(tmp_path, mirror, params)
    env = {**env, **{k: v for k, v in s3.env.items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"}}
    dvc = [sys.executable, "-m", "dvc"]
    pubmedlm = [sys.executable, "-m", "pubmedlm.cli"]
    sh([*dvc, "repro", "pretrain"], root, env)
    sh([*pubmedlm, "remote"], root, {**env, "PUBMEDLM_PROJECT_ROOT": str(root)})
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "repro"], root, env)
    tracked = subprocess.run(["git", "grep", "-I", "-l", s3.env["AWS_SECRET_ACCESS_KEY"]], cwd=root,
                             capture_output=True, text=True)
    assert tracked.stdout == "", f"the S3 secret is in tracked files: {tracked.stdout}"
    sh([*dvc, "push", "blurb-data", "corpus", "vocab", "pretrain"], root, env)

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    assert not (clone / "data/pretrain").exists()
    sh([*pubmedlm, "remote"], clone, {**env, "PUBMEDLM_PROJECT_ROOT": str(clone)})
    sh([*dvc, "pull", "blurb-data", "corpus", "vocab", "pretrain"], clone, env)
    for out in ("data/corpus", "data/vocab", "data/pretrain"):
        assert dvc_files(clone / out) == dvc_files(root / out), f"{out} differs after dvc pull from S3"
    assert (clone / "data/pretrain/model/model.safetensors").is_file()
    # (pretrain also needs data/pack)
    assert "up to date" in sh([*dvc, "status", "vocab"], clone, env).lower()
