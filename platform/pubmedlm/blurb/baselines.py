"""Sanity baselines: what a trivial constant predictor scores on each BLURB dataset.

A model that does not beat these has learnt nothing the label distribution did not already say;
the registry gate never makes such a model `champion` (`registry.gate`). The constant is chosen
from the train split by a fixed rule per metric and scored through the platform's own scoring
(`predictions.score_dataset`), on exactly the rows a model is scored on (the capped sample of a
tiny-profile run: the ids of its prediction files), so the numbers are what a model predicting
that constant would get.

| metric | datasets | constant prediction (train split) | score |
|---|---|---|---|
| `entity_f1` | BC5-chem, BC5-disease, NCBI-disease, BC2GM, JNLPBA | all `O` (no mention) | 0 |
| `pico_token_macro_f1` | EBM PICO | all `O` | 0 (`O` is not an averaged class) |
| `positive_f1` | GAD | the positive label `1` on every row (all-positive) | 2P / (P + n) |
| `micro_f1_excluding` | ChemProt, DDI | train's most frequent positive label on every row \
(the majority, `false`, scores 0) | 2P_c / (P + n) |
| `hoc_abstract_micro_f1` | HoC | all ten hallmarks on every sentence (all-positive) | 2G / (G + 10 A) |
| `accuracy` | PubMedQA, BioASQ | train's majority answer | its share of the rows |
| `pearson` | BIOSSES | train's mean score | undefined (a constant); recorded as 0, as the \
fine-tuning stages count a model's constant output |

(P: gold positives, P_c: gold rows of the predicted class, n: rows; G: gold (abstract, hallmark)
cells, A: abstracts.) Ties between equally frequent labels go to the first in the task table.
Scores are percentages like every other score of the platform.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pubmedlm.blurb.normalized import Row, read_jsonl
from pubmedlm.blurb.predictions import score_dataset
from pubmedlm.blurb.tasks import Task

ALL_O = "O"


def _most_frequent(labels: list[str], allowed: tuple[str, ...]) -> str:
    counts = Counter(labels)
    if not any(counts[label] for label in allowed):
        raise ValueError(f"no train row carries any of {', '.join(allowed)}")
    return max(allowed, key=lambda label: (counts[label], -allowed.index(label)))


def constant(task: Task, train: list[Row]) -> tuple[Any, str]:
    """(the constant prediction, the rule in words) of a task, chosen on its train rows."""
    if task.task_type in ("ner", "pico"):
        return ALL_O, "all O (no mention tagged)"
    if task.metric == "pearson":
        mean = math.fsum(r["score"] for r in train) / len(train)
        return mean, f"train mean score {mean:.4f} (Pearson of a constant is undefined: counted 0)"
    if task.metric == "hoc_abstract_micro_f1":
        everything = frozenset(task.label_value(label) for label in task.labels)
        return everything, "all labels on every row (all-positive)"
    labels = [r["label"] for r in train]
    if task.metric == "positive_f1":
        positive = task.metric_args.get("positive", "1")
        return positive, f"all-positive ({positive!r} on every row)"
    if task.metric == "micro_f1_excluding":
        negative = task.metric_args["negative"]
        value = _most_frequent(labels, tuple(label for label in task.labels if label != negative))
        return value, f"train's most frequent positive class {value!r} on every row"
    value = _most_frequent(labels, task.labels)
    return value, f"train's majority class {value!r} on every row"


def predictions(task: Task, value: Any, rows: list[Row]) -> list[Any]:
    """The constant, one prediction per row in the form `score_dataset` takes (tags per token)."""
    if task.task_type in ("ner", "pico"):
        return [[value] * len(r["tokens"]) for r in rows]
    return [value] * len(rows)


def score(task: Task, value: Any, rows: list[Row]) -> float:
    """The constant's score (percent) on `rows`; an undefined metric (Pearson) counts 0."""
    got = score_dataset(task, rows, predictions(task, value, rows))
    return 0.0 if got is None else got


def sanity(task: Task, train: list[Row], scored: dict[str, list[Row]]) -> dict[str, Any]:
    """{"rule", "prediction", <split>: score, "rows": {split: n}} for the rows of each split scored."""
    value, rule = constant(task, train)
    shown = sorted(value) if isinstance(value, frozenset) else value
    scores = {split: score(task, value, rows) for split, rows in scored.items()}
    rows = {split: len(split_rows) for split, split_rows in scored.items()}
    return {"rule": rule, "prediction": shown, **scores, "rows": rows}


def restrict(rows: list[Row], ids: Collection[str] | None) -> list[Row]:
    """The rows whose id is in `ids` (None: all), in file order: the rows a model was scored on."""
    if ids is None:
        return rows
    wanted = set(ids)
    kept = [r for r in rows if r["id"] in wanted]
    if len(kept) != len(wanted):
        missing = sorted(wanted - {r["id"] for r in kept})
        raise ValueError(f"{len(missing)} scored ids are not in the gold split, "
                         f"e.g. {', '.join(missing[:3])}")
    return kept


def from_gold(gold_dir: Path, task: Task,
              scored_ids: dict[str, Collection[str] | None]) -> dict[str, Any]:
    """`sanity` of a task from the prepared data (`data/blurb_data/<id>/`): the constant chosen on
    train, scored on the rows of each split whose ids are given (None: the whole split)."""
    folder = Path(gold_dir) / task.id
    scored = {split: restrict(read_jsonl(folder / f"{split}.jsonl"), ids)
              for split, ids in scored_ids.items()}
    return sanity(task, read_jsonl(folder / "train.jsonl"), scored)


__all__ = ["constant", "from_gold", "predictions", "restrict", "sanity", "score"]
