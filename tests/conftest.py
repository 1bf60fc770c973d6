"""Shared fixtures: the data mirror, an isolated project root and MLflow store per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _mirror() -> Path:
    value = os.environ.get("PUBMEDLM_DATA_MIRROR") or str(REPO.parent / "shared" / "data")
    return Path(value).resolve()


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real data mirror (PUBMEDLM_DATA_MIRROR, default ../shared/data). Tests need it."""
    path = _mirror()
    if not (path / "MANIFEST.tsv").is_file():
        pytest.fail(f"data mirror not found at {path}: set PUBMEDLM_DATA_MIRROR")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: Path) -> Path:
    """An empty project root in tmp: outputs, metrics and the MLflow store land there."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(root))
    monkeypatch.setenv("PUBMEDLM_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.chdir(root)
    return root


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` process on localhost (SQLite backend, local artifact root)."""
    import subprocess
    import sys
    import time
    import urllib.request

    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the server writes to it until teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def ohsumed_docs(mirror: Path, n: int) -> list[str]:
    """The first `n` OHSUMED abstracts of the mirror's sample, one string each (newlines as spaces)."""
    import tarfile

    docs: list[str] = []
    with tarfile.open(mirror / "corpus/pubmed_abstracts/ohsumed_single_23.tar.gz") as tar:
        for member in tar:
            if member.isfile():
                docs.append(tar.extractfile(member).read().decode("utf-8").replace("\n", " "))
                if len(docs) == n:
                    break
    return docs


def prepare_blurb(root: Path, mirror: Path, params: dict) -> Path:
    """Write `params` to root/params.yaml and run the blurb-data stage there (own env, cwd);
    returns root/data/blurb_data."""
    import yaml

    from pubmedlm.config import load_config
    from pubmedlm.stages import blurb_data

    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBMEDLM_PROJECT_ROOT", str(root))
        mp.setenv("PUBMEDLM_DATA_MIRROR", str(mirror))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.chdir(root)
        blurb_data.run(load_config(path), params_file=path)
    return root / "data" / "blurb_data"
