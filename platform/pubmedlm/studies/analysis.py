"""A study's numbers: the paper-style table, each variant's difference to the baseline with its
intervals and verdict, and whether the claim holds.

The intervals are `pubmedlm compare`'s (`blurb/compare.py`), called per variant against the
baseline, not re-derived here: Welch's 95% interval over the per-seed test scores and, when
prediction files and the gold data are given, the paired bootstrap over test examples on the
best-dev seeds; the BLURB-weighted average of the study's datasets gets compare's interval too.

A difference's verdict is `better` / `worse` when its interval excludes 0, else `same` (`n/a`
without an interval). The primary interval is Welch's (seed variance is what a rerun sees); the
bootstrap's when there is a single seed.

A claim's rules (`spec.Rule`) are checked cell by cell (variant × dataset, or the BLURB average)
with three outcomes: `holds` when the primary interval lies inside what the rule asks (e.g. within
[-margin, margin]), `fails` when the point estimate is outside it, `inconclusive` between (the
interval straddles the line, a cell has no interval, or a cell is missing). A rule fails when any
cell fails, holds when all hold; the claim likewise over its rules.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pubmedlm.blurb.compare import CompareError, RunResults, blurb_weights, compare
from pubmedlm.studies.spec import BLURB, StdBelow, Study, StudyError

OUTCOMES = ("holds", "inconclusive", "fails")


def runs_from_scores(name: str, scores: Mapping[str, Sequence[float]], folder: Path | None = None,
                     best_seed: Mapping[str, int] | None = None) -> RunResults:
    """A variant's results as `compare` reads them, from per-dataset test scores over seeds (in
    seed order); `folder` and `best_seed` locate the best-dev seeds' predictions for the bootstrap
    (`<folder>/<dataset>/predictions/seed-<best>/test/<dataset>.jsonl`, as `finetune` writes)."""
    run = RunResults(name, folder or Path(name))
    for dataset, values in scores.items():
        run.results[dataset] = {"status": "ok", "seeds": [{"test_score": float(v)} for v in values],
                                "best_seed": (best_seed or {}).get(dataset, 0)}
    return run


def _cell(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "seeds": values}


def table(study: Study, runs: Mapping[str, RunResults]) -> list[dict[str, Any]]:
    """Variant × dataset: test mean ± sample std over seeds, with the paper's number beside; a
    `BLURB` cell (compare's weights over the study's datasets) when a variant has them all."""
    weights = blurb_weights(study.datasets) if len(study.datasets) > 1 else {}
    rows = []
    for variant in study.variants:
        paper = study.paper.get(variant, {})
        run = runs.get(variant)
        cells: dict[str, Any] = {}
        for dataset in study.datasets:
            values = run.seeds(dataset) if run is not None and dataset in run.results else []
            cells[dataset] = {**(_cell(values) if values else {"missing": True}), "paper": paper.get(dataset)}
        if weights and all("mean" in cells[d] for d in study.datasets):
            cells[BLURB] = {"mean": sum(w * cells[d]["mean"] for d, w in weights.items()),
                            "paper": paper.get(BLURB)}
        elif paper.get(BLURB) is not None or weights:
            cells[BLURB] = {"missing": True, "paper": paper.get(BLURB)}
        rows.append({"variant": variant, "cells": cells})
    return rows


def verdict(interval: Mapping[str, Any] | None) -> str:
    """`better` / `worse` when the interval excludes 0, `same` when it holds 0, `n/a` without one."""
    if not interval or interval.get("low") is None:
        return "n/a"
    return "better" if interval["low"] > 0 else "worse" if interval["high"] < 0 else "same"


def _interval(row: Mapping[str, Any]) -> dict[str, float] | None:
    if row.get("low") is None:
        return None
    out = {"low": float(row["low"]), "high": float(row["high"])}
    if "p" in row:
        out["p"] = float(row["p"])
    return out


def _paper_diff(study: Study, variant: str, dataset: str) -> float | None:
    mine, base = study.paper.get(variant, {}).get(dataset), study.paper.get(study.baseline, {}).get(dataset)
    return None if mine is None or base is None else mine - base


def _compare(a: RunResults, b: RunResults, keep: set[str], **kwargs: Any) -> dict[str, dict[str, Any]]:
    """compare()'s rows for the study's datasets, by dataset, plus its BLURB row."""
    sub_a = RunResults(a.name, a.folder, {d: r for d, r in a.results.items() if d in keep})
    sub_b = RunResults(b.name, b.folder, {d: r for d, r in b.results.items() if d in keep})
    try:
        result = compare(sub_a, sub_b, **kwargs)
    except CompareError:  # no dataset in common: every cell of this variant is missing
        return {}
    rows = {r["dataset"]: r for r in result["rows"]}
    if len(keep) > 1 and set(rows) == keep:
        rows[BLURB] = result["blurb"]
    return rows


def differences(study: Study, runs: Mapping[str, RunResults], *, gold_dir: Path | None = None,
                bootstrap: int = 0) -> list[dict[str, Any]]:
    """Each other variant minus the baseline, per dataset (and BLURB): point difference of the
    seed means, Welch's interval, the paired bootstrap's (best-dev seeds) when asked, verdicts."""
    if study.baseline not in runs:
        raise StudyError(f"study {study.name}: no results for the baseline variant {study.baseline!r}")
    base, keep = runs[study.baseline], set(study.datasets)
    out = []
    for variant in study.others():
        if variant not in runs:
            continue
        welch_rows = _compare(runs[variant], base, keep)
        boot_rows = (_compare(runs[variant], base, keep, bootstrap=bootstrap, gold_dir=gold_dir)
                     if bootstrap and gold_dir is not None else {})
        for dataset in [*study.datasets, BLURB]:
            if dataset not in welch_rows:
                continue
            row = welch_rows[dataset]
            welch = _interval(row)
            boot = boot_rows.get(dataset)
            boot_iv = None if boot is None else {**(_interval(boot) or {}), "diff": float(boot["diff"])}
            primary = welch or (boot_iv if boot_iv and "low" in boot_iv else None)
            out.append({"variant": variant, "dataset": dataset, "diff": float(row["diff"]),
                        "welch": welch, "bootstrap": boot_iv, "interval": primary,
                        "method": "welch" if welch else "bootstrap" if primary else None,
                        "verdict": verdict(primary), "verdict_welch": verdict(welch),
                        "verdict_bootstrap": verdict(boot_iv),
                        "paper_diff": _paper_diff(study, variant, dataset)})
    return out


def _band(diff: float, interval: Mapping[str, float] | None, lo: float, hi: float) -> str:
    """Where a difference lies against the band [lo, hi] the rule asks for."""
    if not lo <= diff <= hi:
        return "fails"
    if interval is None:
        return "inconclusive"
    return "holds" if lo <= interval["low"] and interval["high"] <= hi else "inconclusive"


def variance_ratio(a: Sequence[float], b: Sequence[float]) -> dict[str, float] | None:
    """var(a) / var(b) over seeds with its 95% F interval (None when a side has < 2 seeds or b is
    constant)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or statistics.variance(b) == 0:
        return None
    ratio = statistics.variance(a) / statistics.variance(b)
    dfa, dfb = len(a) - 1, len(b) - 1
    return {"ratio": ratio, "low": ratio / float(stats.f.ppf(0.975, dfa, dfb)),
            "high": ratio / float(stats.f.ppf(0.025, dfa, dfb))}


