"""Readers for the BLURB source formats, as laid out in a data mirror (`blurb/<dataset>/...`).

Formats (see the data mirror's README):
- NER and PICO: `token<TAB>tag` per line, blank line between sentences, `-DOCSTART-` lines
  (EBM PICO: `-DOCSTART- (PMID)`) before documents;
- ChemProt, DDI: `pair_id<TAB>masked sentence<TAB>label`, no header (fields are not stripped:
  DDI sentences often end with a space);
- GAD: header `index sentence label`; BIOSSES: header `pair_id sent1 sent2 score`;
- HoC: header `labels sentence index`, one row per sentence, index `<PMID>_s<n>`;
- PubMedQA: `ori_pqal.json` selected by `pqal_fold0_split.tsv` (pmid, split, final_decision);
- BioASQ: `id<TAB>question<TAB>context<TAB>yes|no`, no header.

`instances(name, split, root)` yields each instance's model input texts; `blurb_test_documents(root)`
yields the text (and PMID where known) of every BLURB test document, including the raw
ChemProt and DDI test corpora the BLURB files are built from, for excluding test abstracts
from pretraining.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

NER_DATASETS = ("BC5CDR-chem", "BC5CDR-disease", "NCBI-disease", "BC2GM", "JNLPBA")
PICO_DATASET = "ebmnlp"
RE_TSV_DATASETS = ("chemprot", "DDI")
ALL_DATASETS = (*NER_DATASETS, PICO_DATASET, *RE_TSV_DATASETS, "GAD", "BIOSSES", "HoC", "pubmedqa", "BioASQ")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Instance:
    """One BLURB instance: an id and the texts the model reads (one, or two for a pair)."""

    id: str
    texts: list[str]


@dataclass(frozen=True)
class TestDoc:
    """Text of one BLURB test document (or sentence), with its PMID where the dataset has one."""

    dataset: str
    doc_id: str | None
    text: str


class BlurbFormatError(ValueError):
    """A BLURB file does not follow its documented format; the message names file and line."""


def _split_file(name: str, split: str, root: Path) -> Path:
    return root / "blurb" / name / f"{split}.tsv"


def ner_sentences(path: Path) -> Iterator[tuple[list[str], list[str]]]:
    """(tokens, tags) per sentence; `-DOCSTART-` lines and blank lines separate, never count."""
    for _doc, tokens, tags in _conll(path):
        yield tokens, tags


def _conll(path: Path) -> Iterator[tuple[str | None, list[str], list[str]]]:
    """(current DOCSTART id, tokens, tags) per sentence of a CoNLL-style token file."""
    doc: str | None = None
    tokens: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if line.startswith("-DOCSTART-"):
                rest = line[len("-DOCSTART-"):].strip().strip("()")
                doc = rest.split()[0] if rest else None
                continue
            if not line.strip():
                if tokens:
                    yield doc, tokens, tags
                    tokens, tags = [], []
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise BlurbFormatError(f"{path}:{lineno}: expected 'token<TAB>tag', got {line!r}")
            tokens.append(parts[0])
            tags.append(parts[-1])
    if tokens:
        yield doc, tokens, tags


def mentions(tokens: list[str], tags: list[str]) -> list[list[str]]:
    """Words of each entity mention: `B` (or `B-x`) then `I`s; for IO tags (`I-PAR`...), a run of
    the same I tag. Typed and untyped tags both work."""
    out: list[list[str]] = []
    current: list[str] = []
    current_type: str | None = None
    for tok, tag in zip(tokens, tags, strict=True):
        prefix, _, kind = tag.partition("-")
        if prefix == "B" or (prefix == "I" and (not current or kind != current_type)):
            if current:
                out.append(current)
            current, current_type = [tok], kind
        elif prefix == "I":
            current.append(tok)
        else:
            if current:
                out.append(current)
            current, current_type = [], None
    if current:
        out.append(current)
    return out


def _tsv_rows(path: Path, header: bool) -> Iterator[tuple[int, list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            if header and lineno == 1:
                continue
            line = line.rstrip("\r\n")
            if line:
                yield lineno, line.split("\t")


def _fields(path: Path, lineno: int, row: list[str], n: int) -> list[str]:
    if len(row) != n:
        raise BlurbFormatError(f"{path}:{lineno}: expected {n} tab-separated fields, got {len(row)}")
    return row


def _texts(task_type: str, row: dict) -> list[str]:
    """The model input texts of one normalized row."""
    if task_type in ("ner", "pico"):
        return [" ".join(row["tokens"])]
    if task_type == "similarity":
        return [row["text_a"], row["text_b"]]
    if task_type == "qa":
        return [row["question"], row["context"]]
    return [row["text"]]


def _task_files(name: str, split: str, root: Path) -> tuple[object, list[Path]]:
    from pubmedlm.blurb import tasks

    task = tasks.get(name)  # KeyError naming the known datasets
    return task, [root / rel for rel in task.files.get(split, ())]


def instances(name: str, split: str, root: Path) -> Iterator[Instance]:
    """The model input texts of every instance of one dataset split (registry id or folder name),
    read with the registry's strict format readers (the same ones the blurb-data stage uses)."""
    from pubmedlm.blurb.normalized import read_split

    task, paths = _task_files(name, split, root)
    for row in read_split(task, split, paths):
        yield Instance(row["id"], _texts(task.task_type, row))


