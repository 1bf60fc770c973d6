"""A declared user task read into the prepared form of a BLURB dataset.

`prepare(spec)` reads the three splits with the format's reader (`readers.READERS`), fixes the
label set (declared, or inferred from train and then enforced on dev and test) and builds the
registry's `Task` for it, so that a user task is, once read, what `blurb-data` makes of a BLURB
dataset: `<id>/{train,dev,test}.jsonl` in the normalized schema (`blurb/normalized.py`) and
`<id>/meta.json` (`{"task": Task.as_dict(), ...the record}`), written by `datacard.write_dataset`.

NER rows carry typed IOB2 tags; the task's labels are `B-<type>`, `I-<type>` per type (sorted),
then `O`, its `input.tags` is `BIO`, and the record adds mention counts per type and split.
User tasks have no paper counts: `paper_counts` is empty and nothing is compared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pubmedlm.blurb.normalized import Row, count_units, mention_counts
from pubmedlm.blurb.tasks import SPLITS, Task
from pubmedlm.usertasks.declared import split_path, task_labels, to_task
from pubmedlm.usertasks.readers import READERS, Labels
from pubmedlm.usertasks.schema import TaskFileError, UserTaskSpec


@dataclass
class PreparedTask:
    """One user task read: the registry row built for it and its normalized rows per split."""

    spec: UserTaskSpec
    task: Task
    rows: dict[str, list[Row]]

    def counts(self) -> dict[str, int]:
        """Instances per split in the task type's unit (NER: mentions)."""
        return {s: count_units(self.task.task_type, self.rows[s]) for s in SPLITS}

    def mentions(self) -> dict[str, dict[str, int]] | None:
        """NER: mentions per type and split (the preparation summary's table); else None."""
        if self.task.head != "token_classification":
            return None
        return {s: mention_counts(self.rows[s]) for s in SPLITS}

    def record(self) -> dict[str, Any]:
        """The task's record (beside the task row in meta.json): counts, rows, mentions, sources."""
        return {
            "status": "ok", "origin": "user", "task_file": self.spec.task_file.name,
            "task_type": self.task.task_type, "unit": self.task.unit, "counts": self.counts(),
            "mentions": self.mentions(), "rows": {s: len(self.rows[s]) for s in SPLITS},
            "sources": _sources(self.spec),
        }

    def write(self, folder: Path) -> Path:
        """`folder/{train,dev,test}.jsonl` and `folder/meta.json`, as blurb-data writes a dataset."""
        from pubmedlm.blurb import datacard
        from pubmedlm.blurb.assemble import Prepared

        datacard.write_dataset(folder, Prepared(self.task, rows=self.rows), self.record())
        return folder


def _sources(spec: UserTaskSpec) -> dict[str, dict[str, str | None]]:
    """Each split's source, named relative to the task file, with the file's sha256 (folders: null)."""
    from pubmedlm.infra.sources import sha256_file

    base = spec.task_file.parent
    paths = spec.files if isinstance(spec.files, dict) else dict.fromkeys(SPLITS, spec.files)
    return {split: {"path": os.path.relpath(path, base),
                    "sha256": sha256_file(Path(path)) if Path(path).is_file() else None}
            for split, path in paths.items()}


def _inferred(spec: UserTaskSpec, train: list[Row]) -> list[str]:
    """The label set of the train rows: entity types (NER), classes, or none (regression)."""
    if spec.target == "tags":
        return sorted({tag[2:] if "-" in tag else "" for row in train for tag in row["tags"] if tag != "O"})
    if spec.target == "labels":
        return sorted({label for row in train for label in row["labels"]})
    return sorted({row["label"] for row in train}) if spec.target == "label" else []


def prepare(spec: UserTaskSpec) -> PreparedTask:
    """Read a user task's splits (train first: it fixes an inferred label set); errors name the
    task file and task, then the data file and line."""
    read = READERS[spec.format]
    try:
        declared = None if spec.labels == "infer" else spec.labels
        rows = {"train": read(split_path(spec, "train"), "train", spec, Labels(declared))}
        if declared is None:
            names = _inferred(spec, rows["train"])
            train = split_path(spec, "train")
            labels = Labels(names, f"the labels of the train split (labels: infer, {train})")
        else:
            names, labels = list(declared), Labels(declared)
        for split in ("dev", "test"):
            rows[split] = read(split_path(spec, split), split, spec, labels)
    except TaskFileError as e:
        raise TaskFileError(f"{spec.origin}: task {spec.id!r}: {e}") from None
    return PreparedTask(spec, to_task(spec, task_labels(spec, names)), rows)


__all__ = ["PreparedTask", "prepare", "task_labels", "to_task"]
