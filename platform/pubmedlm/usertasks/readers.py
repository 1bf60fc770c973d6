"""Strict readers of the formats users' task files declare, into the normalized rows of
`blurb/normalized.py` (the prepared form tune, finetune and evaluate read).

| format | file | row |
|---|---|---|
| `conll` | token per line, columns separated by tabs (or whitespace), a blank line between \
sentences, `-DOCSTART-` lines skipped (`-DOCSTART- (id)` names the document); extra columns allowed | \
`{"id": "<split>-<n>", "doc_id", "tokens", "tags"}`, tags typed IOB2 (`B-Chemical`, `I-Chemical`, `O`) |
| `jsonl` | one JSON object per line | `{"id", ["doc_id"], <input fields>, <target>}` |
| `csv`, `tsv` | a header row, then one row per line (TSV: no quoting) | the same |
| `hf_disk` | a `datasets` folder (`load_from_disk`): a `Dataset` per split or one `DatasetDict` | the same; \
NER rows from list columns, `ClassLabel` tags read as their names |

NER tags are read in the declared scheme (IOB1, IOB2, BIOES) with seqeval's strict reading and
written as IOB2: a tag sequence that the strict reading and seqeval's lenient one read into
different mentions breaks the scheme and is an error at its line. Every error is a `TaskFileError`
naming the file and its line (or the dataset row) and the field.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pubmedlm.blurb.formats import json_lines
from pubmedlm.blurb.normalized import Row
from pubmedlm.usertasks.schema import TaskFileError, UserTaskSpec

PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}
Where = Callable[[int], str]  # token index -> "file:line" of that token


class Labels:
    """The label set rows are checked against, and where it comes from (for messages)."""

    def __init__(self, names: Iterable[str] | None,
                 origin: str = "the declared labels (field 'labels')") -> None:
        self.names, self.origin = (tuple(names) if names is not None else None), origin

    def check(self, value: str, what: str, where: str) -> None:
        if self.names is not None and value not in self.names:
            raise TaskFileError(f"{where}: {what} {value!r} is not in {self.origin}: "
                                f"{', '.join(self.names) or '(none)'}")


# -- NER ---------------------------------------------------------------------------------------------
def _tag_type(tag: str, scheme: str, where: str) -> str:
    """The type of a tag (`B-Chemical` -> Chemical, untyped `B` -> ""); bad shapes are errors."""
    if tag == "O":
        return ""
    prefix, dash, kind = tag[:1], tag[1:2], tag[2:]
    if prefix not in PREFIXES[scheme] or (dash and (dash != "-" or not kind)) or (not dash and len(tag) > 1):
        raise TaskFileError(f"{where}: field 'tag_column': {tag!r} is not a tag of scheme {scheme} "
                            f"({'/'.join(PREFIXES[scheme])} then '-type', or O; field 'scheme')")
    return kind


def to_iob2(tags: list[str], scheme: str, where: Where) -> list[str]:
    """Typed tags in `scheme` rewritten as IOB2; a sequence the scheme does not allow is an error."""
    from seqeval.metrics.sequence_labeling import get_entities
    from seqeval.scheme import IOB1, IOB2, IOBES, Tokens

    strict = {(e.tag, e.start, e.end - 1)
              for e in Tokens(tags, {"IOB1": IOB1, "IOB2": IOB2, "BIOES": IOBES}[scheme]).entities}
    lenient = set(get_entities(tags))
    if strict != lenient:
        kind, start, _end = min(strict ^ lenient, key=lambda e: e[1])
        raise TaskFileError(f"{where(start)}: field 'scheme': tag {tags[start]!r} opens a mention that is "
                            f"not valid {scheme} (the tags around it do not follow the scheme)")
    out = ["O"] * len(tags)
    for kind, start, end in sorted(strict, key=lambda e: e[1]):
        suffix = "" if kind == "_" else f"-{kind}"
        out[start:end + 1] = [f"B{suffix}"] + [f"I{suffix}"] * (end - start)
    return out


def tagged_row(row_id: str, doc_id: str | None, tokens: list[str], tags: list[str], spec: UserTaskSpec,
               labels: Labels, where: Where) -> Row:
    """One NER sentence: tags checked (shape, scheme, declared types) and rewritten as IOB2."""
    for i, tag in enumerate(tags):
        kind = _tag_type(tag, spec.scheme, where(i))
        if tag != "O":
            what = f"tag {tag!r}: entity type" if kind else f"untyped tag {tag!r}: type"
            labels.check(kind, what, where(i))
    return {"id": row_id, "doc_id": doc_id, "tokens": tokens, "tags": to_iob2(tags, spec.scheme, where)}


def _columns(line: str, spec: UserTaskSpec) -> list[str]:
    return line.split("\t") if spec.separator == "tab" else line.split()


def _cell(parts: list[str], index: int, name: str, width: int, where: str) -> str:
    try:
        value = parts[index]
    except IndexError:
        raise TaskFileError(f"{where}: field '{name}': column {index} does not exist: the line has "
                            f"{len(parts)} column(s)") from None
    if len(parts) != width:
        raise TaskFileError(f"{where}: {len(parts)} columns, but the first token line has {width}")
    if not value.strip():
        raise TaskFileError(f"{where}: field '{name}': column {index} is empty")
    return value


def read_conll(path: Path, split: str, spec: UserTaskSpec, labels: Labels) -> list[Row]:
    """Token-per-line sentences (see the module docstring) as normalized NER rows."""
    rows: list[Row] = []
    doc: str | None = None
    width: int | None = None
    sentence: list[tuple[int, str, str]] = []  # (line, token, tag)

    def flush() -> None:
        if sentence:
            lines = [n for n, _, _ in sentence]
            rows.append(tagged_row(f"{split}-{len(rows)}", doc, [t for _, t, _ in sentence],
                                   [g for _, _, g in sentence], spec, labels, lambda i: f"{path}:{lines[i]}"))
            sentence.clear()

    lineno = 0
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if line.startswith("-DOCSTART-"):
                flush()
                rest = line[len("-DOCSTART-"):].strip()
                doc = rest[1:-1].strip() if rest.startswith("(") and rest.endswith(")") else None
            elif not line.strip():
                flush()
            else:
                parts = _columns(line, spec)
                width = width or len(parts)
                where = f"{path}:{lineno}"
                sentence.append((lineno, _cell(parts, spec.token_column, "token_column", width, where),
                                 _cell(parts, spec.tag_column, "tag_column", width, where).strip()))
    flush()
    return _nonempty(rows, f"{path}:{max(lineno, 1)}", split)


def _nonempty(rows: list[Row], where: str, split: str) -> list[Row]:
    if not rows:
        raise TaskFileError(f"{where}: empty split '{split}': no sentences or rows")
    return rows


# -- rows (classification, pairs, regression, multi-label) -------------------------------------------
def record_row(record: dict[str, Any], n: int, split: str, spec: UserTaskSpec, labels: Labels,
               where: str) -> Row:
    """One normalized row from a record (JSON object, CSV row, dataset row) by the declared columns."""

    def value(key: str, required: bool = True) -> Any:
        column = spec.column(key)
        if column not in record or record[column] is None or record[column] == "":
            if not required:
                return None
            raise TaskFileError(f"{where}: field 'columns.{key}': no value in column {column!r}")
        return record[column]

    row: Row = {"id": str(value("id", required="id" in spec.columns) or f"{split}-{n}")}
    if "doc_id" in spec.columns:
        row["doc_id"] = str(value("doc_id"))
    for key in spec.input.fields:
        if not isinstance(text := value(key), str) or not text.strip():
            raise TaskFileError(f"{where}: field 'columns.{key}': expected text, got {text!r}")
        row[key] = text
    # multi-label: an empty cell (or an empty list) is a row with no label; the column must exist
    raw = value(spec.target, required=spec.target != "labels")
    if raw is None and spec.column(spec.target) not in record:
        raise TaskFileError(f"{where}: field 'columns.labels': no column {spec.column(spec.target)!r}")
    row[spec.target] = _target("" if raw is None else raw, spec, labels, where)
    return row


def _label(raw: Any, labels: Labels, where: str, what: str) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise TaskFileError(f"{where}: field '{what}': expected a label, got {raw!r}")
    labels.check(str(raw), "label", where)
    return str(raw)


def _target(raw: Any, spec: UserTaskSpec, labels: Labels, where: str) -> Any:
    what = f"columns.{spec.target}"
    if spec.target == "score":
        try:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        except (TypeError, ValueError):
            raise TaskFileError(f"{where}: field '{what}': score {raw!r} is not a number") from None
    if spec.target == "labels":
        # a cell's labels split on label_separator; an empty cell is a row with no label (HoC has many)
        items = [x for x in raw.split(spec.label_separator) if x.strip()] if isinstance(raw, str) else raw
        if not isinstance(items, list):
            raise TaskFileError(f"{where}: field '{what}': expected a list of labels, got {raw!r}")
        return sorted({_label(x.strip() if isinstance(x, str) else x, labels, where, what) for x in items})
    return _label(raw, labels, where, what)


def _records_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for lineno, item in json_lines(path, TaskFileError):
        if not isinstance(item, dict):
            raise TaskFileError(f"{path}:{lineno}: expected a JSON object, got {type(item).__name__}")
        yield f"{path}:{lineno}", item


def _records_table(path: Path, delimiter: str, spec: UserTaskSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter, quoting=quoting, strict=True)
        header = reader.fieldnames or []
        wanted = {spec.column(k): k for k in ("id", *spec.input.fields, spec.target)}
        wanted |= {spec.column(k): k for k in spec.columns}
        for column, key in wanted.items():
            if column not in header and (key in spec.columns or key != "id"):
                raise TaskFileError(f"{path}:1: field 'columns.{key}': no column {column!r}; "
                                    f"the header has {', '.join(header) or 'nothing'}")
        try:
            for record in reader:
                if None in record or None in record.values():
                    cells = len(record) - (None not in record) + len(record.get(None) or [])
                    raise TaskFileError(f"{path}:{reader.line_num}: {cells} cells, "
                                        f"the header has {len(header)}")
                yield f"{path}:{reader.line_num}", record
        except csv.Error as e:
            raise TaskFileError(f"{path}:{reader.line_num}: not valid {spec.format.upper()}: {e}") from None


def read_records(path: Path, split: str, spec: UserTaskSpec, labels: Labels) -> list[Row]:
    """Rows of a JSONL, CSV or TSV split file."""
    records = (_records_jsonl(path) if spec.format == "jsonl"
               else _records_table(path, "," if spec.format == "csv" else "\t", spec))
    rows = [record_row(r, n, split, spec, labels, where) for n, (where, r) in enumerate(records)]
    return _nonempty(rows, str(path), split)


# -- Hugging Face datasets saved to disk ----------------------------------------------------------------
HF_SPLITS = {"train": ("train",), "dev": ("dev", "devel", "validation"), "test": ("test",)}


def _hf_split(path: Path, split: str, whole: bool) -> Any:
    """The split's `Dataset`: the folder itself, or (`whole`: one `DatasetDict` folder) its split."""
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise TaskFileError(f"{path}: field 'files': not a dataset saved with save_to_disk ({e})") from None
    if not whole:
        if isinstance(data, DatasetDict):
            raise TaskFileError(f"{path}: field 'files': a DatasetDict ({', '.join(data)}); name its folder "
                                "once as `files: <folder>`, or one Dataset folder per split")
        return data
    if not isinstance(data, DatasetDict):
        raise TaskFileError(f"{path}: field 'files': one Dataset, not a DatasetDict; "
                            "name one folder per split")
    found = [name for name in HF_SPLITS[split] if name in data]
    if len(found) != 1:
        raise TaskFileError(f"{path}: field 'files': the DatasetDict needs one {split} split named "
                            f"{' or '.join(HF_SPLITS[split])}; it has {', '.join(data) or 'none'}")
    return data[found[0]]


