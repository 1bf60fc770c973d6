"""Benchmark: `pubmedlm blurb` (HPO on dev, mean test score over seeds) against a plain Hugging Face
`Trainer` fine-tune of the same model, on one NER task (default NCBI-disease, full train set).

- HF: `AutoModelForTokenClassification` on MiniLM (BERT defaults: dropout 0.1), the token-
  classification example's recipe (each word's first piece labelled, others -100,
  `DataCollatorForTokenClassification`), `Trainer` with lr 5e-5, batch 32, 3 epochs, linear
  decay, no warm-up, no weight decay, bf16 on CPU, seed 42; test scored with seqeval on the
  first pieces' argmax tags.
- ours: `pubmedlm blurb --model minilm -d <task>` on the same prepared data: the search space of
  params (the paper's: LR log-range around {1e-5, 3e-5, 5e-5}, batch {16, 32}, epochs, warm-up,
  weight decay, dropout) at a CPU-sized budget (`--samples`, `--epochs`), ASHA, then `--seeds`
  seeds with the chosen configuration; no caps.

    .venv/bin/python pipelines/bench/finetune_vs_hf.py                   # ~1 h on 2 CPU cores
    .venv/bin/python pipelines/bench/finetune_vs_hf.py --samples 4 --epochs 2 4 --seeds 3

Ends with one line:
`SUMMARY finetune_vs_hf: <task> ours M ± S (k seeds, T trial-epochs) vs HF Trainer H: \
+D points (goal >= -1.5)`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import make_project


def hf_trainer(root: Path, task_id: str, seed: int = 42) -> tuple[float, float]:
    """Test entity F1 (percent) and wall seconds of the plain HF recipe."""
    import numpy as np
    from datasets import Dataset
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from pubmedlm.blurb.normalized import read_jsonl
    from pubmedlm.text.models import load_tokenizer, minilm_path

    labels = ["O", "B", "I"]
    tok = load_tokenizer("minilm")
    gold = root / "data/blurb_data" / task_id

    def encode(rows: list[dict]) -> tuple[Dataset, list[list[int]]]:
        enc = tok([r["tokens"] for r in rows], is_split_into_words=True, truncation=True, max_length=512)
        all_labels, firsts = [], []
        for i, r in enumerate(rows):
            seen, lab, first = set(), [], [-1] * len(r["tokens"])
            for p, w in enumerate(enc.word_ids(i)):
                if w is None or w in seen:
                    lab.append(-100)
                else:
                    seen.add(w)
                    first[w] = p
                    lab.append(labels.index(r["tags"][w]))
            all_labels.append(lab)
            firsts.append(first)
        data = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "token_type_ids": enc["token_type_ids"], "labels": all_labels}
        return Dataset.from_dict(data), firsts

    train_rows, test_rows = read_jsonl(gold / "train.jsonl"), read_jsonl(gold / "test.jsonl")
    train, _ = encode(train_rows)
    test, firsts = encode(test_rows)
    model = AutoModelForTokenClassification.from_pretrained(minilm_path(), num_labels=3)
    args = TrainingArguments(output_dir=str(root / "hf-out"), learning_rate=5e-5,
                             per_device_train_batch_size=32, per_device_eval_batch_size=64,
                             num_train_epochs=3, bf16=True, use_cpu=True, seed=seed, save_strategy="no",
                             report_to="none", logging_steps=50, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      data_collator=DataCollatorForTokenClassification(tok))
    t0 = time.time()
    trainer.train()
    logits = trainer.predict(test).predictions
    wall = time.time() - t0
    preds = []
    for i, first in enumerate(firsts):
        best = np.asarray(logits[i]).argmax(-1)
        preds.append([labels[best[p]] if p >= 0 else "O" for p in first])
    return 100 * f1_score([r["tags"] for r in test_rows], preds), wall


def ours(root: Path, task_id: str, samples: int, epochs: tuple[int, int], seeds: int) -> tuple[dict, float]:
    sets = [f"tune.num_samples={samples}", f"tune.search.epochs=[{epochs[0]}, {epochs[1]}]",
            f"finetune.seeds={{default: {seeds}}}"]
    args = [sys.executable, "-m", "pubmedlm.cli", "blurb", "--model", "minilm", "-d", task_id]
    for s in sets:
        args += ["--set", s]
    t0 = time.time()
    subprocess.run(args, cwd=root, env=os.environ, check=True)
    wall = time.time() - t0
    base = root / "data/blurb/minilm"
    results = json.loads((base / "finetune" / task_id / "results.json").read_text())
    best = json.loads((base / "tune" / task_id / "best.json").read_text())
    return {"results": results, "best": best}, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="NCBI-disease")
    ap.add_argument("--samples", type=int, default=4, help="trials of the search")
    ap.add_argument("--epochs", type=int, nargs=2, default=(2, 4), help="epoch range searched")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip-hf", type=float, default=None, help="reuse an HF F1 measured before")
    a = ap.parse_args()
    root = make_project([a.task], {
        "runtime": {"cpus_per_worker": 2, "progress": False, "micro_batch_size": 32},
        "finetune": {"model": "minilm", "datasets": [a.task]},
        "tune": {"grace_period": 1, "reduction_factor": 2},
    }, a.workdir)
    hf, hf_wall = (a.skip_hf, 0.0) if a.skip_hf is not None else hf_trainer(root, a.task)
    print(f"HF Trainer: test F1 {hf:.2f} in {hf_wall:.0f} s", flush=True)
    out, wall = ours(root, a.task, a.samples, tuple(a.epochs), a.seeds)
    r, b = out["results"], out["best"]
    print("\n| side | test F1 | seeds | wall s | notes |\n|---|---|---|---|---|")
    print(f"| HF Trainer (lr 5e-5, bs 32, 3 ep) | {hf:.2f} | 1 | {hf_wall:.0f} | |")
    print(f"| pubmedlm blurb | {r['test']['mean']:.2f} ± {r['test']['std']:.2f} | {r['test']['n']} | "
          f"{wall:.0f} | {b['trials']} trials, {b['trial_epochs']} trial-epochs, "
          f"chosen {json.dumps(b['hparams'])}, dev {b['dev_score']:.2f} |")
    diff = r["test"]["mean"] - hf
    print(f"SUMMARY finetune_vs_hf: {a.task} ours {r['test']['mean']:.2f} ± {r['test']['std']:.2f} "
          f"({r['test']['n']} seeds, {b['trial_epochs']} trial-epochs) vs HF Trainer {hf:.2f}: "
          f"{diff:+.2f} points (goal >= -1.5)")


if __name__ == "__main__":
    main()
