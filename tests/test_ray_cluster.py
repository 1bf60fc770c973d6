"""A real two-node Ray cluster on this machine: the tiny pretraining submitted through the Ray
Jobs API (with infra/ray/runtime_env.yaml), workers placed on both nodes, checkpoints in the
shared storage path, the MLflow run present; then the second node killed mid-run, and the job
finishing on the head node from the last checkpoint. The cluster is stopped whatever happens."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import REPO, build_packed_project, free_port

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

STEPS = 120
TINY = {
    "init": "scratch",
    "model": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
              "max_position_embeddings": 128, "dropout": 0.1},
    "phases": [{"seq_len": 64, "steps": STEPS, "global_batch": 16}],
    "peak_lr": 2e-3, "eval_every": 40, "eval_batches": 2, "checkpoint_every": 10, "log_every": 5,
    "max_failures": 3,
}
NODE_B = "pubmedlm_test_node_b"


def _ray(*args: str, env: dict[str, str]) -> str:
    ray_bin = str(Path(sys.executable).parent / "ray")
    proc = subprocess.run([ray_bin, *args], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """Head (2 CPUs) and a second node (1 CPU, resource NODE_B) as separate raylets, with Ray's
    token authentication (a token of its own); the head's temp dir is private, so no other Ray
    user on the machine attaches to this cluster."""
    # A short path: Ray's AF_UNIX sockets live under it (at most 107 bytes), and pytest's temp
    # folders grow long (under xdist: .../pytest-N/popen-gwK/...).
    temp = Path(tempfile.mkdtemp(prefix="ray-"))
    port, dash = free_port(), free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **auth}
    env.pop("RAY_ADDRESS", None)
    from ray._private.authentication_test_utils import reset_auth_token_state

    mp = pytest.MonkeyPatch()
    for k, v in auth.items():  # this process talks to the Jobs and state APIs with the token
        mp.setenv(k, v)
    # Ray reads the auth mode and token once per process and caches them: a test file run earlier
    # in this worker (a local ray.init) would leave "no token" in force, and the dashboard refuses us.
    reset_auth_token_state()
    try:
        # Ports Ray would otherwise take at fixed defaults (the agent's 52365, the client server's
        # 10001): free ones, so the test runs beside any other Ray on the machine.
        _ray("start", "--head", f"--port={port}", "--num-cpus=2", f"--dashboard-port={dash}",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}",
             "--disable-usage-stats", f"--dashboard-agent-listen-port={free_port()}",
             f"--ray-client-server-port={free_port()}", env=env)
        _ray("start", f"--address=127.0.0.1:{port}", "--num-cpus=1", f"--resources={json.dumps({NODE_B: 1})}",
             f"--dashboard-agent-listen-port={free_port()}", env=env)
        yield {"gcs": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "temp": str(temp)}
    finally:
        _stop_cluster(str(temp), port)
        shutil.rmtree(temp, ignore_errors=True)
        mp.undo()
        reset_auth_token_state()  # later test files in this worker: no token again


def _stop_cluster(temp: str, port: int) -> None:
    """Stop this cluster's processes only (`ray stop` would stop every Ray on the machine): the
    processes that name its session folder or GCS port, and everything they started."""
    own = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if temp in cmd or f"--gcs-address=127.0.0.1:{port}" in cmd or f"--gcs_server_port={port}" in cmd:
            own.append(p)
    procs = {q.pid: q for p in own for q in [p, *p.children(recursive=True)] if q.pid != os.getpid()}
    for q in procs.values():
        with contextlib.suppress(psutil.Error):
            q.terminate()
    _gone, alive = psutil.wait_procs(list(procs.values()), timeout=20)
    for q in alive:
        with contextlib.suppress(psutil.Error):
            q.kill()


def _node_b_raylet() -> psutil.Process:
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "raylet" in cmd and NODE_B in cmd:
            return p
    raise AssertionError("the second node's raylet is not running")


def test_pretraining_job_on_two_nodes_survives_losing_one(cluster: dict[str, str], mirror: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    from mlflow import MlflowClient
    from ray.job_submission import JobStatus, JobSubmissionClient
    from ray.util.state import list_actors, list_nodes

    root = build_packed_project(tmp_path_factory.mktemp("cluster-project"), mirror, TINY)
    storage = root / "shared-storage"
    runtime_env = yaml.safe_load((REPO / "infra/ray/runtime_env.yaml").read_text())
    runtime_env["working_dir"] = str(root)
    runtime_env["env_vars"].update({
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "PUBMEDLM_DATA_MIRROR": str(mirror),
        "PUBMEDLM_PROJECT_ROOT": str(root)})  # the project on storage every node reads (one machine here)
    client = JobSubmissionClient(cluster["dashboard"])
    sets = ["runtime.num_workers=2", "runtime.cpus_per_worker=1", "runtime.placement_strategy=SPREAD",
            f"runtime.storage_path={storage}", "runtime.micro_batch_size=8"]
    entry = f"{sys.executable} -m pubmedlm.cli pretrain " + " ".join(f"--set {s}" for s in sets)
    for _ in range(120):  # the head's job agent may need a moment after `ray start`
        try:
            job = client.submit_job(entrypoint=entry, runtime_env=runtime_env)
            break
        except RuntimeError as e:
            if "No available agent" not in str(e):
                raise
            time.sleep(1)
    else:
        pytest.fail("the Ray Jobs API never accepted the job")

    # Workers on both nodes, then the second node dies after the first checkpoints.
    deadline = time.time() + 600
    while not list(storage.rglob("checkpoint_*/state.pt")):
        status = client.get_job_status(job)
        assert status not in (JobStatus.FAILED, JobStatus.STOPPED), client.get_job_logs(job)[-4000:]
        assert status != JobStatus.SUCCEEDED, "the job finished before the node could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    nodes = {n.node_id: n for n in list_nodes(address=cluster["dashboard"])}
    workers = list_actors(address=cluster["dashboard"], filters=[("class_name", "=", "RayTrainWorker")],
                          detail=True)
    placed = {w.node_id for w in workers}
    node_b = [nid for nid, n in nodes.items() if NODE_B in (n.resources_total or {})]
    assert len(node_b) == 1 and node_b[0] in placed and len(placed) == 2, (
        f"workers on {placed}, nodes {list(nodes)}")
    raylet = _node_b_raylet()
    for child in raylet.children(recursive=True):
        child.send_signal(signal.SIGKILL)
    raylet.send_signal(signal.SIGKILL)

    while (status := client.get_job_status(job)) not in (JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                         JobStatus.STOPPED):
        assert time.time() < deadline + 600, "the job did not finish"
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-5000:]

    # Finished on the head from a checkpoint: a second worker group, both on the head node.
    workers = list_actors(address=cluster["dashboard"], filters=[("class_name", "=", "RayTrainWorker")],
                          detail=True)
    on_head = [w for w in workers if w.node_id not in node_b]
    assert len(workers) >= 4 and len(on_head) >= 3, [(w.node_id[:8], w.state) for w in workers]
    assert list(storage.rglob("checkpoint_*")), "no checkpoint in the shared storage path"
    assert (root / "data/pretrain/model/model.safetensors").is_file()
    metrics = json.loads((root / "metrics/pretrain.json").read_text())
    assert metrics["step"] == STEPS

    mlflow = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("pubmedlm")
    runs = mlflow.search_runs([exp.experiment_id], "attributes.run_name = 'pretrain'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in mlflow.get_metric_history(runs[0].info.run_id, "train/mlm_loss")]
    assert max(steps) == STEPS
