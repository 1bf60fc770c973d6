"""DDI: the DDI Extraction 2013 XML corpus converted into BLURB's relation TSV, byte for byte.

Owns the conversion rule, which reproduces the published BLURB `dev.tsv` and `test.tsv`
exactly (every row, in order) and rebuilds the missing `train.tsv` (25,296 pairs):

1. Documents are taken in the order of BLURB's split list (`split_files/<split>_files.tsv`,
   paths relative to `DDIextraction_2013/` in the tarball); the corpus is already split into
   `<sentence>` elements, and every `<pair>` of a sentence, in XML order, is one row.
2. The pair id is the `<pair id>`; the label is `DDI-<type>` when `ddi="true"`, else `DDI-false`.
3. An entity's span runs from the first to the last offset of its `charOffset` (`a-b` or, for
   discontinuous mentions, `a-b;c-d`); offsets are inclusive, so the end is the last one + 1.
   Both mentions are masked as `@DRUG$` (all four DDI entity types alike) with the chemprot
   masking rule; overlapping mentions become one `@DRUG-DRUG$`.
4. Newlines, tabs and carriage returns in the sentence become spaces (a few titles end in a
   newline; a tab would break the TSV). Other whitespace, trailing spaces included, is kept.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from lxml import etree

from pubmedlm.blurb.chemprot import mask_pair
from pubmedlm.blurb.formats import RelationRow, write_relation_tsv

POSITIVE_LABELS = ("DDI-mechanism", "DDI-effect", "DDI-advise", "DDI-int")
NEGATIVE_LABEL = "DDI-false"
TAR_ROOT = "DDIextraction_2013/"
_CONTROL = str.maketrans({"\n": " ", "\t": " ", "\r": " "})


def read_split_list(path: Path) -> list[str]:
    """Document paths of one BLURB split list (newline-separated, no trailing newline)."""
    return [p.strip() for p in path.read_text(encoding="utf-8").splitlines() if p.strip()]


def read_documents(tarball: Path, paths: Iterable[str]) -> dict[str, bytes]:
    """XML bytes of the listed documents (paths relative to `DDIextraction_2013/`).

    One sequential pass over the tarball: random access into a .tar.gz re-decompresses it."""
    wanted = set(paths)
    found: dict[str, bytes] = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            rel = member.name.removeprefix(TAR_ROOT)
            if rel in wanted and member.isfile():
                found[rel] = tar.extractfile(member).read()
    missing = sorted(wanted - found.keys())
    if missing:
        raise FileNotFoundError(f"{tarball}: {len(missing)} listed documents missing, e.g. {missing[0]}")
    return found


def char_span(char_offset: str) -> tuple[int, int]:
    """[start, end) of a `charOffset` (`12-20`, or `3-9;15-20` for a discontinuous mention)."""
    numbers = re.findall(r"\d+", char_offset)
    return int(numbers[0]), int(numbers[-1]) + 1


def document_rows(xml: bytes) -> Iterator[RelationRow]:
    """One row per `<pair>` of one DDI XML document, in document order."""
    root = etree.parse(io.BytesIO(xml)).getroot()
    for sentence in root.iter("sentence"):
        text = sentence.get("text")
        spans = {e.get("id"): char_span(e.get("charOffset")) for e in sentence.iter("entity")}
        for pair in sentence.iter("pair"):
            first, second = sorted((spans[pair.get("e1")], spans[pair.get("e2")]), key=lambda s: s[0])
            masked = mask_pair(text, first, second, ("@DRUG$", "@DRUG$"), "@DRUG-DRUG$")
            label = f"DDI-{pair.get('type')}" if pair.get("ddi") == "true" else NEGATIVE_LABEL
            mentions = ((*first, "DRUG"), (*second, "DRUG"))
            yield RelationRow(pair.get("id"), masked.translate(_CONTROL), label,
                              original=text.translate(_CONTROL), entities=mentions)


def document_text(xml: bytes) -> str:
    """The whole text of one DDI XML document: its sentences joined by spaces."""
    return " ".join(s.get("text", "") for s in etree.parse(io.BytesIO(xml)).getroot().iter("sentence"))


def medline_pmid(path: str) -> str | None:
    """The PMID of a MedLine document (`.../MedLine/<PMID>.xml`); DrugBank documents have none."""
    return Path(path).stem if "/MedLine/" in f"/{path}" else None


def convert_ddi(tarball: Path, split_list: Path | str | list[str],
                documents: dict[str, bytes] | None = None) -> list[RelationRow]:
    """BLURB DDI rows of the documents named by `split_list` (a file, or its paths), in order.

    `documents` (from `read_documents`) saves re-reading the tarball when converting several
    splits."""
    paths = read_split_list(Path(split_list)) if isinstance(split_list, str | Path) else list(split_list)
    if documents is None:
        documents = read_documents(tarball, paths)
    rows: list[RelationRow] = []
    for path in paths:
        rows.extend(document_rows(documents[path]))
    return rows


def build_ddi(ddi_dir: Path, out_dir: Path,
              splits: Iterable[str] = ("train", "dev", "test")) -> dict[str, Path]:
    """Write BLURB's `<split>.tsv` from `<ddi_dir>/raw/DDIextraction_2013.tar.gz` and
    `<ddi_dir>/split_files/<split>_files.tsv`; returns split -> path."""
    tarball = ddi_dir / "raw" / "DDIextraction_2013.tar.gz"
    lists = {s: read_split_list(ddi_dir / "split_files" / f"{s}_files.tsv") for s in splits}
    documents = read_documents(tarball, [p for paths in lists.values() for p in paths])
    out_dir.mkdir(parents=True, exist_ok=True)
    return {s: write_relation_tsv(convert_ddi(tarball, paths, documents), out_dir / f"{s}.tsv")
            for s, paths in lists.items()}


__all__ = [
    "NEGATIVE_LABEL", "POSITIVE_LABELS", "build_ddi", "char_span", "convert_ddi", "document_rows",
    "document_text", "medline_pmid", "read_documents", "read_split_list",
]
