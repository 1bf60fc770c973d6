"""Scoring any system's BLURB predictions against the normalized gold splits of `blurb-data`.

Owns the prediction file format, its validation and the per-dataset scoring that `pubmedlm
evaluate --predictions DIR` (and the fine-tuning `evaluate` stage) run.

**Format.** One JSON Lines file per dataset, `<DIR>/<id>.jsonl`, named by dataset id (`BC5-chem`,
`EBM-PICO`, `ChemProt`, ...; the paper's name or the mirror folder name also work). One line per
row of the gold split that is scored (`data/blurb_data/<id>/<split>.jsonl`, default `test`), in
any order: `{"id": "<gold row id>", "prediction": <value>}` where the value is

| task type | datasets | `prediction` |
|---|---|---|
| ner | BC5-chem, BC5-disease, NCBI-disease, BC2GM, JNLPBA | list of tags (`B`/`I`/`O`), one per gold token |
| pico | EBM-PICO | list of tags (`I-PAR`/`I-INT`/`I-OUT`/`O`; `B-X` is read as `I-X`), one per token |
| re | ChemProt, DDI, GAD | the class label: `CPR:3`..`false`; `DDI-effect`..`DDI-false`; `"1"`/`"0"` |
| similarity | BIOSSES | a number (the predicted similarity) |
| doc_classification | HoC | list of positive hallmark indices (ints 0-9), per sentence (`<PMID>_s<n>` ids) \
or per abstract (`<PMID>` ids) |
| qa | PubMedQA, BioASQ | `yes` / `no` / `maybe` (BioASQ: `yes` / `no`) |

Every error names the file and line: invalid JSON, a missing key, a duplicate id, an id that is
not in the gold split, an unknown label, a wrong number of tags, a non-numeric score; a gold id
without a prediction names the file and the first such ids.

**Scores** are percentages (metric × 100, as in the paper's tables). A dataset without a
prediction file is left out, which makes the BLURB score partial (it says which); a dataset whose
gold was prepared with a proxy split (meta.json `status: proxy`) is marked proxy wherever shown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pubmedlm.blurb import tasks
from pubmedlm.blurb.flags import PROXY_NOTE
from pubmedlm.blurb.formats import json_lines
from pubmedlm.blurb.metrics import COUNTS, METRICS
from pubmedlm.blurb.normalized import Row, read_jsonl
from pubmedlm.blurb.published import comparison_table
from pubmedlm.blurb.score import blurb_score
from pubmedlm.blurb.tasks import Task
from pubmedlm.errors import UserError

SUFFIX = ".jsonl"


class PredictionError(UserError, ValueError):
    """A prediction file or the gold folder is unusable; the message names the file and line."""


def load_gold(gold_dir: Path, task: Task, split: str) -> tuple[dict[str, Any], list[Row]]:
    """meta.json and the rows of one prepared gold split."""
    folder = gold_dir / task.id
    meta_path, rows_path = folder / "meta.json", folder / f"{split}.jsonl"
    if not meta_path.is_file() or not rows_path.is_file():
        raise PredictionError(
            f"no prepared gold for {task.id} in {gold_dir} ({rows_path} absent): run "
            f"`pubmedlm blurb-data` (see metrics/blurb_data.json for why it may be missing)")
    return json.loads(meta_path.read_text(encoding="utf-8")), read_jsonl(rows_path)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, row in json_lines(path, PredictionError):
        if not isinstance(row, dict) or "id" not in row or "prediction" not in row:
            raise PredictionError(f"{path}:{lineno}: expected an object with 'id' and 'prediction'")
        yield lineno, row


def _tags(task: Task, value: Any, gold: Row, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) != len(gold["tokens"]):
        n = len(value) if isinstance(value, list) else "no list of"
        raise PredictionError(f"{where}: {n} tags for {len(gold['tokens'])} tokens of {gold['id']}")
    tags = [f"I-{t[2:]}" if task.task_type == "pico" and isinstance(t, str) and t.startswith("B-") else t
            for t in value]
    unknown = [t for t in tags if t not in task.labels]
    if unknown:
        raise PredictionError(f"{where}: unknown label {unknown[0]!r}; "
                              f"expected one of {', '.join(task.labels)}")
    return tags


def _value(task: Task, value: Any, gold: Row, where: str) -> Any:
    """A prediction checked against the task's label set; returned in the metric's form."""
    if task.task_type in ("ner", "pico"):
        return _tags(task, value, gold, where)
    if task.task_type == "similarity":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PredictionError(f"{where}: prediction {value!r} is not a finite number")
        return float(value)
    if task.task_type == "doc_classification":
        # HoC: hallmark indices (ints); a user task: its label names (strings); compared as text
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, (int, str))
                                              for v in value):
            raise PredictionError(f"{where}: expected a list of labels (HoC: hallmark indices), "
                                  f"got {value!r}")
        unknown = [v for v in value if str(v) not in task.labels]
        if unknown:
            raise PredictionError(f"{where}: unknown label {unknown[0]!r}; "
                                  f"the labels are {task.labels[0]}..{task.labels[-1]}")
        return frozenset(value)  # score_dataset compares labels as text
    if value not in task.labels:
        raise PredictionError(f"{where}: unknown label {value!r}; expected one of {', '.join(task.labels)}")
    return value


def _hoc_abstracts(gold_rows: list[Row]) -> list[Row]:
    """HoC gold per abstract: the union of its sentences' labels (for per-abstract predictions)."""
    docs: dict[str, set[int]] = {}
    for row in gold_rows:
        docs.setdefault(row["doc_id"], set()).update(row["labels"])
    return [{"id": doc, "labels": sorted(labels)} for doc, labels in docs.items()]