def _std_cell(study: Study, runs: Mapping[str, RunResults], variant: str, dataset: str) -> dict[str, Any]:
    run, base = runs.get(variant), runs.get(study.baseline)
    if run is None or base is None or dataset not in run.results or dataset not in base.results:
        return {"variant": variant, "dataset": dataset, "outcome": "missing"}
    a, b = run.seeds(dataset), base.seeds(dataset)
    ratio = variance_ratio(a, b)
    std_a, std_b = (statistics.stdev(x) if len(x) > 1 else 0.0 for x in (a, b))
    if ratio is None:  # b constant: a cannot be lower; both constant (e.g. all seeds the majority class):
        outcome = "fails" if len(a) > 1 and len(b) > 1 and std_a > 0 else "inconclusive"  # nothing to lower
    else:
        outcome = _band(ratio["ratio"], {"low": ratio["low"], "high": ratio["high"]}, 0.0, 1.0 - 1e-12)
    return {"variant": variant, "dataset": dataset, "std": std_a, "baseline_std": std_b,
            "variance_ratio": ratio, "outcome": outcome}


def _rule_cells(study: Study, rule: Any, runs: Mapping[str, RunResults],
                diffs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    variants = [rule.variant] if hasattr(rule, "variant") else study.others()
    places = [BLURB] if rule.scope == "blurb" else study.datasets
    if isinstance(rule, StdBelow):
        return [_std_cell(study, runs, v, d) for v in variants for d in places]
    m = rule.margin
    lo, hi = {"all_within": (-m, m), "within": (-m, m), "all_below": (-math.inf, -m),
              "below": (-math.inf, -m), "above": (m, math.inf)}[rule.kind]
    by_cell = {(d["variant"], d["dataset"]): d for d in diffs}
    cells = []
    for v in variants:
        for place in places:
            d = by_cell.get((v, place))
            if d is None:
                cells.append({"variant": v, "dataset": place, "outcome": "missing"})
                continue
            # strict rules ("below by more than m") exclude the line itself
            strict_lo, strict_hi = (lo + 1e-12 if rule.kind == "above" else lo,
                                    hi - 1e-12 if rule.kind in ("below", "all_below") else hi)
            cells.append({"variant": v, "dataset": place, "diff": d["diff"], "interval": d["interval"],
                          "outcome": _band(d["diff"], d["interval"], strict_lo, strict_hi)})
    return cells


def combine(outcomes: Sequence[str]) -> str:
    """`fails` if any fails, `holds` if all hold, else `inconclusive` (missing cells included)."""
    if any(o == "fails" for o in outcomes):
        return "fails"
    return "holds" if outcomes and all(o == "holds" for o in outcomes) else "inconclusive"


def evaluate_claim(study: Study, runs: Mapping[str, RunResults],
                   diffs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each rule's cells and outcome, and the claim's."""
    rules = []
    for rule in study.claim.rules:
        cells = _rule_cells(study, rule, runs, diffs)
        rules.append({"rule": rule.model_dump(mode="json"), "cells": cells,
                      "outcome": combine([c["outcome"] for c in cells])})
    return {"text": study.claim.text, "rules": rules, "outcome": combine([r["outcome"] for r in rules])}


def analyse(study: Study, runs: Mapping[str, RunResults], *, gold_dir: Path | None = None,
            bootstrap: int = 0) -> dict[str, Any]:
    """The whole analysis of a study's runs (variant -> `RunResults`) as JSON-ready data."""
    diffs = differences(study, runs, gold_dir=gold_dir, bootstrap=bootstrap)
    return {"study": study.name, "description": study.description, "baseline": study.baseline,
            "datasets": study.datasets, "overrides": study.overrides, "variants": study.variants,
            "hparams": study.hparams, "fixed": study.fixed.model_dump() if study.fixed else None,
            "fixed_per_dataset": study.fixed_per_dataset,
            "seeds": study.seeds, "paper_source": study.paper_source,
            "missing": [v for v in study.variants if v not in runs],
            "table": table(study, runs), "differences": diffs, "claim": evaluate_claim(study, runs, diffs)}


__all__ = ["OUTCOMES", "analyse", "combine", "differences", "evaluate_claim", "runs_from_scores", "table",
           "variance_ratio", "verdict"]
