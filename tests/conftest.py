"""Shared fixtures: the data mirror, an isolated project root and MLflow store per test, the
committed hermetic fixtures (tests/fixtures/), and the two test tiers.

Tiers: a test is `integration` when it needs the data mirror (the `mirror` or `project` fixture,
directly or through another fixture), a real server, a Ray cluster or dvc in a temporary repo
(the `server`, `cluster`, `dvc` markers). `pytest_collection_modifyitems` marks those
automatically, so the marker cannot be forgotten; every other test is hermetic and runs with
PUBMEDLM_DATA_MIRROR pointing at an empty folder, so one that reaches for the mirror fails
instead of passing on a machine that has it. `make test-fast` runs `-m "not integration"`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


FIXTURES = Path(__file__).resolve().parent / "fixtures"

# What makes a test an integration test: these fixtures anywhere in its fixture closure, or these markers.
INTEGRATION_FIXTURES = frozenset({"mirror", "project", "mlflow_server"})
INTEGRATION_MARKERS = frozenset({"server", "cluster", "dvc"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the mirror, a server, a cluster or dvc as `integration`."""
    for item in items:
        if item.get_closest_marker("integration") is not None:
            continue
        fixtures = INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        markers = INTEGRATION_MARKERS.intersection(m.name for m in item.iter_markers())
        if fixtures or markers:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _hermetic_without_mirror(request: pytest.FixtureRequest,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A hermetic test (not `integration`) sees PUBMEDLM_DATA_MIRROR as an empty folder: the
    package's source resolution (and any subprocess it starts) finds nothing there and fails loudly."""
    if request.node.get_closest_marker("integration") is not None:
        yield
        return
    empty = tmp_path_factory.getbasetemp() / "no-mirror"
    empty.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBMEDLM_DATA_MIRROR", str(empty))
        yield


def _mirror() -> Path:
    value = os.environ.get("PUBMEDLM_DATA_MIRROR") or str(REPO.parent / "shared" / "data")
    return Path(value).resolve()


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real data mirror (PUBMEDLM_DATA_MIRROR, default ../shared/data). Integration tests only
    (requesting it marks a test `integration`); missing, it fails the test, never skips it."""
    path = _mirror()
    if not (path / "MANIFEST.tsv").is_file():
        pytest.fail(f"data mirror not found at {path}: set PUBMEDLM_DATA_MIRROR "
                    "(or run the hermetic tier alone: make test-fast)")
    return path


def fixture_abstracts(n: int | None = None) -> list[str]:
    """The committed PubMed abstracts (tests/fixtures/corpus/), newlines as spaces like `ohsumed_docs`."""
    import json

    path = FIXTURES / "corpus" / "ohsumed_abstracts.jsonl"
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"].replace("\n", " ") for line in f if line.strip()]
    if n is not None and n > len(texts):
        raise ValueError(f"{path} holds {len(texts)} abstracts, {n} asked for")
    return texts[:n]


def fixture_rows(task: str, split: str) -> list[dict]:
    """Normalized rows of a committed BLURB split (tests/fixtures/blurb_data/<task>/<split>.jsonl)."""
    import json

    with open(FIXTURES / "blurb_data" / task / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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


def post_json(url: str, payload: dict) -> dict:
    """POST `payload` as JSON, the reply's JSON (an HTTP error status raises `urllib.error.HTTPError`)."""
    import json
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def served_model(uri: str, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """`mlflow models serve -m uri` (local env) on a free port, its own process group, until /ping
    answers; yields the base URL, stops the server on exit. Its log is `cwd/serve.log`."""
    import time
    import urllib.request

    port = free_port()
    with open(cwd / "serve.log", "w") as log:
        proc = subprocess.Popen(["mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port)], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, (cwd / "serve.log").read_text()[-3000:]
                time.sleep(1)
        else:
            pytest.fail("scoring server did not answer /ping in 180 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def start_mlflow_server(home: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:`port` over a SQLite store and artifact folder in `home`
    (restartable on the same store); returns once /health answers. Its own process group."""
    import sys
    import time
    import urllib.request

    with open(home / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
             "--artifacts-destination", str(home / "artifacts"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` process on localhost (SQLite backend, local artifact root)."""
    port = free_port()
    proc = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), port)
    yield f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


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


def build_packed_project(root: Path, mirror: Path, pretrain: dict, docs: int = 1300) -> Path:
    """A project in `root` with a real corpus sample (OHSUMED abstracts), an in-domain vocab,
    64-token packed sequences and `pretrain` as its recipe, ready for `pubmedlm pretrain`."""
    return pack_project(root, ohsumed_docs(mirror, docs), pretrain, heldout=100, mirror=mirror)


def corpus_and_vocab(root: Path, texts: list[str], heldout: int) -> None:
    """What the corpus and vocab stages leave in `root`: `texts` as one train and one held-out shard
    (the last `heldout`), and a 2000-entry in-domain WordPiece vocab trained on them."""
    import json

    from pubmedlm.config import VocabConfig
    from pubmedlm.vocab.train import save_tokenizer, train_vocab

    corpus = root / "data" / "corpus"
    corpus.mkdir(parents=True)
    cut = len(texts) - heldout
    for split, chunk in (("train", texts[:cut]), ("heldout", texts[cut:])):
        with open(corpus / f"{split}-00000.jsonl", "w") as f:
            for i, text in enumerate(chunk):
                f.write(json.dumps({"id": f"{split}{i}", "source": "t", "text": text}) + "\n")
    tokenizer, _facts = train_vocab(corpus, VocabConfig(vocab_size=2000))
    save_tokenizer(tokenizer, root / "data" / "vocab")


def pack_project(root: Path, texts: list[str], pretrain: dict, heldout: int,
                 mirror: Path | None = None) -> Path:
    """`build_packed_project` on given texts (the last `heldout` held out); with `mirror` None the
    environment's PUBMEDLM_DATA_MIRROR is left as it is (a hermetic test's empty one)."""
    import os

    import yaml

    from pubmedlm.config import load_config
    from pubmedlm.stages import pack

    corpus_and_vocab(root, texts, heldout)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["pack"].update(seq_lengths=[64], nsp=False)
    params["pretrain"] = pretrain
    params["runtime"].update(progress=False, num_workers=1, cpus_per_worker=2, micro_batch_size=8)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"PUBMEDLM_PROJECT_ROOT": str(root), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    if mirror is not None:
        env["PUBMEDLM_DATA_MIRROR"] = str(mirror)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        pack.run(load_config(root / "params.yaml"), params_file=root / "params.yaml")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return root


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    import subprocess

    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def dvc_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def make_dvc_repo(tmp_path: Path, mirror: Path, params: dict) -> tuple[Path, dict[str, str]]:
    """A temporary git + DVC repository with the repo's own code and dvc.yaml and `params`;
    returns it and the environment to run dvc in (own MLflow store, the data mirror)."""
    import shutil
    import sys

    import yaml

    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "platform", root / "platform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "pipelines/tasks", root / "pipelines/tasks")  # a dep of blurb-data (task files)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    params = {"tasks": {"files": []}, **params}  # dvc.yaml's blurb-data reads tasks.files from params.yaml
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBMEDLM_PROJECT_ROOT", "MLFLOW_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PUBMEDLM_DATA_MIRROR=str(mirror),
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
    )
    sh(["git", "init", "-q"], root, env)
    sh([sys.executable, "-m", "dvc", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "init"], root, env)
    return root, env


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on localhost serving a temp folder: (the folder, the server's base URL)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