def read_predictions(path: Path, task: Task, gold_rows: list[Row]) -> tuple[list[Row], list[Any]]:
    """The gold rows scored and the checked predictions aligned with them, from one file.

    HoC files may predict per sentence or per abstract (decided by the first id); the gold rows
    returned are then sentences or abstracts."""
    by_id = {row["id"]: row for row in gold_rows}
    preds: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    for lineno, row in _lines(path):
        pid, where = row["id"], f"{path}:{lineno}"
        if not isinstance(pid, str):
            raise PredictionError(f"{where}: id {pid!r} is not a string")
        if not preds and task.task_type == "doc_classification" and pid not in by_id:
            abstracts = _hoc_abstracts(gold_rows)
            if pid in {a["id"] for a in abstracts}:
                gold_rows, by_id = abstracts, {a["id"]: a for a in abstracts}
        if pid not in by_id:
            raise PredictionError(f"{where}: id {pid!r} is not in the gold split (extra id)")
        if pid in preds:
            raise PredictionError(f"{where}: id {pid!r} predicted twice (first on line {first_line[pid]})")
        preds[pid], first_line[pid] = _value(task, row["prediction"], by_id[pid], where), lineno
    if not preds:
        raise PredictionError(f"{path}: empty file (no predictions); expected one line per gold id "
                              f"({len(gold_rows)} ids)")
    missing = [r["id"] for r in gold_rows if r["id"] not in preds]
    if missing:
        raise PredictionError(f"{path}: {len(missing)} of {len(gold_rows)} gold ids have no prediction, "
                              f"e.g. {', '.join(missing[:5])}")
    return gold_rows, [preds[r["id"]] for r in gold_rows]


def write_predictions(path: Path, rows: list[Row], preds: list[Any]) -> None:
    """Write one file in this module's format (what `read_predictions` reads): a line per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row, pred in zip(rows, preds, strict=True):
            value = sorted(pred) if isinstance(pred, (set, frozenset)) else pred
            f.write(json.dumps({"id": row["id"], "prediction": value}, ensure_ascii=False) + "\n")


def _metric_args(task: Task, gold_rows: list[Row], preds: list[Any]) -> tuple[tuple, dict[str, Any]]:
    """The task's metric arguments (gold and predictions in the metric's form)."""
    if task.task_type in ("ner", "pico"):
        return ([r["tags"] for r in gold_rows], preds), {}
    if task.task_type == "doc_classification":
        # per document: its doc_id (HoC's abstract; a user task's doc_id column), else the row's id
        gold, pred = [{str(x) for x in r["labels"]} for r in gold_rows], [{str(x) for x in p} for p in preds]
        return (gold, pred, [r.get("doc_id") or r["id"] for r in gold_rows]), {}
    if task.task_type == "similarity":
        return ([r["score"] for r in gold_rows], preds), {}
    return ([r["label"] for r in gold_rows], preds), dict(task.metric_args)


def score_dataset(task: Task, gold_rows: list[Row], preds: list[Any]) -> float | None:
    """The task's metric as a percentage; None when undefined (Pearson of constant predictions)."""
    args, kwargs = _metric_args(task, gold_rows, preds)
    value = METRICS[task.metric](*args, **kwargs)
    return None if math.isnan(value) else 100 * value


def item_counts(task: Task, gold_rows: list[Row], preds: list[Any]) -> np.ndarray:
    """The metric's counts (`metrics.COUNTS`), one row per scored item: per gold row, or per
    document for document classification (in the order of `metrics.hoc_abstracts`)."""
    args, kwargs = _metric_args(task, gold_rows, preds)
    return COUNTS[task.metric][0](*args, **kwargs)


def score_counts(task: Task, totals: np.ndarray) -> np.ndarray:
    """Percentages from summed counts (any leading shape); NaN where the metric is undefined."""
    return 100 * COUNTS[task.metric][1](totals)


def breakdown(gold_dir: Path, task: Task, path: Path, split: str) -> dict[str, Any] | None:
    """The metric's per-class breakdown (`metrics.REPORTS`; typed NER: precision, recall, F1 and
    support per type and micro) of one prediction file, on the gold rows it predicts (a capped run
    predicts a sample); None for a metric without one."""
    from pubmedlm.blurb.metrics import REPORTS

    if task.metric not in REPORTS:
        return None
    _, gold = load_gold(gold_dir, task, split)
    ids = {row["id"] for _, row in _lines(path)}
    gold, preds = read_predictions(path, task, [r for r in gold if r["id"] in ids])
    return REPORTS[task.metric]([r["tags"] for r in gold], preds)


