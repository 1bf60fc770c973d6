"""Reader of PMC Open Access full text (JATS `.nxml`, optionally `.nxml.gz`): one `Record` per file.

Kept, in order: the article title; the paragraphs of each abstract (section titles skipped, as
MEDLINE labels are; graphical/teaser abstracts skipped); the body paragraphs (`<p>` under
`<body>`, section titles skipped). Floating material is dropped wherever it appears — figures,
tables, their captions, supplementary material — because captions and table cells are
fragments, not running text; so is MathML/TeX markup, whose itertext is a jumble of symbols.
Citation markers (`[1]`) stay: removing them would need per-publisher rules.

Id: `pmc:PMC<n>` from the PMCID article-id, else `pmc:pmid-<PMID>`, else `pmc:<file stem>`.
The PMID (when present) is kept for BLURB-exclusion by id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.records import BadRecord, Item, Record
from pubmedlm.corpus.stream import Stream, TruncatedInput

_MML = "{http://www.w3.org/1998/Math/MathML}"
SKIP = frozenset({
    "fig", "fig-group", "table-wrap", "table-wrap-group", "table", "caption", "graphic", "media",
    "supplementary-material", "disp-formula", "tex-math", f"{_MML}math", "alternatives",
})
SKIP_ABSTRACT_TYPES = frozenset({"graphical", "teaser", "toc"})
_PARSER = {"resolve_entities": False, "no_network": True, "recover": False}


def _text(el: etree._Element) -> str:
    """Text of `el` and its descendants, leaving out SKIP subtrees (but keeping their tails)."""
    parts = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str) and child.tag not in SKIP:
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _paragraphs(el: etree._Element) -> Iterator[str]:
    """Top-level `<p>` texts under `el` (a `<p>` nested in a `<p>` is part of its parent)."""
    for child in el:
        if not isinstance(child.tag, str) or child.tag in SKIP:
            continue
        if child.tag == "p":
            yield _text(child)
        else:
            yield from _paragraphs(child)


def _doc_id(meta: etree._Element | None, stem: str) -> tuple[str, str | None]:
    ids = {}
    if meta is not None:
        for a in meta.iterfind("article-id"):
            ids.setdefault(a.get("pub-id-type", ""), (a.text or "").strip())
    pmid = ids.get("pmid") or None
    pmcid = ids.get("pmc") or ids.get("pmcid")
    if pmcid:
        return f"pmc:PMC{pmcid.removeprefix('PMC')}", pmid
    if pmid:
        return f"pmc:pmid-{pmid}", pmid
    return f"pmc:{stem}", None


def parse_article(root: etree._Element, source: str, stem: str) -> Record:
    """A `Record` from a parsed JATS `<article>`."""
    meta = root.find("front/article-meta")
    doc_id, pmid = _doc_id(meta, stem)
    segments: list[str] = []
    if meta is not None:
        title = meta.find("title-group/article-title")
        segments.append(_text(title) if title is not None else "")
        for abstract in meta.iterfind("abstract"):
            if abstract.get("abstract-type") not in SKIP_ABSTRACT_TYPES:
                segments.extend(_paragraphs(abstract))
    body = root.find("body")
    if body is not None:
        segments.extend(_paragraphs(body))
    return Record(doc_id, source, tuple(segments), 1, pmid)


def read_nxml_bytes(data: bytes, source: str, stem: str, skip_bad: bool = False, name: str = "") -> Item:
    """Parse one article's bytes (`name`: the file, if not `source` itself, e.g. a tar member);
    a syntax error names the file, line and column."""
    try:
        root = etree.fromstring(data, etree.XMLParser(**_PARSER))
    except etree.XMLSyntaxError as e:
        line, column = e.position
        where = f"{name or source}: line {line}, column {column}"
        if skip_bad:
            return BadRecord(where, f"malformed XML: {e.msg}", False, source)
        raise CorpusError(f"{where}: malformed XML: {e.msg}") from None
    return parse_article(root, source, stem)


def read_pmc(path: Path, source: str, skip_bad: bool = False) -> Iterator[Item]:
    """The one record of a `.nxml` file (articles are small: read whole, then parsed)."""
    try:
        with Stream(path, source) as stream:
            data = stream.read_all()
    except TruncatedInput as e:
        if not skip_bad:
            raise
        yield BadRecord(str(e), "truncated stream: the article is lost", True, source)
        return
    stem = path.name.split(".nxml")[0]
    yield read_nxml_bytes(data, source, stem, skip_bad)
