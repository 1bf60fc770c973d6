"""`pubmedlm compare RUN_A RUN_B`: per-dataset and BLURB differences between two evaluated runs,
with 95% confidence intervals, and which differences are significant.

A run is a folder with `finetune/<dataset>/results.json` (a `pubmedlm blurb` run:
`data/blurb/<model>`), a project root (its `data/finetune/`), a model name under `data/blurb/`,
or `pipeline` (this project's `data/finetune/`).

Two intervals, both for A - B:

- **seeds** (default): Welch's t interval over the per-seed test scores (`scipy.stats.ttest_ind`,
  unequal variances), per dataset. The BLURB difference is a weighted sum of dataset means (each
  dataset weighs 1 / (task types x datasets of its type)); its interval is normal, from the
  datasets' variances of the mean. Needs >= 2 seeds on both sides.
- **bootstrap** (`--bootstrap N`): a paired bootstrap over test examples (rows resampled with
  replacement, both runs scored on the same resample with the task's metric), on the best-dev
  seed's predictions of each run. Works with one seed; needs both runs' prediction files. A
  resample is scored from the examples' counts (`metrics.COUNTS`: they add up to the metric), not
  by re-running the metric on copied rows: the same numbers, thousands of times faster.

The BLURB interval is the weighted sum of the datasets' resampled differences (datasets are
resampled independently). A difference is significant when its interval excludes 0. The paper's
comparisons turn on half-point gaps; with 5 seeds, a half-point gap is often inside the interval.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pubmedlm.blurb.score import TASK_TYPE_OF, TASK_TYPES, canonical
from pubmedlm.errors import UserError


class CompareError(UserError, ValueError):
    """A run cannot be compared (missing folder or results); the message names it."""


@dataclass
class RunResults:
    """One run's fine-tuning results: per dataset (dataset id) its results.json."""

    name: str
    folder: Path
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def seeds(self, task: str) -> list[float]:
        return [float(s["test_score"]) for s in self.results[task]["seeds"]]

    def predictions(self, task: str) -> Path:
        best = self.results[task]["best_seed"]
        return self.folder / task / "predictions" / f"seed-{best}" / "test" / f"{task}.jsonl"


def load_run(spec: str, root: Path) -> RunResults:
    """Resolve a run spec (folder, project root, model under data/blurb, or `pipeline`)."""
    candidates = []
    if spec == "pipeline":
        candidates.append(root / "data" / "finetune")
    path = Path(spec)
    candidates += [path / "finetune", path / "data" / "finetune", path,
                   root / "data" / "blurb" / spec / "finetune"]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*/results.json")):
            run = RunResults(spec, folder)
            for f in sorted(folder.glob("*/results.json")):
                r = json.loads(f.read_text())
                if r.get("status") == "ok":
                    run.results[f.parent.name] = r
            if run.results:
                return run
    raise CompareError(f"{spec}: no fine-tuning results found (looked for */results.json in "
                       f"{', '.join(str(c) for c in candidates)})")


def welch(a: list[float], b: list[float]) -> dict[str, float] | None:
    """A - B with Welch's 95% interval and p-value (None when a side has < 2 seeds)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0:
        d = statistics.fmean(a) - statistics.fmean(b)
        return {"diff": d, "low": d, "high": d, "p": 0.0 if d else 1.0}
    t = stats.ttest_ind(a, b, equal_var=False)
    ci = t.confidence_interval(0.95)
    return {"diff": statistics.fmean(a) - statistics.fmean(b), "low": float(ci.low), "high": float(ci.high),
            "p": float(t.pvalue)}


def _read_predictions(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CompareError(f"no predictions at {path}; the bootstrap needs both runs' prediction files")
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                out[str(row["id"])] = row["prediction"]
    return out


def paired_bootstrap(task_id: str, gold_dir: Path, pred_a: Path, pred_b: Path, samples: int,
                     seed: int = 0) -> dict[str, float]:
    """A - B on `samples` resamples of the test items both runs predicted (rows; HoC: abstracts),
    each resample scored with the task's metric from the items' summed counts (`metrics.COUNTS`).
    A metric undefined on a resample (Pearson of constant predictions) scores 0 there."""
    from pubmedlm.blurb import tasks
    from pubmedlm.blurb.normalized import read_jsonl
    from pubmedlm.blurb.predictions import _value, item_counts, score_counts

    task = tasks.get(task_id)
    a, b = _read_predictions(pred_a), _read_predictions(pred_b)
    gold = [r for r in read_jsonl(gold_dir / task_id / "test.jsonl")
            if str(r["id"]) in a and str(r["id"]) in b]
    if not gold:
        raise CompareError(f"{task_id}: the two runs predicted no common test rows")
    counts_a = item_counts(task, gold, [_value(task, a[str(r["id"])], r, str(pred_a)) for r in gold])
    counts_b = item_counts(task, gold, [_value(task, b[str(r["id"])], r, str(pred_b)) for r in gold])

    def diff(weights: np.ndarray) -> np.ndarray:
        return np.nan_to_num(score_counts(task, weights @ counts_a)) - np.nan_to_num(score_counts(
            task, weights @ counts_b))

    items = len(counts_a)
    observed = float(diff(np.ones(items)))
    rng = np.random.default_rng(seed)
    # a resample: how often each item is drawn (with replacement, as many draws as items); 256 at a time
    diffs = np.empty(samples)
    for start in range(0, samples, 256):
        draws = [np.bincount(rng.integers(0, items, items), minlength=items)
                 for _ in range(min(256, samples - start))]
        diffs[start:start + len(draws)] = diff(np.stack(draws).astype(float))
    low, high = np.percentile(diffs, [2.5, 97.5])
    p = float(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))
    return {"diff": observed, "low": float(low), "high": float(high), "p": p, "rows": len(gold),
            "samples": diffs}


def blurb_weights(datasets: list[str]) -> dict[str, float]:
    """Each dataset's weight in the BLURB macro average over the task types present."""
    names = {d: canonical(d) for d in datasets}
    types = {TASK_TYPE_OF[n] for n in names.values()}
    per_type = {t: sum(1 for n in names.values() if TASK_TYPE_OF[n] == t) for t in TASK_TYPES}
    return {d: 1.0 / (len(types) * per_type[TASK_TYPE_OF[n]]) for d, n in names.items()}


