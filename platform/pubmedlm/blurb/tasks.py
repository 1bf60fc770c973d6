"""The BLURB task table: the 13 datasets as data (`resources/blurb_tasks.yaml`), not classes.

Owns the loader and validator of that file and every dataset's names. One `Task` per row:

| field | meaning |
|---|---|
| `id` | dataset id (what `config` checks dataset lists against), `data/blurb_data/<id>/`, prediction files |
| `paper_name` | the paper's name (`score.DATASETS`, the published table) |
| `folder` | the mirror folder `blurb/<folder>/` (the BLURB data_generation name) |
| `task_type` | `ner`, `pico`, `re`, `similarity`, `doc_classification`, `qa` (see `TASK_TYPE_NAMES`) |
| `head` | `token_classification`, `sequence_classification`, `regression`, `multi_label` |
| `format` | the source reader (`normalized.READERS`): `conll`, `relation_tsv`, `gad_tsv`, ... |
| `files` | split -> source paths of the published BLURB file(s) |
| `converter`, `raw` | ChemProt / DDI: converter name and split -> raw inputs it rebuilds a split from |
| `checks` | extra files the stage cross-checks (EBM PICO PMID lists, PubMedQA test truth) |
| `pmid` | where a row's PMID is (excluding test documents from pretraining): `doc_id`, `id`, `id_prefix` |
| `labels` | the label set (NER/PICO tags, class names, HoC hallmark indices; BIOSSES none) |
| `metric`, `metric_args` | a key of `metrics.METRICS` and its extra keyword arguments (checked by the \
tests, so that the table, which the config reads, does not import the metrics) |
| `max_length` | max input length in sub-word tokens (the paper's where stated; else LinkBERT's) |
| `input` | how the model reads a row: `layout` (tokens/single/pair), `fields`, `tags`, `entity_tokens` |
| `unit`, `paper_counts` | the paper's counting unit and its train/dev/test counts (Table 2) |
| `deviations` | split -> {count, reason}: documented differences between our data and the paper's count |

`canonical()` and the score's aliases come from here: any of id, paper name or folder names a task.

**Users' tasks.** `get` is the one lookup of every stage: BLURB's 13 by any name, then the tasks
declared in `tasks.files` (`usertasks.declared.activate` hands their rows to `use_user_tasks`),
then, given the prepared folder, a task whose `<prepared>/<id>/meta.json` blurb-data wrote for a
user task (a Ray worker's process has no declared tasks of its own). `all_tasks()`, the score and
the paper's tables stay BLURB's 13: a user task is never part of the BLURB score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pubmedlm.errors import UserError

RESOURCE = "blurb_tasks.yaml"
SPLITS = ("train", "dev", "test")
# Registry task types -> the paper's six task-type names (score.TASK_TYPES keys), in its order.
TASK_TYPE_NAMES = {
    "ner": "NER", "pico": "PICO", "re": "relation extraction", "similarity": "sentence similarity",
    "doc_classification": "document classification", "qa": "question answering",
}
UNITS = {"ner": "mentions", "pico": "labelled tokens", "re": "pairs", "similarity": "pairs",
         "doc_classification": "abstracts", "qa": "questions"}
HEADS = ("token_classification", "sequence_classification", "regression", "multi_label")
FORMATS = ("conll", "relation_tsv", "gad_tsv", "biosses_tsv", "hoc_tsv", "pubmedqa_json", "bioasq_tsv")
CONVERTERS = ("chemprot", "ddi")
PMID_FIELDS = ("doc_id", "id", "id_prefix")


class TaskTableError(UserError, ValueError):
    """The task table file breaks its own rules; the message names the row and the field."""


@dataclass(frozen=True)
class Deviation:
    """A documented difference between our count of a split and the paper's."""

    count: int
    reason: str