def available(name: str, split: str, root: Path) -> bool:
    """Whether every source file of this split is present under `root`."""
    _task, paths = _task_files(name, split, root)
    return bool(paths) and all(p.is_file() for p in paths)


def available_datasets(root: Path) -> list[str]:
    """Datasets with at least one split present under `root`."""
    return [n for n in ALL_DATASETS if any(available(n, s, root) for s in SPLITS)]


# ---- test documents, for excluding BLURB test text from pretraining --------------------------


def _ner_test_docs(root: Path) -> Iterator[TestDoc]:
    # BC5CDR-chem and -disease share their tokens: read the text of the first one present only.
    names = [n for n in NER_DATASETS if available(n, "test", root)]
    bc5 = [n for n in names if n.startswith("BC5CDR")]
    for name in [n for n in names if n not in bc5[1:]]:
        for tokens, _tags in ner_sentences(_split_file(name, "test", root)):
            yield TestDoc(name, None, " ".join(tokens))


def _pico_test_docs(root: Path) -> Iterator[TestDoc]:
    path = _split_file(PICO_DATASET, "test", root)
    if path.is_file():
        by_doc: dict[str | None, list[str]] = {}
        for doc, tokens, _tags in _conll(path):
            by_doc.setdefault(doc, []).extend(tokens)
        for doc, tokens in by_doc.items():
            yield TestDoc(PICO_DATASET, doc, " ".join(tokens))
    pmids = root / "blurb" / PICO_DATASET / "split_pmids" / "test_pmid.tsv"
    if pmids.is_file():
        for pmid in pmids.read_text(encoding="utf-8").replace("\n", ",").split(","):
            if pmid.strip():
                yield TestDoc(PICO_DATASET, pmid.strip(), "")


def _hoc_test_docs(root: Path) -> Iterator[TestDoc]:
    if not available("HoC", "test", root):
        return
    by_doc: dict[str, list[str]] = {}
    for inst in instances("HoC", "test", root):
        by_doc.setdefault(inst.id.split("_s")[0], []).append(inst.texts[0])
    for pmid, sentences in by_doc.items():
        yield TestDoc("HoC", pmid, " ".join(sentences))


def _chemprot_test_docs(root: Path) -> Iterator[TestDoc]:
    raw = root / "blurb/chemprot/raw_biocreative_vi/chemprot_test_gs/chemprot_test_abstracts_gs.tsv"
    if raw.is_file():
        for _lineno, row in _tsv_rows(raw, header=False):
            yield TestDoc("chemprot", row[0], " ".join(row[1:]))
    if available("chemprot", "test", root):
        for inst in instances("chemprot", "test", root):
            yield TestDoc("chemprot", inst.id.split(".")[0], inst.texts[0])


def _ddi_test_docs(root: Path) -> Iterator[TestDoc]:
    folder = root / "blurb" / "DDI"
    tarball, listing = folder / "raw" / "DDIextraction_2013.tar.gz", folder / "split_files" / "test_files.tsv"
    if tarball.is_file() and listing.is_file():
        wanted = {f"DDIextraction_2013/{p.strip()}" for p in listing.read_text(encoding="utf-8").splitlines()}
        with tarfile.open(tarball) as tar:
            for member in tar:
                if member.name in wanted:
                    tree = etree.parse(io.BytesIO(tar.extractfile(member).read()))
                    text = " ".join(s.get("text", "") for s in tree.iter("sentence"))
                    stem = Path(member.name).stem
                    yield TestDoc("DDI", stem if "/MedLine/" in member.name else None, text)
    elif available("DDI", "test", root):
        for inst in instances("DDI", "test", root):
            yield TestDoc("DDI", None, inst.texts[0])


def _pubmedqa_test_docs(root: Path) -> Iterator[TestDoc]:
    """The official PubMedQA test questions: from the fold split when present, else from
    `test_ground_truth.json` (the official list), so exclusion never depends on the derived file."""
    if available("pubmedqa", "test", root):
        for inst in instances("pubmedqa", "test", root):
            yield TestDoc("pubmedqa", inst.id, " ".join(inst.texts))
        return
    folder = root / "blurb" / "pubmedqa"
    truth = folder / "test_ground_truth.json"
    if not truth.is_file():
        return
    data_path = folder / "ori_pqal.json"
    data = json.loads(data_path.read_text(encoding="utf-8")) if data_path.is_file() else {}
    for pmid in json.loads(truth.read_text(encoding="utf-8")):
        item = data.get(pmid, {})
        yield TestDoc("pubmedqa", pmid, " ".join([item.get("QUESTION", ""), *item.get("CONTEXTS", [])]).strip())


