"""Tracking: lineage helpers against git and DVC themselves, and a stage run arriving at a real
MLflow server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, post_json
from pubmedlm.config import load_config
from pubmedlm.infra.lineage import dvc_hash, git_state
from pubmedlm.infra.tracking import flatten
from pubmedlm.infra.tracking_uri import tracking_uri


def _dvc(*args: str, cwd: Path) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


def _git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": os.environ.get("PATH", ""), "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_git_state_is_the_checkout_head_and_its_dirty_flag(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never find a checkout above tmp_path
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_state(outside) == {"git.commit": "unknown", "git.dirty": "unknown"}
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "code.py").write_text("x = 1\n")
    _git("add", "code.py", cwd=repo)
    _git("commit", "-qm", "one", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    assert len(head) == 40
    assert git_state(repo) == {"git.commit": head, "git.dirty": "false"}
    (repo / "outputs.txt").write_text("untracked outputs do not make the code dirty\n")
    assert git_state(repo)["git.dirty"] == "false"
    (repo / "code.py").write_text("x = 2\n")
    assert git_state(repo) == {"git.commit": head, "git.dirty": "true"}


@pytest.mark.dvc
def test_dvc_hash_equals_what_dvc_records(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    _dvc("init", "-q", cwd=tmp_path)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "x.txt").write_text("alpha\n")
    (tmp_path / "d" / "sub" / "y.bin").write_bytes(bytes(range(256)))
    (tmp_path / "f.txt").write_text("one\r\ntwo\n")
    _dvc("add", "-q", "d", "f.txt", cwd=tmp_path)
    import yaml

    for name in ("d", "f.txt"):
        recorded = yaml.safe_load((tmp_path / f"{name}.dvc").read_text())["outs"][0]["md5"]
        assert dvc_hash(tmp_path / name) == recorded


def test_flatten_and_default_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(REPO / "params.yaml")
    assert tracking_uri(cfg, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    assert tracking_uri(cfg, tmp_path) == "http://example:5000"


@pytest.mark.server
def test_stage_run_arrives_at_mlflow_server_over_http(project: Path, mlflow_server: str, monkeypatch) -> None:
    from pubmedlm.stages import corpus

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    (project / "README").write_text("a project under git: its runs carry the commit\n")
    _git("init", "-q", cwd=project)
    _git("add", "README", cwd=project)
    _git("commit", "-qm", "project", cwd=project)
    head = _git("rev-parse", "HEAD", cwd=project)
    cfg = load_config(
        REPO / "params.yaml",
        ["corpus.inputs=[corpus/pubmed_xml/test_current_medline.xml.gz]", "corpus.min_words=0",
         # the point here is tracking, not the exclusion (needs blurb-data)
         "corpus.exclude_blurb_test=false",
         "runtime.progress=false", "runtime.mlflow_experiment=http-check"],
    )
    result = corpus.run(cfg, params_file=REPO / "params.yaml")
    api = f"{mlflow_server}/api/2.0/mlflow"
    with urllib.request.urlopen(f"{api}/experiments/get-by-name?experiment_name=http-check", timeout=30) as r:
        exp = json.load(r)["experiment"]
    runs = post_json(f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    assert [r["info"]["run_id"] for r in runs] == [result.run_id]
    run = runs[0]
    assert run["info"]["run_name"] == "corpus" and run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["corpus.min_words"] == "0"
    assert json.loads(params["corpus.inputs"]) == ["corpus/pubmed_xml/test_current_medline.xml.gz"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["pubmedlm.stage"] == "corpus"
    assert tags["git.commit"] == head and tags["git.dirty"] == "false"
    sha = "ec236eba03fe9b51d5369a3a2c5c8403341eb83d696f0f0229b784ae8321e140"
    assert tags["source.corpus/pubmed_xml/test_current_medline.xml.gz.sha256"] == sha
    assert "pubmedlm.version" in tags
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics, "the stage logs its metrics"
