"""Corpus inputs: from `corpus.inputs` entries to verified local files, and from a file to its
reader.

Entries are resolved by `sources.resolve_inputs` (catalog path, catalog folder, inline spec, or a
local file or folder of the user's own); this module adds the reader check.

Readers are chosen by suffix, a trailing `.gz` ignored: `.xml` MEDLINE, `.nxml` PMC JATS,
`.jsonl` JSON lines, `.tar`/`.tgz` archives, `.txt` or no suffix plain text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from pubmedlm.config import SourceSpec
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.pmc import read_pmc
from pubmedlm.corpus.pubmed import read_medline
from pubmedlm.corpus.records import Item
from pubmedlm.corpus.stream import base_suffix
from pubmedlm.corpus.text import read_jsonl, read_tar, read_text
from pubmedlm.infra import sources
from pubmedlm.infra.sources import Catalog, Input, SourceError

Reader = Callable[[Path, str, bool], Iterator[Item]]
READERS: dict[str, Reader] = {
    ".xml": read_medline,
    ".nxml": read_pmc,
    ".jsonl": read_jsonl,
    ".tar": read_tar,
    ".tgz": read_tar,
    ".txt": read_text,
    "": read_text,
}


CorpusInput = Input  # label (catalog path or the path as given) names it in ids and metrics


def reader_for(path: Path, label: str) -> Reader:
    suffix = base_suffix(path)
    if suffix not in READERS:
        known = ", ".join(s or "(none)" for s in READERS)
        raise CorpusError(f"{label}: unsupported input type '{suffix}' (known suffixes: {known})")
    return READERS[suffix]


def read_input(inp: CorpusInput, skip_bad: bool) -> Iterator[Item]:
    """Every record, deletion and skipped-record notice of one input, in file order."""
    return reader_for(inp.path, inp.label)(inp.path, inp.label, skip_bad)


def resolve_inputs(
    entries: list[str | SourceSpec], catalogs: list[str], cache_dir: Path, root: Path, progress: bool = True
) -> list[CorpusInput]:
    """Verified local files for every entry, in the order given; each must have a reader."""
    try:
        inputs = sources.resolve_inputs(entries, Catalog(catalogs), cache_dir, progress, root)
    except SourceError as e:
        if "neither declared" in str(e) or "holds no files" in str(e):
            raise CorpusError(f"corpus {e}") from None
        raise
    for inp in inputs:
        reader_for(inp.path, inp.label)  # fail before reading anything on a file we cannot read
    return inputs
