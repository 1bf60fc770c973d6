"""The MLflow server stack of infra/mlflow, all real processes on localhost: PostgreSQL (backend
and auth stores), moto's S3 server (artifacts, proxied by the server) and `mlflow server` with the
basic-auth app, started by infra/mlflow/start-mlflow.sh. The pipeline, given credentials only
through the environment, runs its stages against it and registers a model; an unauthenticated
request is refused; a read-only user cannot register or delete; after a server restart the runs,
artifacts and model are all there; the password appears nowhere in what the pipeline logged; and
a stage aimed at an unreachable server fails at once, naming the URI, before any compute."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from conftest import free_port
from services import MlflowServer, Postgres, S3Server

pytestmark = [pytest.mark.integration, pytest.mark.server]

TASK = "NCBI-disease"
ADMIN = "pubmedlm-admin"
PARAMS = {
    "corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]},
    "blurb_data": {"datasets": [TASK]},
    "finetune": {"model": "minilm", "datasets": [TASK], "max_train_examples": 24, "max_eval_examples": 24,
                 "max_length": 64, "seeds": {"default": 1}, "attention_dropout": 0.0},
    "tune": {"num_samples": 1, "search": {"epochs": [1, 1], "batch_size": [16]}},
    "register": {"encoder": False},
    "runtime": {"progress": False, "cpus_per_worker": 2, "micro_batch_size": 16},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("mlflow-stack")
    pg = Postgres.start()
    s3 = server = None
    try:
        s3 = S3Server.start(folder, ("mlflow-artifacts",))
        password = secrets.token_urlsafe(18)
        env = {"MLFLOW_BACKEND_STORE_URI": pg.uri("mlflow"),
               "MLFLOW_AUTH_DATABASE_URI": pg.uri("mlflow_auth"),
               "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow-artifacts", "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
               "MLFLOW_AUTH_ADMIN_PASSWORD": password,
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16), **s3.env}
        server = MlflowServer(env, folder).start()
        yield {"server": server, "password": password, "folder": folder, "pg": pg}
    finally:
        if server:
            server.stop()
        if s3:
            s3.stop()
        pg.stop()


def _client_env(stack: dict, root: Path, mirror: Path) -> dict[str, str]:
    """What a user's shell holds: the server URI and credentials; no S3 keys (artifacts go
    through the server), no database password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    return {**env, "MLFLOW_TRACKING_URI": stack["server"].url, "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": stack["password"], "PUBMEDLM_PROJECT_ROOT": str(root),
            "PUBMEDLM_DATA_MIRROR": str(mirror),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _cli(env: dict[str, str], root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1500)
    if check:
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc


def test_pipeline_against_authenticated_server_on_postgres_and_s3(
        stack: dict, mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from mlflow import MlflowClient

    server, password = stack["server"], stack["password"]
    api = f"{server.url}/api/2.0/mlflow"
    assert requests.post(f"{api}/experiments/search", json={"max_results": 1}, timeout=30).status_code == 401

    root = tmp_path_factory.mktemp("stack-project")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    env = _client_env(stack, root, mirror)
    for stage in (["blurb-data"], ["tune", "--task", TASK], ["finetune", "--task", TASK], ["evaluate"],
                  ["register"]):
        _cli(env, root, *stage)
    decision = json.loads((root / "metrics/register.json").read_text())["models"][0]
    assert decision["name"] == f"pubmedlm-{TASK}" and decision["promoted"]

    # A read-only user: reads, but cannot register or delete.
    admin = (ADMIN, password)
    reader = ("reader", secrets.token_urlsafe(12))
    r = requests.post(f"{api}/users/create", json={"username": reader[0], "password": reader[1]}, auth=admin,
                      timeout=30)
    assert r.status_code == 200, r.text
    exps = requests.post(f"{api}/experiments/search", json={"max_results": 100}, auth=reader,
                         timeout=30).json()
    ids = [e["experiment_id"] for e in exps["experiments"]]
    runs = requests.post(f"{api}/runs/search", json={"experiment_ids": ids, "max_results": 1000},
                         auth=reader, timeout=30)
    assert runs.status_code == 200 and runs.json()["runs"]
    some_run = runs.json()["runs"][0]["info"]["run_id"]
    # (MLflow's basic auth lets any user create a model or experiment of their own; the platform's
    # models are what a read-only user must not change.)
    name = f"pubmedlm-{TASK}"
    champion = requests.get(f"{api}/registered-models/alias", params={"name": name, "alias": "champion"},
                            auth=reader, timeout=30)
    assert champion.status_code == 200, champion.text
    source = champion.json()["model_version"]["source"]
    assert requests.post(f"{api}/model-versions/create", json={"name": name, "source": source}, auth=reader,
                         timeout=30).status_code == 403
    assert requests.post(f"{api}/registered-models/alias",
                         json={"name": name, "alias": "champion", "version": "1"}, auth=reader,
                         timeout=30).status_code == 403
    assert requests.post(f"{api}/runs/delete", json={"run_id": some_run}, auth=reader,
                         timeout=30).status_code == 403
    assert requests.delete(f"{api}/registered-models/delete", json={"name": name}, auth=reader,
                           timeout=30).status_code == 403
    ok = requests.post(f"{api}/registered-models/alias",
                       json={"name": name, "alias": "reviewed", "version": "1"}, auth=admin, timeout=30)
    assert ok.status_code == 200, ok.text  # what the reader was refused, the admin may do

    # Restart the server: runs, artifacts and the registered model are all still there.
    before = {r["info"]["run_id"] for r in runs.json()["runs"]}
    server.stop()
    server.start()
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")})
    try:
        client = MlflowClient(server.url)
        exps = [e.experiment_id for e in client.search_experiments()]
        after = {r.info.run_id for r in client.search_runs(exps, max_results=1000)}
        assert before <= after
        version = client.get_model_version_by_alias(f"pubmedlm-{TASK}", "champion")
        scratch = tmp_path_factory.mktemp("downloads")
        import mlflow

        mlflow.set_tracking_uri(server.url)
        model_dir = Path(mlflow.artifacts.download_artifacts(version.source, dst_path=str(scratch / "model")))
        assert (model_dir / "MLmodel").is_file()
        assert list(model_dir.rglob("model.safetensors"))
        finetune_results = json.loads((root / "data/finetune" / TASK / "results.json").read_text())
        from pubmedlm.infra.tracking import find_task_run

        task_run = find_task_run(server.url, "pubmedlm", TASK, finetune_results["model"])
        logged = Path(mlflow.artifacts.download_artifacts(run_id=task_run.run_id,
                                                          dst_path=str(scratch / "task-run")))
        assert json.loads((logged / "finetune/results.json").read_text())["test"] == finetune_results["test"]

        # The password is nowhere in what was logged: params, tags, metrics, descriptions, artifacts.
        needle = password.encode()
        texts = []
        for run in client.search_runs(exps, max_results=1000):
            texts += [json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(run.data.metrics)]
            art = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                           dst_path=str(scratch / run.info.run_id)))
            for f in art.rglob("*"):
                assert not f.is_file() or needle not in f.read_bytes(), f"password in artifact {f}"
        for rm in client.search_registered_models():
            texts.append(json.dumps({"d": rm.description, "t": rm.tags}))
            for v in client.search_model_versions(f"name = '{rm.name}'"):
                texts.append(json.dumps({"d": v.description, "t": v.tags, "s": v.source}))
        for f in model_dir.rglob("*"):
            assert not f.is_file() or needle not in f.read_bytes(), f"password in model file {f}"
        assert all(password not in t for t in texts)
        for f in root.rglob("*"):
            if f.is_file() and f.suffix in (".json", ".yaml", ".md", ".csv", ".txt"):
                assert needle not in f.read_bytes(), f"password written to {f}"
    finally:
        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(k, None)


def test_unreachable_server_fails_fast_naming_the_uri(mirror: Path, tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    uri = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PUBMEDLM_PROJECT_ROOT": str(tmp_path),
           "PUBMEDLM_DATA_MIRROR": str(mirror)}
    t0 = time.time()
    proc = _cli(env, tmp_path, "blurb-data", check=False)
    assert (proc.returncode == 2 and uri in proc.stderr
            and "nothing was run" in proc.stderr), proc.stderr[-2000:]
    assert time.time() - t0 < 60
    assert not (tmp_path / "data").exists(), "the stage computed before checking the server"
