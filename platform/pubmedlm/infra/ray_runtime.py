"""Ray glue shared by the stages that run on Ray (pretrain, tune, finetune): the local-or-cluster
connection, the environment workers need, and the storage path of checkpoints and Tune results.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from pubmedlm.config import Config
from pubmedlm.errors import UserError
from pubmedlm.project import Interrupted


class RayStartError(UserError, RuntimeError):
    """The configured Ray cluster cannot be reached."""


def worker_env() -> dict[str, str]:
    """Environment the workers need: the data mirror, the project root, the tracking server."""
    keys = ("PUBMEDLM_DATA_MIRROR", "PUBMEDLM_PROJECT_ROOT", "MLFLOW_TRACKING_URI", "PYTHONPATH",
            "PUBMEDLM_FAIL_TRIALS")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    # OpenMP threads that spin while waiting slow every step 4-5x when another process shares the
    # cores (measured on 2 CPU cores); passive waiting costs nothing measurable when they are idle.
    env.setdefault("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    return env


def _job_env_keys() -> set[str]:
    """Environment variables the Ray job's own runtime env sets (inside `ray job submit`)."""
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return set()
    try:
        job = json.loads(raw)
    except ValueError:
        return set()
    return set((job.get("runtime_env") or {}).get("env_vars") or {})


def init_ray(cfg: Config) -> None:
    """Connect to `runtime.ray_address` (a cluster) or start a local Ray, once per process.

    Inside a Ray job the job's runtime env already reaches every worker; Ray refuses a driver env
    that sets the same variables again, so only the ones the job does not set are added."""
    import ray

    # Ray Tune's own Ctrl-C handler ends a search early and returns its trials as if it were done,
    # which a stage would publish; the stage's handler (`project.stop_on_signals`) stops it instead.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if not ray.is_initialized():
        env = worker_env()
        if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:  # a Ray job: its working_dir sets PYTHONPATH
            taken = _job_env_keys() | {"PYTHONPATH"}
            env = {k: v for k, v in env.items() if k not in taken}
        # A local Ray installs its own SIGTERM handler (kill Ray's processes, exit 1); the stage's
        # (`project.stop_on_signals`) stays: the stage unwinds, and Ray's exit hook stops them.
        main = threading.current_thread() is threading.main_thread()
        handler = signal.getsignal(signal.SIGTERM) if main else None
        # No address anywhere: a new local Ray ("local"). Ray's own default would first try the
        # cluster named in <temp>/ray/ray_current_cluster, which a `ray start` that died leaves
        # behind: every stage then waits minutes for a GCS that is gone.
        address = cfg.runtime.ray_address or os.environ.get("RAY_ADDRESS") or (
            None if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ else "local")
        try:
            ray.init(address=address, runtime_env={"env_vars": env},
                     log_to_driver=cfg.runtime.progress)
        except ConnectionError as e:  # no cluster at that address: the user's to fix, not a bug
            raise RayStartError(
                f"runtime.ray_address {cfg.runtime.ray_address!r}: no Ray cluster reachable ({e}); "
                "start one (`ray start --head`) or leave runtime.ray_address empty for a local Ray"
            ) from e
        except SystemExit as e:  # SIGTERM during ray.init reached Ray's handler (`sys.exit(signum)`)
            ray.shutdown()  # stop what the half-done start launched
            if callable(handler) and e.code == signal.SIGTERM:
                raise Interrupted(signal.SIGTERM) from None
            raise
        finally:
            if callable(handler):
                signal.signal(signal.SIGTERM, handler)


def storage_path(cfg: Config, root: Path) -> str:
    """`runtime.storage_path` as Ray wants it: an absolute local path or a URI (s3://...)."""
    path = cfg.runtime.storage_path
    return path if "://" in path else str((root / path).resolve())


__all__ = ["RayStartError", "init_ray", "storage_path", "worker_env"]
