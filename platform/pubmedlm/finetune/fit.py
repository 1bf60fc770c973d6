"""Fine-tune one model on one task with one configuration and seed, and predict with it.

Training runs on the platform's one loop (`train.loop.train_steps`): AdamW with linear warm-up
then linear decay to 0 over all steps (the pretraining optimizer, `train.optim`),
bf16 autocast, gradient clipping, accumulation of micro-batches up to the configured batch.
The stabilizers (`finetune.freeze_layers`, `layer_lr_decay`, `reinit_layers`; `finetune.stabilizers`)
act on the freshly built, seeded model and on the optimizer's param groups.
Each epoch is a fresh seeded shuffle; its last partial batch is dropped (a different one each
epoch). Batches are grouped by length (`finetune.length_group_batches`, as HF's `group_by_length`):
the shuffled rows are cut into groups of that many batches, each group sorted by length and cut into
batches, and the batches of the epoch shuffled again (all seeded): a batch pads to similar lengths,
so most of the compute goes to real tokens. After each epoch the dev split is scored with the task's
BLURB metric and handed to `on_epoch` (Ray Tune reports it; ASHA may stop the trial there).

The encoded splits come from `finetune.cache` (tokenized once per task, tokenizer, codec and caps,
kept in memory and on disk); evaluation batches are collated once per split and reused every epoch.
`Fitted` carries what a cost ledger and the per-trial overhead need: training seconds, non-padding
tokens trained, and the clock times of the first optimizer step's start and the last one's end.

A non-finite loss stops the run with a `FinetuneError` naming the step: a diverged trial is a
failed trial, recorded as such, not a silent zero.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pubmedlm.blurb import tasks
from pubmedlm.blurb.predictions import score_dataset
from pubmedlm.config import FinetuneConfig, HParams, RuntimeConfig
from pubmedlm.finetune import stabilizers
from pubmedlm.finetune.cache import encoded_split
from pubmedlm.finetune.features import CodecOptions, Encoded, FinetuneError, TaskCodec, codec_options, collate
from pubmedlm.finetune.heads import TaskModel, build_model, check_model, load_checked_tokenizer
from pubmedlm.train.loop import Hooks, autocast, compile_encoder, train_steps
from pubmedlm.train.optim import optimizer_and_schedule

HPARAMS = tuple(HParams.model_fields)
"""The fields of one configuration (`config.HParams`, their one home): what a trial searches."""


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
    features_dir: str = ""
    """The disk cache of encoded splits (`finetune.cache`); "" keeps them in memory only."""

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
                "attention_dropout": f.attention_dropout, "length_groups": f.length_group_batches,
                "freeze_layers": f.freeze_layers, "layer_lr_decay": f.layer_lr_decay,
                "reinit_layers": f.reinit_layers, "random_init": f.random_init,
                "micro_batch": rt.micro_batch_size,
                "threads": rt.cpus_per_worker, "device": rt.device}


@dataclass
class TaskData:
    """A task's codec and its encoded splits (+ evaluation batches, collated once per split)."""

    codec: TaskCodec
    splits: dict[str, Encoded]
    eval_batches: dict[tuple[str, int], list] = field(default_factory=dict)


_CODECS: dict[tuple, TaskCodec] = {}


def _codec(settings: Settings) -> TaskCodec:
    """The task's codec (tokenizer loaded, model checked): once per process and (model, task, options)."""
    key = (settings.model, settings.task, settings.codec)
    if key not in _CODECS:
        task = tasks.get(settings.task, settings.gold_dir)  # a Ray worker: user tasks from gold_dir
        codec = TaskCodec(task, load_checked_tokenizer(settings.model), settings.codec)
        check_model(settings.model, codec)
        _CODECS.clear()
        _CODECS[key] = codec
    return _CODECS[key]