def _prediction_files(pred_dir: Path) -> dict[str, Path]:
    if not pred_dir.is_dir():
        raise PredictionError(f"predictions folder not found: {pred_dir}")
    files: dict[str, Path] = {}
    for path in sorted(pred_dir.glob(f"*{SUFFIX}")):
        try:
            task = tasks.get(path.name[: -len(SUFFIX)])
        except KeyError:
            raise PredictionError(f"{path}: not a BLURB dataset name; expected <id>{SUFFIX} with id one of "
                                  f"{', '.join(tasks.all_tasks())}") from None
        if task.id in files:
            raise PredictionError(f"{path}: {task.id} already predicted by {files[task.id]}")
        files[task.id] = path
    if not files:
        raise PredictionError(f"{pred_dir}: no prediction files (<id>{SUFFIX}, e.g. BC5-chem{SUFFIX})")
    return files


def score_predictions(gold_dir: Path, pred_dir: Path, split: str = "test") -> dict[str, Any]:
    """Score every prediction file in `pred_dir` against `gold_dir` (the blurb-data output).

    Returns {"split", "datasets": {id: {score, metric, instances, proxy, file}}, "not_scored":
    {id: reason}, "results": {paper name: score}, "proxies": [...], "blurb": BlurbScore.as_dict()}."""
    if split not in tasks.SPLITS:
        raise PredictionError(f"unknown split {split!r}; expected one of {', '.join(tasks.SPLITS)}")
    files = _prediction_files(Path(pred_dir))
    datasets: dict[str, dict[str, Any]] = {}
    not_scored: dict[str, str] = {}
    for task in tasks.all_tasks().values():
        if task.id not in files:
            not_scored[task.id] = f"no {task.id}{SUFFIX} in {pred_dir}"
            continue
        meta, gold = load_gold(Path(gold_dir), task, split)
        gold, preds = read_predictions(files[task.id], task, gold)
        score = score_dataset(task, gold, preds)
        proxy = meta.get("status") == "proxy"
        datasets[task.id] = {"score": score, "metric": task.metric, "instances": len(gold), "proxy": proxy,
                             "file": str(files[task.id])} | ({"note": PROXY_NOTE} if proxy else {})
        if score is None:
            not_scored[task.id] = "metric undefined (constant predictions)"
    results = {tasks.get(d).paper_name: e["score"] for d, e in datasets.items() if e["score"] is not None}
    proxies = [tasks.get(d).paper_name for d, e in datasets.items() if e["proxy"] and d not in not_scored]
    blurb = blurb_score(results, proxies).as_dict() if results else None
    return {"split": split, "gold_dir": str(gold_dir), "predictions_dir": str(pred_dir), "datasets": datasets,
            "not_scored": not_scored, "results": results, "proxies": proxies, "blurb": blurb}


def comparison_markdown(result: dict[str, Any], name: str) -> str:
    """Markdown: the scores beside the published models, partial/proxy notes under the table."""
    head = f"Scores on BLURB {result['split']} (percent)"
    if result["split"] != "test":
        head += "; the published columns are test scores, so this comparison is indicative only"
    table = (comparison_table(result["results"], name=name, proxies=result["proxies"])
             if result["results"] else "")
    notes = [f"- {d}: not scored ({why})" for d, why in result["not_scored"].items()]
    notes += [f"- {p}: {PROXY_NOTE} (gold prepared with a proxy split)" for p in result["proxies"]]
    return "\n".join([head, "", table, *notes]) + "\n"


def rich_table(result: dict[str, Any], name: str,
               models: tuple[str, ...] = ("PubMedBERT", "BioLinkBERT-base", "BioLinkBERT-large", "BioBERT")):
    """A rich table of the scores beside a few published models (all of them are in the markdown)."""
    from rich.table import Table

    from pubmedlm.blurb.published import published

    pub = published()
    proxies = set(result["proxies"])
    table = Table("dataset", name, *models, title=f"BLURB {result['split']} scores (percent)")
    for task in tasks.all_tasks().values():
        score = result["results"].get(task.paper_name)
        cell = ("–" if score is None
                else f"{score:.2f}" + (f" ({PROXY_NOTE})" if task.paper_name in proxies else ""))
        table.add_row(task.paper_name, cell, *(f"{pub.scores[m][task.paper_name]:.2f}" for m in models))
    blurb = result["blurb"]
    label = blurb["label"] if blurb else "BLURB"
    table.add_row(f"[bold]{label}[/bold]", "–" if not blurb else f"{blurb['blurb']:.2f}",
                  *(f"{pub.blurb[m]:.2f}" for m in models))
    return table


__all__ = [
    "PredictionError", "breakdown", "comparison_markdown", "load_gold", "read_predictions", "rich_table",
    "score_dataset", "score_predictions",
]
