"""The normalized BLURB split schema: each source format read strictly into one row shape per task
type, counted in the paper's units, and written as deterministic JSONL.

Holds the one reader of each BLURB source format (`READERS`, keyed by the task table's `format`);
everything that reads BLURB gold (blurb-data, and through its output the scores) goes through them.

`data/blurb_data/<id>/<split>.jsonl` holds one JSON object per line, keys in this order:

| task type | row |
|---|---|
| ner, pico | `{"id": "<split>-<n>", "doc_id": "<DOCSTART id>" or null, "tokens": [...], "tags": [...]}` |
| re | `{"id": "<pair id>", "text": "<sentence with entity dummy tokens>", "label": "<class>"}`, plus \
`"entities": {"text": "<sentence before masking>", "spans": [[start, end, kind], [start, end, kind]]}` where \
the raw corpus is at hand (ChemProt, DDI) |
| similarity | `{"id": "<pair id>", "text_a": "...", "text_b": "...", "score": <float 0-4>}` |
| doc_classification | \
`{"id": "<PMID>_s<n>", "doc_id": "<PMID>", "text": "<sentence>", "labels": [<hallmark index>, ...]}` |
| qa | `{"id": "<id>", "question": "...", "context": "...", "label": "yes" / "no" / "maybe"}` |

Tags are the files' own: NER untyped BIO (`B`, `I`, `O`), EBM PICO IO (`I-PAR`, `I-INT`, `I-OUT`,
`O`). NER/PICO ids number the sentences of the source file (`<split>-<n>`, from 0), so a row
carried into a proxy split keeps its source id. HoC keeps BLURB's sentence rows; scores OR them per
abstract (`doc_id`). Texts are kept byte for byte (DDI sentences end with a space).

Readers check every line and raise `BlurbFormatError` naming file and line: wrong column count, a
token line without a tag, an unknown label, a bad header, an empty split, a PubMedQA id absent
from the split file (or a split-file PMID absent from the JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pubmedlm.blurb.formats import BlurbFormatError, RelationRow, json_lines
from pubmedlm.blurb.metrics import abstract_id
from pubmedlm.blurb.tasks import SPLITS, Task

Row = dict[str, Any]
_HOC_ID = re.compile(r"^\d+_s\d+$")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            yield lineno, line.rstrip("\r\n")


def _nonempty(rows: list[Row], path: Path, last_line: int, split: str) -> list[Row]:
    if not rows:
        raise BlurbFormatError(f"{path}:{max(last_line, 1)}: empty split '{split}': no instances in "
                               f"{last_line} lines")
    return rows


def _label(value: str, labels: tuple[str, ...], path: Path, lineno: int) -> str:
    if value not in labels:
        raise BlurbFormatError(f"{path}:{lineno}: unknown label {value!r}; "
                               f"expected one of {', '.join(labels)}")
    return value


def _fields(line: str, n: int, path: Path, lineno: int) -> list[str]:
    parts = line.split("\t")
    if len(parts) != n:
        raise BlurbFormatError(f"{path}:{lineno}: expected {n} tab-separated columns, got {len(parts)}")
    return parts


def _header(line: str, expected: tuple[str, ...], path: Path) -> None:
    if tuple(line.split("\t")) != expected:
        raise BlurbFormatError(f"{path}:1: expected the header {'<TAB>'.join(expected)!r}, got {line!r}")


def read_conll(path: Path, split: str, labels: tuple[str, ...]) -> list[Row]:
    """NER/PICO `token<TAB>tag` lines, blank lines between sentences, `-DOCSTART- [(]id[)]` lines."""
    rows: list[Row] = []
    doc: str | None = None
    tokens: list[str] = []
    tags: list[str] = []
    lineno = 0

    def flush() -> None:
        if tokens:
            rows.append({"id": f"{split}-{len(rows)}", "doc_id": doc, "tokens": tokens[:], "tags": tags[:]})
            tokens.clear()
            tags.clear()

    for lineno, line in _lines(path):
        if line.startswith("-DOCSTART-"):
            flush()
            rest = line[len("-DOCSTART-"):].strip().strip("()").split()
            doc = rest[0] if rest else None
        elif not line.strip():
            flush()
        else:
            parts = line.split("\t")
            if len(parts) == 1 or (len(parts) == 2 and not parts[1].strip()):
                raise BlurbFormatError(f"{path}:{lineno}: token line without a tag: {line!r} "
                                       "(expected 'token<TAB>tag')")
            token, tag = _fields(line, 2, path, lineno)
            tokens.append(token)
            tags.append(_label(tag, labels, path, lineno))
    flush()
    return _nonempty(rows, path, lineno, split)


def read_relation_tsv(path: Path, split: str, labels: tuple[str, ...]) -> list[Row]:
    """ChemProt/DDI `pair_id<TAB>masked sentence<TAB>label`, no header; fields kept unstripped."""
    rows: list[Row] = []
    lineno = 0
    for lineno, line in _lines(path):
        if line:
            pair_id, text, label = _fields(line, 3, path, lineno)
            rows.append({"id": pair_id, "text": text, "label": _label(label, labels, path, lineno)})
    return _nonempty(rows, path, lineno, split)


def read_gad_tsv(path: Path, split: str, labels: tuple[str, ...]) -> list[Row]:
    """GAD: header `index sentence label`."""
    rows: list[Row] = []
    lineno = 0
    for lineno, line in _lines(path):
        if lineno == 1:
            _header(line, ("index", "sentence", "label"), path)
        elif line:
            index, text, label = _fields(line, 3, path, lineno)
            rows.append({"id": index, "text": text, "label": _label(label, labels, path, lineno)})
    return _nonempty(rows, path, lineno, split)


def read_biosses_tsv(path: Path, split: str, labels: tuple[str, ...]) -> list[Row]:
    """BIOSSES: header `pair_id sent1 sent2 score`, scores are floats in [0, 4]."""
    rows: list[Row] = []
    lineno = 0
    for lineno, line in _lines(path):
        if lineno == 1:
            _header(line, ("pair_id", "sent1", "sent2", "score"), path)
        elif line:
            pair_id, a, b, cell = _fields(line, 4, path, lineno)
            try:
                score = float(cell)
            except ValueError:
                raise BlurbFormatError(f"{path}:{lineno}: score {cell!r} is not a number") from None
            if not 0.0 <= score <= 4.0:
                raise BlurbFormatError(f"{path}:{lineno}: score {score} is outside BIOSSES' 0-4 range")
            rows.append({"id": pair_id, "text_a": a, "text_b": b, "score": score})
    return _nonempty(rows, path, lineno, split)


def _hoc_labels(cell: str, labels: tuple[str, ...], path: Path, lineno: int) -> list[int]:
    # Every hallmark written once as k_v, v in {0, 1}: `0_0,1_1,...,9_0`.
    seen, positive = set(), []
    for item in cell.split(","):
        key, _, value = item.strip().partition("_")
        if key not in labels or value not in ("0", "1") or key in seen:
            raise BlurbFormatError(f"{path}:{lineno}: unknown label {item!r} (HoC labels are k_v, k in "
                                   f"{labels[0]}..{labels[-1]} once each, v in 0/1)")
        seen.add(key)
        if value == "1":
            positive.append(int(key))
    if len(seen) != len(labels):
        raise BlurbFormatError(f"{path}:{lineno}: {len(seen)} hallmark labels, expected {len(labels)}")
    return sorted(positive)


def read_hoc_tsv(path: Path, split: str, labels: tuple[str, ...]) -> list[Row]:
    """HoC: header `labels sentence index`, one row per sentence, index `<PMID>_s<n>`."""
    rows: list[Row] = []
    lineno = 0
    for lineno, line in _lines(path):
        if lineno == 1:
            _header(line, ("labels", "sentence", "index"), path)
        elif line:
            cell, text, index = _fields(line, 3, path, lineno)
            if not _HOC_ID.match(index):
                raise BlurbFormatError(f"{path}:{lineno}: sentence id {index!r} is not <PMID>_s<n>")
            rows.append({"id": index, "doc_id": abstract_id(index), "text": text,
                         "labels": _hoc_labels(cell, labels, path, lineno)})
    return _nonempty(rows, path, lineno, split)


def read_bioasq_tsv(path: Path, split: str, labels: tuple[str, ...]) -> list[Row]:
    """BioASQ 7b yes/no: `id<TAB>question<TAB>context<TAB>yes|no`, no header."""
    rows: list[Row] = []
    lineno = 0
    for lineno, line in _lines(path):
        if line:
            qid, question, context, label = _fields(line, 4, path, lineno)
            rows.append({"id": qid, "question": question, "context": context,
                         "label": _label(label, labels, path, lineno)})
    return _nonempty(rows, path, lineno, split)


def _json_key_line(text: str, key: str) -> int:
    """Line of a top-level key in a JSON text (1 when not found: the file as a whole)."""
    at = text.find(f'"{key}"')
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def read_pubmedqa(json_path: Path, split_path: Path, split: str, labels: tuple[str, ...]) -> list[Row]:
    """PubMedQA: `ori_pqal.json` questions selected by the fold-0 split file (`pmid split final_decision`).

    Every split-file PMID must be in the JSON with the same final decision, and every JSON id in
    the split file: a question left out would silently shrink a split."""
    text = json_path.read_text(encoding="utf-8")
    data = json.loads(text)
    rows: list[Row] = []
    listed: set[str] = set()
    lineno = 0
    for lineno, line in _lines(split_path):
        if lineno == 1:
            _header(line, ("pmid", "split", "final_decision"), split_path)
            continue
        if not line:
            continue
        pmid, row_split, label = _fields(line, 3, split_path, lineno)
        if row_split not in SPLITS:
            raise BlurbFormatError(f"{split_path}:{lineno}: unknown split {row_split!r}")
        _label(label, labels, split_path, lineno)
        if pmid not in data:
            raise BlurbFormatError(f"{split_path}:{lineno}: PubMedQA id {pmid} is not in {json_path}")
        if data[pmid]["final_decision"] != label:
            raise BlurbFormatError(f"{split_path}:{lineno}: label {label!r} differs from {json_path}'s "
                                   f"final_decision {data[pmid]['final_decision']!r} for {pmid}")
        listed.add(pmid)
        if row_split == split:
            item = data[pmid]
            rows.append({"id": pmid, "question": item["QUESTION"], "context": " ".join(item["CONTEXTS"]),
                         "label": label})
    unlisted = [pmid for pmid in data if pmid not in listed]
    if unlisted:
        raise BlurbFormatError(f"{json_path}:{_json_key_line(text, unlisted[0])}: PubMedQA id {unlisted[0]} "
                               f"is missing from the split file {split_path} ({len(unlisted)} ids missing)")
    if not rows:
        raise BlurbFormatError(f"{split_path}:{max(lineno, 1)}: empty split '{split}': "
                               "no rows with that split")
    return rows


READERS: dict[str, Callable[..., list[Row]]] = {
    "conll": read_conll, "relation_tsv": read_relation_tsv, "gad_tsv": read_gad_tsv,
    "biosses_tsv": read_biosses_tsv, "hoc_tsv": read_hoc_tsv, "bioasq_tsv": read_bioasq_tsv,
    "pubmedqa_json": read_pubmedqa,
}


def read_split(task: Task, split: str, paths: list[Path]) -> list[Row]:
    """Normalized rows of one split from its local source file(s), in the task table's file order."""
    return READERS[task.format](*paths, split, task.labels)


