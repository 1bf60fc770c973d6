"""Fine-tune one model on one task with one configuration and seed, and predict with it.

Training runs on the platform's one loop (`train.loop.train_steps`): AdamW with linear warm-up
then linear decay to 0 over all steps (the pretraining optimizer, `train.optim`),
bf16 autocast, gradient clipping, accumulation of micro-batches up to the configured batch.
Each epoch is a fresh seeded shuffle; its last partial batch is dropped (a different one each
epoch). After each epoch the dev split is scored with the task's BLURB metric and handed to
`on_epoch` (Ray Tune reports it; ASHA may stop the trial there).

A non-finite loss stops the run with a `FinetuneError` naming the step: a diverged trial is a
failed trial, recorded as such, not a silent zero.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pubmedlm.blurb import tasks
from pubmedlm.blurb.normalized import Row, read_jsonl
from pubmedlm.blurb.predictions import score_dataset
from pubmedlm.config import FinetuneConfig, RuntimeConfig
from pubmedlm.finetune.features import CodecOptions, Encoded, FinetuneError, TaskCodec, codec_options, collate
from pubmedlm.finetune.heads import TaskModel, build_model, check_model, load_checked_tokenizer
from pubmedlm.train.loop import Hooks, autocast, train_steps
from pubmedlm.train.optim import optimizer_and_schedule

HPARAMS = ("learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay", "dropout")


@dataclass(frozen=True)
class HParams:
    """One point of the search space."""

    learning_rate: float
    batch_size: int
    epochs: int
    warmup_ratio: float
    weight_decay: float
    dropout: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HParams:
        return cls(float(d["learning_rate"]), int(d["batch_size"]), int(d["epochs"]),
                   float(d["warmup_ratio"]), float(d["weight_decay"]), float(d["dropout"]))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Settings:
    """One fine-tuning run's settings: the encoder, the task, its prepared data, and the `finetune` and
    `runtime` config sections themselves (pydantic models pickle into Ray workers and trials; no field
    is copied, so every default lives in `config`)."""

    model: str
    task: str
    gold_dir: str
    finetune: FinetuneConfig
    runtime: RuntimeConfig

    @property
    def codec(self) -> CodecOptions:
        return codec_options(self.finetune)

    @property
    def eval_batch(self) -> int:
        """Evaluation holds no gradients: twice the training micro-batch fits."""
        return 2 * self.runtime.micro_batch_size

    def identity(self) -> dict[str, Any]:
        """What decides a run's result, as plain data (names a Tune experiment or a seed's folder):
        the encoder, task, data, codec, optimisation and caps; not the dataset list or seed counts."""
        f, rt = self.finetune, self.runtime
        return {"model": self.model, "task": self.task, "gold_dir": self.gold_dir,
                "codec": asdict(self.codec), "precision": f.precision, "max_grad_norm": f.max_grad_norm,
                "adam_betas": list(f.adam_betas), "adam_eps": f.adam_eps,
                "max_train_examples": f.max_train_examples, "max_eval_examples": f.max_eval_examples,
                "attention_dropout": f.attention_dropout, "micro_batch": rt.micro_batch_size,
                "threads": rt.cpus_per_worker, "device": rt.device}


@dataclass
class TaskData:
    """A task's codec and its encoded splits."""

    codec: TaskCodec
    splits: dict[str, Encoded]


def _cap(rows: list[Row], cap: int | None) -> list[Row]:
    """A fixed random sample of `cap` rows, in file order (files are often sorted by label, so the
    first rows would not do); the same sample for every trial and seed."""
    if cap is None or cap >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(0).choice(len(rows), cap, replace=False))
    return [rows[i] for i in keep]


def load_task(settings: Settings, splits: tuple[str, ...] = ("train", "dev", "test")) -> TaskData:
    """Read the prepared splits (capped: a fixed sample) and encode them for the task's head."""
    task = tasks.get(settings.task)
    folder = Path(settings.gold_dir) / task.id
    tokenizer = load_checked_tokenizer(settings.model)
    codec = TaskCodec(task, tokenizer, settings.codec)
    check_model(settings.model, codec)
    encoded = {}
    for split in splits:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            raise FinetuneError(f"{task.id}: no prepared {split} split ({path}); run `pubmedlm blurb-data`")
        cap = (settings.finetune.max_train_examples if split == "train"
               else settings.finetune.max_eval_examples)
        encoded[split] = codec.encode(_cap(read_jsonl(path), cap))
    return TaskData(codec, encoded)