def blurb_test_documents(root: Path) -> Iterator[TestDoc]:
    """Every BLURB test document available under `root`, with its PMID where one exists."""
    yield from _ner_test_docs(root)
    yield from _pico_test_docs(root)
    yield from _hoc_test_docs(root)
    yield from _chemprot_test_docs(root)
    yield from _ddi_test_docs(root)
    yield from _pubmedqa_test_docs(root)
    for name in ("GAD", "BIOSSES", "BioASQ"):
        if available(name, "test", root):
            for inst in instances(name, "test", root):
                yield TestDoc(name, None, " ".join(inst.texts))


# ---- relation TSV rows (ChemProt, DDI) and gold labels, for converters and metrics ------------


@dataclass(frozen=True)
class RelationRow:
    """One ChemProt/DDI candidate pair: `pair_id<TAB>masked sentence<TAB>label` in BLURB's TSV."""

    pair_id: str
    sentence: str
    label: str
    # Converter output only (not part of the TSV, not compared): the sentence before masking and
    # the two mentions' [start, end) offsets and kinds in it, first mention first.
    original: str | None = field(default=None, compare=False)
    entities: tuple[tuple[int, int, str], tuple[int, int, str]] | None = field(default=None, compare=False)

    def line(self) -> str:
        return f"{self.pair_id}\t{self.sentence}\t{self.label}\n"


def relation_tsv_text(rows: Iterable[RelationRow]) -> str:
    """The exact text of a BLURB relation TSV: no header, `\\n` after every row (the last too)."""
    return "".join(row.line() for row in rows)


def write_relation_tsv(rows: Iterable[RelationRow], path: Path) -> Path:
    # newline="" keeps `\n` on every platform: the published files are compared byte for byte.
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(relation_tsv_text(rows))
    return path


def read_relation_rows(path: Path) -> list[RelationRow]:
    """Rows of a ChemProt/DDI TSV, fields kept exactly (DDI sentences end with a space)."""
    return [RelationRow(*_fields(path, lineno, row, 3)) for lineno, row in _tsv_rows(path, header=False)]


def hoc_positive_labels(cell: str) -> frozenset[int]:
    """The hallmarks whose value is 1 in a HoC `labels` cell (`0_0,1_1,...` -> {1})."""
    out = set()
    for item in cell.split(","):
        key, _, value = item.strip().partition("_")
        if value not in ("0", "1"):
            raise BlurbFormatError(f"HoC label {item!r} is not written k_v with v in 0/1")
        if value == "1":
            out.add(int(key))
    return frozenset(out)


def gold_labels(name: str, split: str, root: Path) -> list:
    """Gold labels of a split, in the order `instances` yields them: NER/PICO one tag list per
    sentence; ChemProt, DDI, GAD, PubMedQA, BioASQ one label string; BIOSSES one float;
    HoC the set of positive hallmarks of each sentence (ids say which abstract it belongs to)."""
    if name == "pubmedqa":
        table = root / "blurb" / "pubmedqa" / "pqal_fold0_split.tsv"
        rows = (_fields(table, n, r, 3) for n, r in _tsv_rows(table, header=True))
        return [label for _pmid, row_split, label in rows if row_split == split]
    path = _split_file(name, split, root)
    if name in NER_DATASETS or name == PICO_DATASET:
        return [tags for _tokens, tags in ner_sentences(path)]
    if name in RE_TSV_DATASETS:
        return [row.label for row in read_relation_rows(path)]
    layout = {"GAD": (True, 3, 2), "BIOSSES": (True, 4, 3), "HoC": (True, 3, 0), "BioASQ": (False, 4, 3)}
    if name not in layout:
        raise KeyError(f"unknown BLURB dataset {name!r}; known: {', '.join(ALL_DATASETS)}")
    header, n, col = layout[name]
    cells = [_fields(path, lineno, row, n)[col] for lineno, row in _tsv_rows(path, header=header)]
    if name == "BIOSSES":
        return [float(c) for c in cells]
    if name == "HoC":
        return [hoc_positive_labels(c) for c in cells]
    return cells


__all__ = [
    "ALL_DATASETS",
    "NER_DATASETS",
    "BlurbFormatError",
    "Instance",
    "RelationRow",
    "TestDoc",
    "available",
    "available_datasets",
    "blurb_test_documents",
    "gold_labels",
    "hoc_positive_labels",
    "instances",
    "mentions",
    "ner_sentences",
    "read_relation_rows",
    "relation_tsv_text",
    "write_relation_tsv",
]