def compare(a: RunResults, b: RunResults, *, bootstrap: int = 0,
            gold_dir: Path | None = None) -> dict[str, Any]:
    """Per-dataset rows and the BLURB row (over the datasets both runs have)."""
    common = [t for t in a.results if t in b.results]
    if not common:
        raise CompareError(f"{a.name} and {b.name} share no fine-tuned dataset")
    rows: list[dict[str, Any]] = []
    samples: dict[str, np.ndarray] = {}
    for task in common:
        sa, sb = a.seeds(task), b.seeds(task)
        row: dict[str, Any] = {"dataset": task, "a_mean": statistics.fmean(sa),
                               "b_mean": statistics.fmean(sb),
                               "a_std": statistics.stdev(sa) if len(sa) > 1 else 0.0,
                               "b_std": statistics.stdev(sb) if len(sb) > 1 else 0.0,
                               "a_n": len(sa), "b_n": len(sb)}
        row["diff"] = row["a_mean"] - row["b_mean"]
        interval = (paired_bootstrap(task, gold_dir, a.predictions(task), b.predictions(task), bootstrap)
                    if bootstrap and gold_dir is not None else welch(sa, sb))
        row["method"] = "bootstrap" if bootstrap else "seeds"
        if interval:
            row.update({"low": interval["low"], "high": interval["high"], "p": interval["p"]})
            if bootstrap:  # the bootstrap compares the best-dev seeds: so does its difference
                row["diff_seed_means"], row["diff"] = row["diff"], interval["diff"]
        row["significant"] = bool(interval) and (row["low"] > 0 or row["high"] < 0)
        if bootstrap:
            samples[task] = interval["samples"]
        rows.append(row)
    weights = blurb_weights(common)
    diff = sum(weights[r["dataset"]] * r["diff"] for r in rows)
    blurb: dict[str, Any] = {"dataset": "BLURB", "diff": diff, "datasets": len(common),
                             "a_mean": sum(weights[r["dataset"]] * r["a_mean"] for r in rows),
                             "b_mean": sum(weights[r["dataset"]] * r["b_mean"] for r in rows)}
    if samples:  # datasets resampled independently: BLURB's resample is the weighted sum of theirs
        total = sum(weights[t] * v for t, v in samples.items())
        low, high = np.percentile(total, [2.5, 97.5])
        blurb.update({"low": float(low), "high": float(high), "significant": bool(low > 0 or high < 0)})
    elif all(r["a_n"] > 1 and r["b_n"] > 1 for r in rows):
        var = sum(weights[r["dataset"]] ** 2 * (r["a_std"] ** 2 / r["a_n"] + r["b_std"] ** 2 / r["b_n"])
                  for r in rows)
        half = 1.959964 * math.sqrt(var)
        blurb.update({"low": diff - half, "high": diff + half,
                      "significant": diff - half > 0 or diff + half < 0})
    else:
        blurb["significant"] = False
    only = sorted(set(a.results) ^ set(b.results))
    return {"a": a.name, "b": b.name, "rows": rows, "blurb": blurb, "not_shared": only}


__all__ = ["CompareError", "RunResults", "blurb_weights", "compare", "load_run", "paired_bootstrap", "welch"]