def _class_names(dataset: Any, column: str) -> list[str] | None:
    feature = dataset.features.get(column)
    return getattr(getattr(feature, "feature", feature), "names", None)


def read_hf(path: Path, split: str, spec: UserTaskSpec, labels: Labels) -> list[Row]:
    """Rows of one split of a saved dataset; NER reads `token_column` and `tag_column` lists."""
    data = _hf_split(path, split, whole=not isinstance(spec.files, dict))
    if spec.target != "tags":
        rows = [record_row(r, n, split, spec, labels, f"{path}: {split} row {n + 1}")
                for n, r in enumerate(data)]
        return _nonempty(rows, str(path), split)
    for name in ("token_column", "tag_column"):
        if getattr(spec, name) not in data.column_names:
            raise TaskFileError(f"{path}: field '{name}': no column {getattr(spec, name)!r}; "
                                f"the dataset has {', '.join(data.column_names)}")
    names = _class_names(data, spec.tag_column)
    rows = []
    for n, record in enumerate(data):
        where = f"{path}: {split} row {n + 1}"
        tokens, tags = record[spec.token_column], record[spec.tag_column]
        if names is not None:
            tags = [names[t] for t in tags]
        if len(tokens) != len(tags) or not tokens:
            raise TaskFileError(f"{where}: field 'tag_column': {len(tags)} tags for {len(tokens)} tokens")
        rows.append(tagged_row(f"{split}-{n}", None, list(tokens), [str(t) for t in tags], spec, labels,
                               lambda i, where=where: f"{where} token {i + 1}"))
    return _nonempty(rows, str(path), split)


READERS = {"conll": read_conll, "jsonl": read_records, "csv": read_records, "tsv": read_records,
           "hf_disk": read_hf}


__all__ = ["HF_SPLITS", "READERS", "Labels", "read_conll", "read_hf", "read_records", "record_row",
           "tagged_row", "to_iob2"]
