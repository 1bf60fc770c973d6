"""The one training loop, shared by pretraining and fine-tuning.

A plain PyTorch function: for each optimizer step, `accum` micro-batches are run forward under
autocast and backward (DDP gradient sync only on the last micro-batch), then gradients are
clipped, the optimizer and scheduler step, and the caller's hooks run (logging, evaluation,
checkpointing). Ray Train and MLflow wrap it through those hooks; nothing here knows about them.

The model returns a dict with a scalar `loss` (mean over the micro-batch's targets) plus any
detached counters (summed over micro-batches into the step's stats).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Batch = dict[str, torch.Tensor]


@dataclass
class Hooks:
    """Called after each optimizer step with (step just completed, 1-based; its stats)."""

    on_step: list[Callable[[int, dict[str, float]], None]] = field(default_factory=list)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train_steps(
    model: nn.Module,
    next_batch: Callable[[int, int], Batch],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    start_step: int,
    end_step: int,
    accum: int,
    max_grad_norm: float,
    device: torch.device,
    precision: str,
    hooks: Hooks,
    before_micro: Callable[[int, int], None] | None = None,
) -> None:
    """Run optimizer steps start_step+1 .. end_step; `next_batch(step, micro)` yields each micro-batch."""
    model.train()
    params = trainable_parameters(model)
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    for step in range(start_step, end_step):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}
        for micro in range(accum):
            batch = {k: v.to(device, non_blocking=True) for k, v in next_batch(step, micro).items()}
            if before_micro is not None:
                before_micro(step, micro)
            sync = contextlib.nullcontext() if (not ddp or micro == accum - 1) else model.no_sync()
            with sync:
                with autocast(device, precision):
                    out = model(**batch)
                (out["loss"] / accum).backward()
            for key, value in out.items():
                stats[key] = stats.get(key, 0.0) + float(value.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
        stats = _across_ranks({k: v / accum if k.endswith("loss") else v for k, v in stats.items()})
        stats.update(
            grad_norm=float(grad_norm), lr=scheduler.get_last_lr()[0], step_time=time.perf_counter() - t0
        )
        for hook in hooks.on_step:
            hook(step + 1, stats)


def _across_ranks(stats: dict[str, float]) -> dict[str, float]:
    """Global-batch statistics: losses averaged and counters summed over all DDP ranks, so what is
    logged does not depend on how the global batch was split between workers."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return stats
    keys = sorted(stats)
    # NCCL reduces only CUDA tensors; gloo (CPU workers) takes CPU ones.
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    values = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    world = torch.distributed.get_world_size()
    return {k: float(v) / world if k.endswith("loss") else float(v)
            for k, v in zip(keys, values, strict=True)}


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: list[Batch], device: torch.device, precision: str
) -> dict[str, float]:
    """Sum the model's counters over held-out batches (losses averaged per batch)."""
    model.eval()
    totals: dict[str, float] = {}
    for batch in batches:
        with autocast(device, precision):
            out = model(**{k: v.to(device) for k, v in batch.items()})
        for key, value in out.items():
            totals[key] = totals.get(key, 0.0) + float(value)
    model.train()
    return {k: v / len(batches) if k.endswith("loss") else v for k, v in totals.items()}