def load_task(settings: Settings, splits: tuple[str, ...] = ("train", "dev", "test")) -> TaskData:
    """The prepared splits (capped: a fixed sample), encoded for the task's head (`finetune.cache`)."""
    codec = _codec(settings)
    folder = Path(settings.gold_dir) / codec.task.id
    encoded = {}
    for split in splits:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            raise FinetuneError(f"{codec.task.id}: no prepared {split} split ({path}); "
                                "run `pubmedlm blurb-data`")
        cap = (settings.finetune.max_train_examples if split == "train"
               else settings.finetune.max_eval_examples)
        encoded[split] = encoded_split(settings.model, codec, path, cap, settings.features_dir)
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
    outputs: list[np.ndarray | None] = [None] * len(encoded)
    for idx, batch in _eval_batches(data, split, settings.eval_batch):
        with autocast(device, settings.finetune.precision):
            logits = model.logits(**{k: v.to(device) for k, v in batch.items()})
        logits = logits.float().cpu().numpy()
        for j, i in enumerate(idx):
            outputs[i] = logits[j, : len(encoded.inputs[i]["input_ids"])] if logits.ndim == 3 else logits[j]
    model.train()
    return data.codec.decode(encoded, outputs)


def _eval_batches(data: TaskData, split: str, size: int) -> list[tuple[list[int], dict]]:
    """(row indices, collated inputs) of a split sorted by length, cut into `size`-row batches: built
    on the first call, reused by every later evaluation of the split."""
    key = (split, size)
    if key not in data.eval_batches:
        encoded = data.splits[split]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded.inputs[i]["input_ids"]))
        pad = data.codec.tokenizer.pad_token_id
        batches = []
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            batch = collate([encoded.inputs[i] for i in idx], pad)
            batch.pop("labels", None)
            batches.append((idx, batch))
        data.eval_batches[key] = batches
    return data.eval_batches[key]


def score(data: TaskData, split: str, preds: list[Any]) -> float:
    """The task's BLURB metric (percent) on a split; an undefined metric (constant output) counts 0."""
    value = score_dataset(data.codec.task, data.splits[split].rows, preds)
    return 0.0 if value is None else value


