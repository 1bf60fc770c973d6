"""`infra/ray/with-ray.sh` (what `make demo` wraps `dvc repro` in): one local Ray that the command's
Ray stages connect to, stopped when the command ends.

Run in a private HOME and Ray temp folder (no other Ray on the machine is seen or touched), in the
state that broke it: a token file in ~/.ray (a local `ray.init()` writes one), with which Ray turns
token authentication on for a cluster started by `ray start`."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from conftest import REPO

pytestmark = pytest.mark.cluster


def test_a_command_runs_on_one_local_ray_and_the_ray_is_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    temp = Path(tempfile.mkdtemp(prefix="wr-"))  # short: Ray's AF_UNIX socket paths live under it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(HOME=str(home), RAY_TMPDIR=str(temp), RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    code = ("import os, ray; ray.init(address=os.environ['RAY_ADDRESS']); "
            "print('nodes', len(ray.nodes()), 'auth', os.environ['RAY_AUTH_MODE']); "
            "print('session', ray._private.worker.global_worker.node.get_session_dir_path())")
    try:
        out = subprocess.run([str(REPO / "infra/ray/with-ray.sh"), sys.executable, "-c", code], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        assert "nodes 1 auth token" in out.stdout, out.stdout[-2000:]
        assert f"session {temp}" in out.stdout, out.stdout[-2000:]  # the Ray it started, not another
        assert not _ours(temp), "the local Ray outlived the command"
    finally:
        for p in _ours(temp):
            p.kill()
        shutil.rmtree(temp, ignore_errors=True)


def _ours(temp: Path) -> list[psutil.Process]:
    """The processes of the Ray whose temp folder is `temp`."""
    return [p for p in psutil.process_iter(["cmdline"]) if str(temp) in " ".join(p.info["cmdline"] or [])]


def test_a_stage_starts_its_own_ray_beside_a_dead_clusters_address(tmp_path: Path) -> None:
    """A `ray start` that died leaves <temp>/ray/ray_current_cluster behind; with no address set, a
    stage starts a local Ray at once instead of waiting for that cluster's GCS (Ray's default)."""
    temp = Path(tempfile.mkdtemp(prefix="wr-"))
    (temp / "ray").mkdir()
    (temp / "ray" / "ray_current_cluster").write_text("192.0.2.2:6379")  # TEST-NET: nothing answers
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(RAY_TMPDIR=str(temp), RAY_USAGE_STATS_ENABLED="0")
    code = ("import ray; from pubmedlm.config import load_config; "
            "from pubmedlm.infra.ray_runtime import init_ray; "
            f"init_ray(load_config({str(REPO / 'params.yaml')!r})); "
            "print('cpus', ray.cluster_resources()['CPU']); ray.shutdown()")
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=90)
        assert out.returncode == 0 and "cpus" in out.stdout, (out.stdout + out.stderr)[-3000:]
    finally:
        for p in _ours(temp):
            p.kill()
        shutil.rmtree(temp, ignore_errors=True)
