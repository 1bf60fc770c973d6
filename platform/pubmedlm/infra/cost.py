"""The cost ledger: what each stage spent, in device-seconds and tokens, in one shape.

A stage's ledger entry is `{"device", "devices", "wall_seconds", "device_seconds", "device_hours",
"tokens"}`: `device` is `gpu` when its workers reserve GPUs, else `cpu`; device-seconds are the
seconds each device was reserved, summed over devices (a 2-worker pretraining with 1 GPU each for
an hour is 2 GPU-hours; a fine-tuning seed on 1 CPU core for 60 s is 60 CPU-seconds, and the
seeds and trials of a task add up). `tokens` counts the non-padding tokens trained on (None where a
stage trains nothing). Every stage writes its entry under `cost` in its metrics file and logs it to
its MLflow run as `cost/*` metrics; `pipeline_cost` sums the entries behind a BLURB score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pubmedlm.config.pretraining import RuntimeConfig

KEY = "cost"


def worker_devices(runtime: RuntimeConfig) -> tuple[str, float]:
    """(device kind, devices one Ray worker / trial / seed reserves): its GPUs if it takes any, else
    its CPU cores."""
    if runtime.gpus_per_worker:
        return "gpu", float(runtime.gpus_per_worker)
    return "cpu", float(runtime.cpus_per_worker)


def entry(runtime: RuntimeConfig, worker_seconds: float, tokens: int | None, wall_seconds: float,
          workers: int = 1) -> dict[str, Any]:
    """A ledger entry for `worker_seconds` of work (summed over the stage's trials or seeds, or one
    worker's wall time) on `workers` data-parallel workers, each holding `worker_devices`."""
    kind, per_worker = worker_devices(runtime)
    device_seconds = worker_seconds * per_worker * workers
    return {"device": kind, "devices": per_worker * workers, "wall_seconds": round(wall_seconds, 3),
            "device_seconds": round(device_seconds, 3), "device_hours": round(device_seconds / 3600, 6),
            "tokens": None if tokens is None else int(tokens)}


def host_entry(wall_seconds: float, tokens: int | None = None) -> dict[str, Any]:
    """A stage that runs in its own process on one CPU core (data preparation, scoring, reports)."""
    return {"device": "cpu", "devices": 1.0, "wall_seconds": round(wall_seconds, 3),
            "device_seconds": round(wall_seconds, 3), "device_hours": round(wall_seconds / 3600, 6),
            "tokens": None if tokens is None else int(tokens)}


def as_metrics(cost: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The entry as MLflow metrics (`<prefix>cost/device_seconds`, ...); the device kind is a tag."""
    return {f"{prefix}{KEY}/{k}": float(v) for k, v in cost.items() if isinstance(v, int | float)}


def _metrics(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) or {} if path.is_file() else None


def pipeline_cost(metrics_dir: Path, datasets: list[str], pretrained: bool = True) -> dict[str, Any]:
    """What the pipeline's BLURB score cost: pretraining (when the score's encoder is the pipeline's own,
    `pretrained`), and per dataset its search and its seeds (device-hours, tokens), from the stages'
    metrics files under `metrics_dir`. A dataset without data (`status: unavailable`) is not part of
    the score and left out; a stage that has not run, or ran before the ledger, is named in `missing`."""
    pretrain = (_metrics(metrics_dir / "pretrain.json") or {}).get(KEY) if pretrained else None
    rows, missing, entries = {}, ["pretrain"] if pretrained and not pretrain else [], [pretrain]
    for d in datasets:
        files = {s: _metrics(metrics_dir / s / f"{d}.json") for s in ("tune", "finetune")}
        if any((m or {}).get("status") == "unavailable" for m in files.values()):
            continue
        parts = {s: (m or {}).get(KEY) for s, m in files.items()}
        missing += [f"{s}@{d}" for s, c in parts.items() if c is None]
        got = [c for c in parts.values() if c]
        entries += got
        if got:
            rows[d] = {"device_hours": sum(c["device_hours"] for c in got),
                       "tune_device_hours": (parts["tune"] or {}).get("device_hours"),
                       "finetune_device_hours": (parts["finetune"] or {}).get("device_hours"),
                       "tokens": sum(c.get("tokens") or 0 for c in got)}
    finetune_h = sum(r["device_hours"] for r in rows.values())
    pretrain_h = pretrain["device_hours"] if pretrain else 0.0
    return {"pretrain_device_hours": pretrain_h, "pretrain_tokens": (pretrain or {}).get("tokens"),
            "finetune_device_hours": finetune_h, "total_device_hours": pretrain_h + finetune_h,
            "devices": sorted({c["device"] for c in entries if c}), "datasets": rows, "missing": missing}


__all__ = ["KEY", "as_metrics", "entry", "host_entry", "pipeline_cost", "worker_devices"]