def device_for(settings: Settings) -> torch.device:
    if settings.runtime.device == "cuda" or (settings.runtime.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def predict(model: TaskModel, data: TaskData, split: str, settings: Settings,
            device: torch.device) -> list[Any]:
    """Predictions for every row of a split, in row order (batches sorted by length for speed)."""
    encoded = data.splits[split]
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded.inputs[i]["input_ids"]))
    outputs: list[np.ndarray | None] = [None] * len(encoded)
    pad = data.codec.tokenizer.pad_token_id
    for start in range(0, len(order), settings.eval_batch):
        idx = order[start:start + settings.eval_batch]
        batch = collate([encoded.inputs[i] for i in idx], pad)
        batch.pop("labels", None)
        with autocast(device, settings.finetune.precision):
            logits = model.logits(**{k: v.to(device) for k, v in batch.items()})
        logits = logits.float().cpu().numpy()
        for j, i in enumerate(idx):
            outputs[i] = logits[j, : len(encoded.inputs[i]["input_ids"])] if logits.ndim == 3 else logits[j]
    model.train()
    return data.codec.decode(encoded, outputs)


def score(data: TaskData, split: str, preds: list[Any]) -> float:
    """The task's BLURB metric (percent) on a split; an undefined metric (constant output) counts 0."""
    value = score_dataset(data.codec.task, data.splits[split].rows, preds)
    return 0.0 if value is None else value


@dataclass
class Fitted:
    model: TaskModel
    dev_scores: list[float]
    train_seconds: float
    steps: int


def fit(data: TaskData, hp: HParams, seed: int, settings: Settings,
        on_epoch: Callable[[int, float, dict[str, float]], None] | None = None) -> Fitted:
    """Train `hp.epochs` epochs; score dev after each; return the final model and the dev curve."""
    device = device_for(settings)
    if device.type == "cpu" and settings.runtime.cpus_per_worker:
        torch.set_num_threads(settings.runtime.cpus_per_worker)
    seed_everything(seed)
    model = build_model(settings.model, data.codec, hp.dropout,
                        settings.finetune.attention_dropout).to(device)
    train = data.splits["train"]
    n = len(train)
    batch = min(hp.batch_size, n)
    per_epoch = n // batch
    total = per_epoch * hp.epochs
    opt, sched = optimizer_and_schedule(model, lr=hp.learning_rate, weight_decay=hp.weight_decay,
                                        betas=settings.finetune.adam_betas, eps=settings.finetune.adam_eps,
                                        warmup_ratio=hp.warmup_ratio, total_steps=total)
    accum = math.ceil(batch / settings.runtime.micro_batch_size)
    pad = data.codec.tokenizer.pad_token_id
    orders: dict[int, np.ndarray] = {}

    def next_batch(step: int, micro: int) -> dict[str, torch.Tensor]:
        epoch, within = divmod(step, per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = np.random.default_rng((seed, epoch)).permutation(n)
        rows = orders[epoch][within * batch:(within + 1) * batch]
        part = np.array_split(rows, accum)[micro]
        return collate([train.inputs[i] for i in part], pad)

    losses: list[float] = []

    def watch(step: int, stats: dict[str, float]) -> None:
        if not math.isfinite(stats["loss"]):
            raise FinetuneError(f"{data.codec.task.id}: loss is {stats['loss']} at step {step} "
                                f"(learning rate {hp.learning_rate:g}): the run diverged")
        losses.append(stats["loss"])

    dev_scores: list[float] = []
    t0 = time.perf_counter()
    for epoch in range(hp.epochs):
        train_steps(model, next_batch, opt, sched, start_step=epoch * per_epoch,
                    end_step=(epoch + 1) * per_epoch, accum=accum,
                    max_grad_norm=settings.finetune.max_grad_norm, device=device,
                    precision=settings.finetune.precision, hooks=Hooks([watch]))
        dev = score(data, "dev", predict(model, data, "dev", settings, device))
        dev_scores.append(dev)
        if on_epoch is not None:
            recent = losses[-per_epoch:] or [float("nan")]
            on_epoch(epoch + 1, dev, {"train_loss": float(np.mean(recent)), "lr": sched.get_last_lr()[0]})
    return Fitted(model, dev_scores, time.perf_counter() - t0, total)


__all__ = ["HPARAMS", "Fitted", "HParams", "Settings", "TaskData", "device_for", "fit", "load_task",
           "predict", "score", "seed_everything"]
