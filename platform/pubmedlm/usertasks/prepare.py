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

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pubmedlm.blurb.normalized import Row, count_units, mention_counts
from pubmedlm.blurb.tasks import SPLITS, Task
from pubmedlm.config.pretraining import RuntimeConfig
from pubmedlm.usertasks.declared import split_file, task_labels, to_task
from pubmedlm.usertasks.readers import READERS, Labels
from pubmedlm.usertasks.schema import TaskFileError, UserTaskSpec


@dataclass
class PreparedTask:
    """One user task read: the registry row built for it and its normalized rows per split."""

    spec: UserTaskSpec
    task: Task
    rows: dict[str, list[Row]]
    files: dict[str, Path]
    """Each split's local file (or the saved dataset's folder), as read."""

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
            "sources": self.sources,
        }

    @functools.cached_property
    def sources(self) -> dict[str, dict[str, str | None]]:
        """Each split's file as declared and the sha256 of its bytes (hashed once per file)."""
        return _sources(self.spec, self.files)

    def write(self, folder: Path) -> Path:
        """`folder/{train,dev,test}.jsonl` and `folder/meta.json`, as blurb-data writes a dataset."""
        from pubmedlm.blurb import datacard
        from pubmedlm.blurb.assemble import Prepared

        datacard.write_dataset(folder, Prepared(self.task, rows=self.rows), self.record())
        return folder


def fetch(spec: UserTaskSpec, split: str, cache_dir: Path, progress: bool = False) -> Path:
    """A split's local file, verified: a pinned path's sha256 checked, a declared source resolved
    like the catalogs' (`infra.sources.resolve`: data mirror, download cache, download) and checked."""
    from pubmedlm.infra.sources import Source, resolve, verify

    ref = split_file(spec, split)
    if ref.is_source:
        source = Source(path=ref.mirror_path(), url=ref.url or "", sha256=ref.sha256 or "",
                        catalog="task file")
        return resolve(source, cache_dir, progress)
    path = Path(ref.path or "")
    if ref.sha256:
        verify(path, ref.sha256, str(path))
    return path


def folder_digest(folder: Path) -> str:
    """sha256 over a folder's files (relative path and sha256 of each, sorted): a saved dataset's
    identity, unchanged by copying it elsewhere."""
    import hashlib

    from pubmedlm.infra.sources import sha256_file

    lines = sorted(f"{p.relative_to(folder).as_posix()}\t{sha256_file(p)}\n"
                   for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _sources(spec: UserTaskSpec, files: dict[str, Path]) -> dict[str, dict[str, str | None]]:
    """Each split's file as declared (a path relative to the task file, or the source's URL) and the
    sha256 of the bytes read (a saved dataset's folder: `folder_digest`)."""
    from pubmedlm.infra.sources import sha256_file

    digests: dict[Path, str] = {}  # a saved dataset's one folder serves all three splits
    out = {}
    for split, path in files.items():
        ref = split_file(spec, split)
        named = {"url": ref.url} if ref.is_source else {"path": os.path.relpath(path, spec.task_file.parent)}
        if ref.sha256 is None and path not in digests:
            digests[path] = sha256_file(path) if path.is_file() else folder_digest(path)
        out[split] = {**named, "sha256": ref.sha256 or digests[path]}  # a pinned file: fetch verified it
    return out


def _inferred(spec: UserTaskSpec, train: list[Row]) -> list[str]:
    """The label set of the train rows: entity types (NER), classes, or none (regression)."""
    if spec.target == "tags":
        return sorted({tag[2:] if "-" in tag else "" for row in train for tag in row["tags"] if tag != "O"})
    if spec.target == "labels":
        return sorted({label for row in train for label in row["labels"]})
    return sorted({row["label"] for row in train}) if spec.target == "label" else []


def prepare(spec: UserTaskSpec, cache_dir: Path | str = RuntimeConfig.model_fields["cache_dir"].default,
            progress: bool = False) -> PreparedTask:
    """Fetch and verify a user task's files (`fetch`: pinned sha256, declared sources),
    then read its splits (train first: it fixes an inferred label set); errors name the task file
    and task, then the data file and line."""
    from pubmedlm.infra.sources import SourceError

    read = READERS[spec.format]
    try:
        files = {split: fetch(spec, split, Path(cache_dir), progress) for split in SPLITS}
        declared = None if spec.labels == "infer" else spec.labels
        rows = {"train": read(files["train"], "train", spec, Labels(declared))}
        if declared is None:
            names = _inferred(spec, rows["train"])
            labels = Labels(names, f"the labels of the train split (labels: infer, {files['train']})")
        else:
            names, labels = list(declared), Labels(declared)
        for split in ("dev", "test"):
            rows[split] = read(files[split], split, spec, labels)
    except (TaskFileError, SourceError) as e:
        raise TaskFileError(f"{spec.origin}: task {spec.id!r}: {e}") from None
    return PreparedTask(spec, to_task(spec, task_labels(spec, names)), rows, files)


__all__ = ["PreparedTask", "fetch", "folder_digest", "prepare", "task_labels", "to_task"]