def relation_rows(rows: Iterable[RelationRow], labels: tuple[str, ...], origin: str) -> list[Row]:
    """Normalized rows of converter output (ChemProt, DDI); `origin` names it in errors."""
    out = []
    for i, row in enumerate(rows, start=1):
        if row.label not in labels:
            raise BlurbFormatError(f"{origin}:{i}: unknown label {row.label!r}")
        item = {"id": row.pair_id, "text": row.sentence, "label": row.label}
        if row.original is not None and row.entities is not None:
            item["entities"] = {"text": row.original, "spans": [list(e) for e in row.entities]}
        out.append(item)
    return out


def count_units(task_type: str, rows: list[Row]) -> int:
    """Instances in the paper's unit: NER mentions (B tags), PICO labelled (non-O) tokens, HoC
    abstracts, otherwise rows (RE pairs, BIOSSES pairs, QA questions)."""
    if task_type == "ner":
        return sum(tag.startswith("B") for row in rows for tag in row["tags"])
    if task_type == "pico":
        return sum(tag != "O" for row in rows for tag in row["tags"])
    if task_type == "doc_classification":
        return len({row["doc_id"] for row in rows})
    return len(rows)


def mention_counts(rows: list[Row]) -> dict[str, int]:
    """Mentions per type in IOB2-tagged rows, types sorted: each mention opens with exactly one `B`
    tag (`B-Chemical`; an untyped `B` counts under ""). Their sum is `count_units("ner", rows)`."""
    counts: dict[str, int] = {}
    for row in rows:
        for tag in row["tags"]:
            if tag == "B" or tag.startswith("B-"):
                kind = tag[2:]
                counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def jsonl_text(rows: Iterable[Row]) -> str:
    """Deterministic JSONL: keys in insertion order, UTF-8 kept, compact separators, `\\n` after every row."""
    return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)


def write_jsonl(rows: Iterable[Row], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(jsonl_text(rows))
    return path


def read_jsonl(path: Path) -> list[Row]:
    """Rows of a normalized split file."""
    return [row for _, row in json_lines(path)]


__all__ = [
    "READERS", "Row", "count_units", "jsonl_text", "mention_counts", "read_jsonl", "read_split",
    "relation_rows", "write_jsonl",
]