@dataclass(frozen=True)
class Task:
    """One BLURB dataset: everything the stages need to prepare, fine-tune and score it."""

    id: str
    paper_name: str
    folder: str
    task_type: str
    head: str
    format: str
    files: dict[str, tuple[str, ...]]
    labels: tuple[str, ...]
    metric: str
    max_length: int
    input: dict[str, Any]
    unit: str
    paper_counts: dict[str, int]
    metric_args: dict[str, Any] = field(default_factory=dict)
    converter: str | None = None
    raw: dict[str, tuple[str, ...]] = field(default_factory=dict)
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    deviations: dict[str, Deviation] = field(default_factory=dict)
    pmid: str | None = None
    score_range: tuple[float, float] | None = None
    notes: str = ""

    @property
    def type_name(self) -> str:
        """The paper's task-type name (`score.TASK_TYPES` key)."""
        return TASK_TYPE_NAMES[self.task_type]

    def label_value(self, label: str) -> int | str:
        """A multi-label task's label as prediction files hold it: HoC's hallmark indices are ints
        (BLURB's format), a user task's labels their names."""
        return int(label) if label.isdigit() else label

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, written into each prepared dataset's meta.json."""
        return {
            "id": self.id, "paper_name": self.paper_name, "folder": self.folder,
            "task_type": self.task_type, "head": self.head, "format": self.format,
            "labels": list(self.labels), "metric": self.metric, "metric_args": dict(self.metric_args),
            "max_length": self.max_length, "input": dict(self.input), "unit": self.unit,
            "paper_counts": dict(self.paper_counts), "score_range": list(self.score_range or []) or None,
            "deviations": {s: {"count": d.count, "reason": d.reason} for s, d in self.deviations.items()},
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        """The row `as_dict` wrote (a prepared meta.json, a fine-tuned model's task file); the source
        paths are not in it (empty)."""
        return cls(
            id=d["id"], paper_name=d["paper_name"], folder=d["folder"], task_type=d["task_type"],
            head=d["head"], format=d["format"], files={s: () for s in SPLITS}, labels=tuple(d["labels"]),
            metric=d["metric"], metric_args=dict(d.get("metric_args") or {}), max_length=int(d["max_length"]),
            input=dict(d["input"]), unit=d["unit"], paper_counts=dict(d.get("paper_counts") or {}),
            score_range=tuple(d["score_range"]) if d.get("score_range") else None, notes=d.get("notes", ""),
        )


def _paths(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _task(row: dict[str, Any]) -> Task:
    row = dict(row)
    row["files"] = {s: _paths(v) for s, v in row["files"].items()}
    row["raw"] = {s: _paths(v) for s, v in row.get("raw", {}).items()}
    row["labels"] = tuple(str(x) for x in row["labels"])
    row["deviations"] = {s: Deviation(int(d["count"]), " ".join(d["reason"].split()))
                         for s, d in row.get("deviations", {}).items()}
    if row.get("score_range") is not None:
        row["score_range"] = tuple(float(x) for x in row["score_range"])
    row["notes"] = " ".join(str(row.get("notes", "")).split())
    try:
        return Task(**row)
    except TypeError as e:
        raise TaskTableError(f"{RESOURCE}: row {row.get('id')!r}: {e}") from None


def _validate(task: Task) -> None:
    where = f"{RESOURCE}: {task.id}"
    checks = {
        "task_type": task.task_type in TASK_TYPE_NAMES, "head": task.head in HEADS,
        "format": task.format in FORMATS,
        "unit": task.unit == UNITS.get(task.task_type), "files": set(task.files) == set(SPLITS),
        "paper_counts": set(task.paper_counts) == set(SPLITS), "max_length": 0 < task.max_length <= 512,
        "converter": task.converter is None or (task.converter in CONVERTERS
                                                and set(task.raw) == set(SPLITS)),
        "deviations": set(task.deviations) <= set(SPLITS),
        "labels": bool(task.labels) != (task.task_type == "similarity"),
        "pmid": task.pmid is None or task.pmid in PMID_FIELDS,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise TaskTableError(f"{where}: invalid {', '.join(bad)}")


@lru_cache(maxsize=1)
def all_tasks() -> dict[str, Task]:
    """Every task table row, by id, in the paper's table order (read and validated once)."""
    text = resources.files("pubmedlm.resources").joinpath(RESOURCE).read_text(encoding="utf-8")
    out: dict[str, Task] = {}
    for row in yaml.safe_load(text):
        task = _task(row)
        _validate(task)
        if task.id in out:
            raise TaskTableError(f"{RESOURCE}: {task.id} is listed twice")
        out[task.id] = task
    return out


@lru_cache(maxsize=1)
def _by_name() -> dict[str, str]:
    names: dict[str, str] = {}
    for task in all_tasks().values():
        for name in (task.id, task.paper_name, task.folder):
            if names.setdefault(name.lower(), task.id) != task.id:
                raise TaskTableError(f"{RESOURCE}: name {name!r} belongs to two tasks")
    return names


_USER: dict[str, Task] = {}  # the declared user tasks of this process (`use_user_tasks`)


def use_user_tasks(rows: dict[str, Task]) -> None:
    """Make `rows` (id -> row) the user tasks `get` knows, replacing any earlier ones."""
    clash = [i for i in rows if i.lower() in _by_name()]
    if clash:
        raise TaskTableError(f"user task id {clash[0]!r} names a BLURB dataset")
    _USER.clear()
    _USER.update(rows)


def user_tasks() -> dict[str, Task]:
    """The declared user tasks, by id (task files' order)."""
    return dict(_USER)


def is_blurb(name: str) -> bool:
    """Whether `name` names one of BLURB's 13 (id, paper name or mirror folder)."""
    return name.lower() in _by_name()


def prepared_user_task(prepared: str | Path, task_id: str) -> Task | None:
    """The row blurb-data wrote for a user task (`<prepared>/<id>/meta.json`, origin user), or None."""
    meta = Path(prepared) / task_id / "meta.json"
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text(encoding="utf-8"))
    return Task.from_dict(data["task"]) if data.get("origin") == "user" else None


def get(name: str, prepared: str | Path | None = None) -> Task:
    """The task named by its id, paper name or mirror folder (BLURB: case-insensitive), or a declared
    user task by id; with `prepared` (the blurb-data folder), also a user task prepared there."""
    if is_blurb(name):
        return all_tasks()[_by_name()[name.lower()]]
    if name in _USER:
        return _USER[name]
    found = prepared_user_task(prepared, name) if prepared else None
    if found is not None:
        return found
    yours = f"; your tasks (tasks.files): {', '.join(_USER)}" if _USER else ""
    raise KeyError(f"unknown BLURB dataset {name!r}; known: {', '.join(all_tasks())}{yours}")


def name_aliases() -> dict[str, str]:
    """Every other name of a task (id, mirror folder) -> its paper name, for `score.canonical`."""
    out = {}
    for task in all_tasks().values():
        for name in (task.id, task.folder):
            if name != task.paper_name:
                out[name] = task.paper_name
    return out


def type_groups() -> dict[str, tuple[str, ...]]:
    """The paper's six task-type names -> the paper names of their datasets, both in the paper's
    order: the grouping the BLURB score averages over (`score.TASK_TYPES`)."""
    table = all_tasks().values()
    return {name: tuple(t.paper_name for t in table if t.task_type == key)
            for key, name in TASK_TYPE_NAMES.items()}


__all__ = [
    "PMID_FIELDS",
    "SPLITS",
    "TASK_TYPE_NAMES",
    "UNITS",
    "Deviation",
    "Task",
    "TaskTableError",
    "all_tasks",
    "get",
    "is_blurb",
    "name_aliases",
    "prepared_user_task",
    "type_groups",
    "use_user_tasks",
    "user_tasks",
]
