"""Ray glue shared by the stages that run on Ray (pretrain, tune, finetune): the local-or-cluster
connection, the environment workers need, and the storage path of checkpoints and Tune results.
"""

from __future__ import annotations

import os
from pathlib import Path

from pubmedlm.config import Config


def worker_env() -> dict[str, str]:
    """Environment the workers need: the data mirror, the project root, the tracking server."""
    keys = ("PUBMEDLM_DATA_MIRROR", "PUBMEDLM_PROJECT_ROOT", "MLFLOW_TRACKING_URI", "PYTHONPATH", "PUBMEDLM_FAIL_TRIALS")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    # OpenMP threads that spin while waiting slow every step 4-5x when another process shares the
    # cores (measured on 2 CPU cores); passive waiting costs nothing measurable when they are idle.
    env.setdefault("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    return env


def init_ray(cfg: Config) -> None:
    """Connect to `runtime.ray_address` (a cluster) or start a local Ray, once per process."""
    import ray

    if not ray.is_initialized():
        ray.init(address=cfg.runtime.ray_address, runtime_env={"env_vars": worker_env()},
                 log_to_driver=cfg.runtime.progress)


def storage_path(cfg: Config, root: Path) -> str:
    """`runtime.storage_path` as Ray wants it: an absolute local path or a URI (s3://...)."""
    path = cfg.runtime.storage_path
    return path if "://" in path else str((root / path).resolve())


__all__ = ["init_ray", "storage_path", "worker_env"]
