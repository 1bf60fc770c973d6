"""The files blurb-data writes for other stages under `data/blurb_data/exports/`: layout, writers, readers.

The `corpus` stage (BLURB test-set exclusion) and the `vocab` stage (fragmentation of NER mentions,
input lengths) read BLURB through these files only, so that blurb-data is the one reader of BLURB
sources and DVC sees what those stages read. `derive.py` owns what goes in them; `LAYOUT` below
(also written into data/blurb_data/README.md) says where. This module imports nothing heavier than
`formats`: the stages that read it list it among their DVC deps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pubmedlm.blurb.formats import BlurbFormatError, json_lines

FOLDER = "exports"
TEST_DOCUMENTS = "test_documents.jsonl"
NER_MENTIONS = "ner_mentions.jsonl"
MODEL_INPUTS = "model_inputs"
LAYOUT = f"""\
`{FOLDER}/` holds what the `corpus` and `vocab` stages read (rules in `blurb/derive.py`), one JSON
object per line. `dataset` is the task table's `folder` name (BC5CDR-chem, chemprot, ebmnlp, ...),
the name metrics/corpus.json and metrics/vocab.json use.

| file | row |
|---|---|
| `{TEST_DOCUMENTS}` | `{{"dataset", "doc_id": "<PMID>" or null, "text"}}`: each test abstract or sentence |
| `{NER_MENTIONS}` | `{{"dataset", "mention"}}`: each NER train mention, its words joined by spaces |
| `{MODEL_INPUTS}/<dataset>/<split>.jsonl` | `{{"id", "texts": [one or two texts]}}`: published splits only |
"""


@dataclass(frozen=True)
class BlurbTestDocument:
    """Text of one BLURB test document (an abstract, or a sentence), with its PMID where known."""

    dataset: str
    doc_id: str | None
    text: str


def folder(blurb_dir: Path) -> Path:
    """`data/blurb_data/exports/` of a blurb-data output folder."""
    return blurb_dir / FOLDER


def _write(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.writelines(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)


def _read(path: Path, fields: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for lineno, record in json_lines(path):
        missing = [k for k in fields if k not in record] if isinstance(record, dict) else list(fields)
        if missing:
            raise BlurbFormatError(f"{path}:{lineno}: expected the fields {', '.join(fields)}; "
                                   f"missing {', '.join(missing)}")
        yield record


def model_inputs_path(blurb_dir: Path, dataset: str, split: str) -> Path:
    return folder(blurb_dir) / MODEL_INPUTS / dataset / f"{split}.jsonl"


def write_test_documents(blurb_dir: Path, docs: Iterable[BlurbTestDocument]) -> None:
    _write(folder(blurb_dir) / TEST_DOCUMENTS, (asdict(d) for d in docs))


def write_ner_mentions(blurb_dir: Path, mentions: dict[str, list[str]]) -> None:
    records = ({"dataset": d, "mention": m} for d, ms in mentions.items() for m in ms)
    _write(folder(blurb_dir) / NER_MENTIONS, records)


def write_model_inputs(blurb_dir: Path, dataset: str, split: str,
                       inputs: Iterable[tuple[str, list[str]]]) -> None:
    _write(model_inputs_path(blurb_dir, dataset, split), ({"id": i, "texts": t} for i, t in inputs))


def _required(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `pubmedlm blurb-data` first (it writes {FOLDER}/)")
    return path


def read_test_documents(blurb_dir: Path) -> list[BlurbTestDocument]:
    """Every BLURB test document blurb-data exported, in its order (the task table's)."""
    path = _required(folder(blurb_dir) / TEST_DOCUMENTS)
    fields = ("dataset", "doc_id", "text")
    return [BlurbTestDocument(r["dataset"], r["doc_id"], r["text"]) for r in _read(path, fields)]


def read_ner_mentions(blurb_dir: Path) -> dict[str, list[str]]:
    """NER dataset -> its train mentions (words joined by spaces), datasets in the task table's order."""
    out: dict[str, list[str]] = {}
    for r in _read(_required(folder(blurb_dir) / NER_MENTIONS), ("dataset", "mention")):
        out.setdefault(r["dataset"], []).append(r["mention"])
    return out


def read_model_inputs(blurb_dir: Path, dataset: str, split: str) -> list[list[str]] | None:
    """The model input texts of each instance of one published split (one text, or a pair); None
    when blurb-data exported none (the dataset is not prepared, or the split was not published)."""
    path = model_inputs_path(blurb_dir, dataset, split)
    return [r["texts"] for r in _read(path, ("id", "texts"))] if path.is_file() else None


__all__ = [
    "FOLDER", "LAYOUT", "MODEL_INPUTS", "NER_MENTIONS", "TEST_DOCUMENTS", "BlurbTestDocument", "folder",
    "model_inputs_path", "read_model_inputs", "read_ner_mentions", "read_test_documents",
    "write_model_inputs", "write_ner_mentions", "write_test_documents",
]