def epoch_batches(lengths: np.ndarray, batch: int, seed: int, epoch: int, group: int) -> list[np.ndarray]:
    """The row indices of each batch of one epoch: n // batch batches (the shuffle's remainder dropped);
    with `group` > 0, grouped by length (see the module docstring); a function of its arguments alone."""
    rng = np.random.default_rng((seed, epoch))
    rows = rng.permutation(len(lengths))[: len(lengths) // batch * batch]
    if group <= 0:
        return list(rows.reshape(-1, batch))
    out = []
    for start in range(0, len(rows), group * batch):
        chunk = rows[start:start + group * batch]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        out += list(chunk.reshape(-1, batch))
    return [out[i] for i in rng.permutation(len(out))]


@dataclass
class Fitted:
    """The trained model and what the run cost: dev curve, seconds of training (all epochs, dev
    scoring included), optimizer steps, tokens trained (non-padding and padded slots), and the
    `time.perf_counter()` clock at the first step's start and the last step's end."""

    model: TaskModel
    dev_scores: list[float]
    train_seconds: float
    steps: int
    tokens: int = 0
    padded_tokens: int = 0
    first_step_at: float = 0.0
    last_step_at: float = 0.0


def _model_and_optimizer(data: TaskData, hp: HParams, settings: Settings, device: torch.device,
                         total_steps: int) -> tuple[TaskModel, Any, Any]:
    """The task model (stabilizers applied, on `device`, compiled if asked), its AdamW and schedule."""
    f = settings.finetune
    model = build_model(settings.model, data.codec, hp.dropout, f.attention_dropout)
    stabilizers.prepare(model.hf, f, settings.model)  # before .to(device): the same draws on any device
    model.to(device)
    if settings.runtime.compile:
        compile_encoder(model.hf.base_model)
    opt, sched = optimizer_and_schedule(model, lr=hp.learning_rate, weight_decay=hp.weight_decay,
                                        betas=f.adam_betas, eps=f.adam_eps, warmup_ratio=hp.warmup_ratio,
                                        total_steps=total_steps,
                                        lr_scale=stabilizers.lr_scales(model, model.hf, f.layer_lr_decay,
                                                                       settings.model))
    return model, opt, sched


def fit(data: TaskData, hp: HParams, seed: int, settings: Settings,
        on_epoch: Callable[[int, float, dict[str, float]], None] | None = None,
        started: float | None = None) -> Fitted:
    """Train `hp.epochs` epochs; score dev after each; return the final model and the dev curve.
    `on_epoch` gets (epoch, dev score, stats): the epoch's mean training loss, the learning rate,
    `eval_s` (seconds since the epoch's last step: the dev scoring) and, given the run's start
    (`started`, a `time.perf_counter()` clock), `overhead_start_s` (start to the first step)."""
    device = device_for(settings)
    if device.type == "cpu" and settings.runtime.cpus_per_worker:
        torch.set_num_threads(settings.runtime.cpus_per_worker)
    seed_everything(seed)
    train = data.splits["train"]
    lengths = np.array([len(x["input_ids"]) for x in train.inputs])
    batch = min(hp.batch_size, len(train))
    per_epoch = len(train) // batch
    model, opt, sched = _model_and_optimizer(data, hp, settings, device, per_epoch * hp.epochs)
    accum = math.ceil(batch / settings.runtime.micro_batch_size)
    pad = data.codec.tokenizer.pad_token_id
    fitted = Fitted(model, [], 0.0, per_epoch * hp.epochs)
    losses: list[float] = []

    def watch(step: int, stats: dict[str, float]) -> None:
        if not math.isfinite(stats["loss"]):
            raise FinetuneError(f"{data.codec.task.id}: loss is {stats['loss']} at step {step} "
                                f"(learning rate {hp.learning_rate:g}): the run diverged")
        losses.append(stats["loss"])
        fitted.last_step_at = time.perf_counter()
        fitted.first_step_at = fitted.first_step_at or fitted.last_step_at - stats["step_time"]

    t0 = time.perf_counter()
    for epoch in range(hp.epochs):
        parts = [np.array_split(rows, accum) for rows in
                 epoch_batches(lengths, batch, seed, epoch, settings.finetune.length_group_batches)]
        fitted.tokens += int(sum(lengths[p].sum() for micro in parts for p in micro))
        fitted.padded_tokens += int(sum(len(p) * lengths[p].max() for micro in parts for p in micro))
        train_steps(model, lambda step, micro, e=epoch, parts=parts: collate(
                        [train.inputs[i] for i in parts[step - e * per_epoch][micro]], pad),
                    opt, sched, start_step=epoch * per_epoch, end_step=(epoch + 1) * per_epoch, accum=accum,
                    max_grad_norm=settings.finetune.max_grad_norm, device=device,
                    precision=settings.finetune.precision, hooks=Hooks([watch]),
                    loader_workers=settings.runtime.dataloader_workers)
        fitted.dev_scores.append(score(data, "dev", predict(model, data, "dev", settings, device)))
        if on_epoch is not None:
            stats = {"train_loss": float(np.mean(losses[-per_epoch:] or [float("nan")])),
                     "lr": sched.get_last_lr()[0], "eval_s": time.perf_counter() - fitted.last_step_at,
                     "tokens": fitted.tokens}
            if started is not None:
                stats["overhead_start_s"] = fitted.first_step_at - started
            on_epoch(epoch + 1, fitted.dev_scores[-1], stats)
    fitted.train_seconds = time.perf_counter() - t0
    return fitted


__all__ = ["HPARAMS", "Fitted", "HParams", "Settings", "TaskData", "device_for", "epoch_batches", "fit",
           "load_task", "predict", "score", "seed_everything"]
