"""Streaming reader of PubMed/MEDLINE XML (baseline and update files, `.xml` or `.xml.gz`).

Yields a `Record` per `<PubmedArticle>` / `<PubmedBookArticle>` and a `Deletion` per
`<DeleteCitation>`, in file order, with memory bounded by one record whatever the file size:
each handled element is cleared and its already-handled siblings are detached from the root.

Text kept: the title, then the abstract's `AbstractText` sections in order, *without* their
labels ("BACKGROUND:", "METHODS:"...). The labels are NLM boilerplate repeated across millions of
abstracts; the paper's corpus is the abstract text, and BLURB's PubMedQA contexts and HoC
sentences carry no labels either, so excluding them also keeps n-gram matching aligned.
Inline markup (`<i>`, `<sup>`, `<sub>`, MathML) contributes its text through `itertext()`.
`OtherAbstract` (translations, plain-language summaries) is not kept.

Two parsing modes:

- strict (default): one libxml2 pull parser over the whole stream; the first syntax error
  stops with a `CorpusError` naming the file, line and column;
- lenient (`skip_bad_records`): the stream is cut into records at their start and end tags and
  each record is parsed on its own, so a malformed record is reported as a `BadRecord` and
  reading resumes at the next one. A truncated gzip cannot be resumed: the rest of that file is
  reported lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.records import BadRecord, Deletion, Item, Record
from pubmedlm.corpus.stream import Stream, TruncatedInput

ARTICLE, BOOK, DELETE = "PubmedArticle", "PubmedBookArticle", "DeleteCitation"
TAGS = (ARTICLE, BOOK, DELETE)
_PARSER_OPTS = {"resolve_entities": False, "no_network": True, "recover": False}
# Record boundaries for the lenient splitter; `[\s>]` keeps <PubmedArticleSet> from matching.
_START = re.compile(rb"<(PubmedArticle|PubmedBookArticle|DeleteCitation)[\s>]")


class _BadElement(ValueError):
    """A well-formed element that lacks what MEDLINE guarantees (e.g. a PMID)."""


def _text(el: etree._Element | None) -> str:
    return "".join(el.itertext()) if el is not None else ""


def parse_element(el: etree._Element, source: str) -> Record | Deletion:
    """A `Record` or `Deletion` from one parsed MEDLINE element."""
    tag = el.tag
    if tag == DELETE:
        pmids = tuple(p.text.strip() for p in el.iterfind("PMID") if p.text and p.text.strip())
        return Deletion(pmids, source)
    if tag == ARTICLE:
        doc = el.find("MedlineCitation")
        art = doc.find("Article") if doc is not None else None
        title_el = art.find("ArticleTitle") if art is not None else None
    elif tag == BOOK:
        doc = el.find("BookDocument")
        art = doc
        title_el = doc.find("ArticleTitle") if doc is not None else None
        if title_el is None and doc is not None:
            title_el = doc.find("Book/BookTitle")
    else:
        raise _BadElement(f"unexpected element <{tag}>")
    pmid_el = doc.find("PMID") if doc is not None else None
    pmid = (pmid_el.text or "").strip() if pmid_el is not None else ""
    if not pmid.isdigit():
        raise _BadElement(f"<{tag}> without a numeric PMID")
    version_text = pmid_el.get("Version", "1")
    version = int(version_text) if version_text.isdigit() else 1
    sections = [_text(a) for a in art.iterfind("Abstract/AbstractText")] if art is not None else []
    return Record(f"pmid:{pmid}", source, (_text(title_el), *sections), version, pmid)


def read_medline(path: Path, source: str, skip_bad: bool = False) -> Iterator[Item]:
    """Records and deletions of one MEDLINE XML file, in file order."""
    if skip_bad:
        yield from _read_lenient(path, source)
    else:
        yield from _read_strict(path, source)


def _read_strict(path: Path, source: str) -> Iterator[Item]:
    parser = etree.XMLPullParser(events=("end",), tag=TAGS, **_PARSER_OPTS)
    with Stream(path, source) as stream:
        for chunk in stream.chunks():
            try:
                parser.feed(chunk)
            except etree.XMLSyntaxError as e:
                raise _syntax_error(source, e) from None
            yield from _drain(parser, source)
        try:
            parser.close()
        except etree.XMLSyntaxError as e:
            raise _syntax_error(source, e) from None
        yield from _drain(parser, source)


def _syntax_error(source: str, e: etree.XMLSyntaxError) -> CorpusError:
    line, column = e.position
    return CorpusError(f"{source}: malformed XML at line {line}, column {column}: {e.msg}")


def _drain(parser: etree.XMLPullParser, source: str) -> Iterator[Item]:
    for _event, el in parser.read_events():
        try:
            item = parse_element(el, source)
        except _BadElement as e:
            raise CorpusError(f"{source}: line {el.sourceline}: {e}") from None
        # Constant memory: empty this element and detach the finished siblings before it,
        # otherwise the root keeps one (empty) child per record read.
        el.clear(keep_tail=True)
        parent = el.getparent()
        if parent is not None:
            while el.getprevious() is not None:
                del parent[0]
        yield item


def _read_lenient(path: Path, source: str) -> Iterator[Item]:
    """Split the byte stream at record tags and parse each record alone (see module doc)."""
    parser = etree.XMLParser(**_PARSER_OPTS)
    buf = b""
    line_at_buf = 1  # line number of buf[0]
    with Stream(path, source) as stream:
        chunks = stream.chunks()
        eof = False
        while True:
            m = _START.search(buf)
            end = -1
            if m:
                end_tag = b"</" + m.group(1) + b">"
                end = buf.find(end_tag, m.end())
                nxt = _START.search(buf, m.end())
                if nxt and (end < 0 or nxt.start() < end):
                    # A new record starts before this one closes: this one is broken.
                    yield _bad(source, line_at_buf + buf.count(b"\n", 0, m.start()),
                               f"<{m.group(1).decode()}> never closed")
                    line_at_buf += buf.count(b"\n", 0, nxt.start())
                    buf = buf[nxt.start():]
                    continue
            if m and end >= 0:
                stop = end + len(end_tag)
                start_line = line_at_buf + buf.count(b"\n", 0, m.start())
                yield _parse_fragment(buf[m.start():stop], parser, source, start_line)
                line_at_buf = start_line + buf.count(b"\n", m.start(), stop)
                buf = buf[stop:]
                continue
            if eof:
                if m:
                    yield _bad(source, line_at_buf + buf.count(b"\n", 0, m.start()),
                               "file ends inside a record")
                return
            try:
                chunk = next(chunks)
            except StopIteration:
                eof = True
                continue
            except TruncatedInput as e:
                yield BadRecord(str(e), "truncated stream: the rest of this file is lost", True, source)
                return
            if not m:
                # Nothing open: drop the scanned bytes but keep a tail that may hold a cut tag.
                keep = max(0, len(buf) - 32)
                line_at_buf += buf.count(b"\n", 0, keep)
                buf = buf[keep:]
            buf += chunk


def _bad(source: str, line: int, reason: str) -> BadRecord:
    return BadRecord(f"{source}: line {line}", reason, False, source)


def _parse_fragment(data: bytes, parser: etree.XMLParser, source: str, start_line: int) -> Item:
    try:
        el = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        line, column = e.position
        return _bad(source, start_line + line - 1, f"malformed XML (column {column}): {e.msg}")
    try:
        return parse_element(el, source)
    except _BadElement as e:
        return _bad(source, start_line, str(e))
