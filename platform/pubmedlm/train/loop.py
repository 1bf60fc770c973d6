"""The one training loop, shared by pretraining and fine-tuning.

A plain PyTorch function: for each optimizer step, `accum` micro-batches are run forward under
autocast and backward (DDP gradient sync only on the last micro-batch), then gradients are
clipped, the optimizer and scheduler step, and the caller's hooks run (logging, evaluation,
checkpointing). Ray Train and MLflow wrap it through those hooks; nothing here knows about them.

The model returns a dict with a scalar `loss` (mean over the micro-batch's targets) plus any
detached counters (summed over micro-batches into the step's stats).

**One host synchronisation per optimizer step**: the micro-batches' statistics stay device tensors,
summed on the device; after the optimizer step they are stacked with the gradient norm (and reduced
over DDP ranks) and read with a single `.tolist()`, the only point where the host waits for the
device. Batches come from `next_batch` on the training thread, or from `loader_workers` background
threads running ahead (`runtime.dataloader_workers`); on CUDA they are copied from pinned host
memory with non-blocking copies, so the next batch's transfer overlaps the current step.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
    loader_workers: int = 0,
) -> None:
    """Run optimizer steps start_step+1 .. end_step; `next_batch(step, micro)` yields each micro-batch
    (a pure function of its arguments when `loader_workers` > 0: it is called ahead, off this thread)."""
    model.train()
    params = trainable_parameters(model)
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    pin = device.type == "cuda"
    batches = prefetch(next_batch, start_step, end_step, accum, loader_workers, pin)
    try:
        for step in range(start_step, end_step):
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            sums: dict[str, torch.Tensor] = {}
            for micro in range(accum):
                batch = to_device(next(batches), device)
                if before_micro is not None:
                    before_micro(step, micro)
                sync = contextlib.nullcontext() if (not ddp or micro == accum - 1) else model.no_sync()
                with sync:
                    with autocast(device, precision):
                        out = model(**batch)
                    (out["loss"] / accum).backward()
                for key, value in out.items():  # device tensors: no host sync here
                    value = value.detach().float()
                    sums[key] = sums[key] + value if key in sums else value
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            scheduler.step()
            stats = step_stats(sums, accum, grad_norm)
            stats.update(lr=scheduler.get_last_lr()[0], step_time=time.perf_counter() - t0)
            for hook in hooks.on_step:
                hook(step + 1, stats)
    finally:
        batches.close()


def step_stats(sums: dict[str, torch.Tensor], accum: int, grad_norm: torch.Tensor) -> dict[str, float]:
    """The step's statistics as floats, read from the device once: losses averaged over micro-batches
    and DDP ranks, counters summed over both (so what is logged does not depend on how the global
    batch was split), and the gradient norm (the same on every rank after DDP's all-reduce)."""
    keys = sorted(sums)
    values = torch.stack([sums[k] for k in keys]) if keys else grad_norm.new_zeros(0)
    world = 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # NCCL reduces only CUDA tensors; gloo (CPU workers) takes CPU ones.
        if torch.distributed.get_backend() != "nccl":
            values = values.cpu()
        torch.distributed.all_reduce(values)
        world = torch.distributed.get_world_size()
    read = torch.cat([values.to(grad_norm.device).double(), grad_norm.detach().double().reshape(1)])
    *summed, norm = read.tolist()  # the step's one device-to-host synchronisation
    stats = {k: v / (accum * world) if k.endswith("loss") else v for k, v in zip(keys, summed, strict=True)}
    stats["grad_norm"] = norm
    return stats


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move a batch to `device`; non-blocking, so a copy from pinned memory overlaps compute."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def prefetch(next_batch: Callable[[int, int], Batch], start_step: int, end_step: int, accum: int,
             workers: int, pin: bool) -> Iterator[Batch]:
    """The micro-batches of steps start_step .. end_step-1 in order; with `workers` > 0 built up to
    2 × workers ahead by background threads (tensor ops release the GIL), pinned when `pin`."""

    def build(step: int, micro: int) -> Batch:
        batch = next_batch(step, micro)
        return {k: v.pin_memory() for k, v in batch.items()} if pin else batch

    keys = ((step, micro) for step in range(start_step, end_step) for micro in range(accum))
    if workers <= 0:
        for key in keys:
            yield build(*key)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="batches")
    ahead: deque = deque()
    try:
        for key in keys:
            ahead.append(pool.submit(build, *key))
            if len(ahead) > 2 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def sdpa_mask(attention_mask: torch.Tensor | None, config: Any) -> torch.Tensor | None:
    """A [batch, seq] 0/1 padding mask as the [batch, 1, 1, seq] boolean mask SDPA takes (True: attend),
    which transformers passes through as is: given the 2-D mask, it first tests it for padding
    (`mask.all()`, a host sync in every forward). Other attention implementations get the 2-D mask."""
    if attention_mask is None or attention_mask.dim() != 2:
        return attention_mask
    if getattr(config, "_attn_implementation", "") != "sdpa":
        return attention_mask
    return attention_mask[:, None, None, :].bool()


def compile_encoder(module: nn.Module) -> None:
    """`torch.compile` a module in place (its parameters and state-dict keys unchanged)."""
    module.compile()


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: list[Batch], device: torch.device, precision: str
) -> dict[str, float]:
    """Sum the model's counters over held-out batches (losses averaged per batch)."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for batch in batches:
        with autocast(device, precision):
            out = model(**to_device(batch, device))
        for key, value in out.items():
            sums[key] = sums[key] + value.float() if key in sums else value.float()
    model.train()
    keys = sorted(sums)
    values = torch.stack([sums[k] for k in keys]).double().tolist() if keys else []  # one host sync
    return {k: v / len(batches) if k.endswith("loss") else v for k, v in zip(keys, values, strict=True)}
