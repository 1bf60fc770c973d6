"""Paired bootstrap: `compare.paired_bootstrap` (each resample scored from per-example counts,
`metrics.COUNTS`) vs the plain recipe (each resample's rows copied and scored with the task's
metric, seqeval for NER), side by side on real BLURB test sets.

Two prediction files per dataset are made from the gold by flipping labels at random (a model
right most of the time); both methods draw the same resamples from the same seed, so their
differences must agree to 1e-9 (checked). Prints a table and one line:
`SUMMARY bootstrap: <dataset> x<speed-up> (counts S1 s vs re-scoring S2 s); ...`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import make_project

DATASETS = ["BC5-chem", "NCBI-disease", "ChemProt", "HoC", "BIOSSES"]


def perturbed(task, row: dict, rng: random.Random):
    if task.task_type in ("ner", "pico"):
        return [rng.choice(task.labels) if rng.random() < 0.1 else t for t in row["tags"]]
    if task.task_type == "similarity":
        return row["score"] + rng.gauss(0, 1.0)
    if task.task_type == "doc_classification":
        return sorted({int(x) for x in row["labels"] if rng.random() < 0.8})
    return rng.choice(task.labels) if rng.random() < 0.2 else row["label"]


def rescoring(task, gold: list[dict], pa: list, pb: list, samples: int, seed: int) -> np.ndarray:
    """The plain recipe: copy each resample's rows (HoC: abstracts, renamed per draw) and score them."""
    from pubmedlm.blurb.metrics import abstract_id, hoc_abstracts
    from pubmedlm.blurb.predictions import score_dataset

    documents = task.task_type == "doc_classification"
    unit = (lambda i: abstract_id(gold[i].get("doc_id") or gold[i]["id"])) if documents else (lambda i: i)
    units = hoc_abstracts([unit(i) for i in range(len(gold))]) if documents else list(range(len(gold)))
    members: dict = {}
    for i in range(len(gold)):
        members.setdefault(unit(i), []).append(i)
    rng = np.random.default_rng(seed)
    out = np.empty(samples)
    for k in range(samples):
        rows, idx = [], []
        for draw, u in enumerate(units[j] for j in rng.integers(0, len(units), len(units))):
            for i in members[u]:
                rows.append({**gold[i], "id": f"{u}#{draw}_s{i}", "doc_id": f"{u}#{draw}"} if documents
                            else gold[i])
                idx.append(i)
        a = score_dataset(task, rows, [pa[i] for i in idx])
        b = score_dataset(task, rows, [pb[i] for i in idx])
        out[k] = (a or 0.0) - (b or 0.0)
    return out


def bench(gold_dir: Path, name: str, samples: int, work: Path) -> dict:
    from pubmedlm.blurb import tasks
    from pubmedlm.blurb.compare import paired_bootstrap
    from pubmedlm.blurb.normalized import read_jsonl

    task = tasks.get(name)
    gold = read_jsonl(gold_dir / name / "test.jsonl")
    rng = random.Random(name)
    preds = []
    for side in ("a", "b"):
        values = [perturbed(task, r, rng) for r in gold]
        path = work / f"{name}-{side}.jsonl"
        path.write_text("".join(json.dumps({"id": r["id"], "prediction": v}) + "\n"
                                for r, v in zip(gold, values, strict=True)))
        preds.append((path, [frozenset(v) if task.task_type == "doc_classification" else v for v in values]))
    t0 = time.perf_counter()
    ours = paired_bootstrap(name, gold_dir, preds[0][0], preds[1][0], samples, seed=0)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = rescoring(task, gold, preds[0][1], preds[1][1], samples, seed=0)
    t_plain = time.perf_counter() - t0
    return {"dataset": name, "rows": len(gold), "samples": samples, "counts_s": t_ours,
            "rescoring_s": t_plain,
            "ratio": t_plain / t_ours, "max_abs_diff": float(np.max(np.abs(ours["samples"] - plain))),
            "interval": (ours["low"], ours["high"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=DATASETS)
    ap.add_argument("--samples", type=int, default=200,
                    help="resamples per method (the re-scoring side is slow)")
    ap.add_argument("--workdir", default=None, help="project folder (BLURB data prepared there once)")
    args = ap.parse_args()
    root = make_project(args.datasets, {}, args.workdir)
    rows = [bench(root / "data/blurb_data", d, args.samples, root) for d in args.datasets]
    print("| dataset | test rows | resamples | counts s | re-scoring s | speed-up | max abs diff "
          "| 95% interval |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        low, high = r["interval"]
        print(f"| {r['dataset']} | {r['rows']} | {r['samples']} | {r['counts_s']:.2f} | "
              f"{r['rescoring_s']:.1f} | x{r['ratio']:.0f} | {r['max_abs_diff']:.1e} | "
              f"[{low:+.2f}, {high:+.2f}] |")
        assert r["max_abs_diff"] < 1e-9, f"{r['dataset']}: the two methods disagree"
    print("SUMMARY bootstrap: " + "; ".join(
        f"{r['dataset']} x{r['ratio']:.0f} (counts {r['counts_s']:.2f} s vs "
        f"re-scoring {r['rescoring_s']:.1f} s)" for r in rows))


if __name__ == "__main__":
    main()
