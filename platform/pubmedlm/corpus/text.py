"""Readers of plain-text corpora: `.txt`, `.jsonl` and `.tar`/`.tar.gz` of text files (each may be
gzipped), all streamed line by line or member by member, all strictly UTF-8.

- `.txt`: documents are separated by blank (or whitespace-only) lines; the lines inside one are
  hard wraps and are joined. A Project Gutenberg book is cut to the text between its
  `*** START OF ...` and `*** END OF ...` markers (header, licence and footer dropped). Id:
  `text:<input>#<first line of the document>`.
- `.jsonl`: one JSON object per line with a string `text` and an optional `id`; blank lines are
  skipped. Id: `jsonl:<input>#<id, or the line number>`.
- tar: one document per regular member (the OHSUMED sample: title on the first line, one abstract
  sentence per line), except `.nxml` members, which are read as PMC articles. Id:
  `tar:<input>:<member path>`.

Bytes that are not UTF-8 stop the run with the file, byte offset and line; with
`skip_bad_records` the document holding them is skipped and counted instead.
"""

from __future__ import annotations

import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from pubmedlm.corpus import stream as stream_module
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.pmc import read_nxml_bytes
from pubmedlm.corpus.records import BadRecord, Item, Record
from pubmedlm.corpus.stream import Stream, TruncatedInput, decode_utf8

_GUTENBERG_START = re.compile(r"^\s*\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
_GUTENBERG_END = re.compile(r"^\s*\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
# Gutenberg headers are a few dozen lines; a START marker later than this is not a header.
_HEADER_LINES = 400


def _decoded_lines(stream: Stream, source: str, skip_bad: bool) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; text is None for an undecodable line when skipping."""
    for lineno, offset, raw in stream.lines_with_offsets():
        try:
            yield lineno, decode_utf8(raw, source, offset, lineno)
        except CorpusError:
            if not skip_bad:
                raise
            yield lineno, None


def _book_lines(lines: Iterator[tuple[int, str | None]]) -> Iterator[tuple[int, str | None]]:
    """Drop a Project Gutenberg header/footer when the START marker is near the top."""
    head: list[tuple[int, str | None]] = []
    for item in lines:
        head.append(item)
        if item[1] is not None and _GUTENBERG_START.match(item[1]):
            break
        if len(head) >= _HEADER_LINES:
            yield from head
            yield from lines
            return
    else:
        yield from head  # short file without a marker
        return
    for item in lines:  # inside the book: stop at the END marker
        if item[1] is not None and _GUTENBERG_END.match(item[1]):
            return
        yield item


def read_text(path: Path, source: str, skip_bad: bool = False) -> Iterator[Item]:
    """Blank-line-separated documents of a text file."""
    with Stream(path, source) as stream:
        block: list[str] = []
        start, bad_line, size = 0, 0, 0
        try:
            for lineno, line in _book_lines(_decoded_lines(stream, source, skip_bad)):
                if line is not None and line.strip():
                    block.append(line)
                    start, size = start or lineno, size + len(line)
                    if size > stream_module.MAX_LINE_BYTES:
                        raise CorpusError(
                            f"{source}: the document from line {start} runs over "
                            f"{stream_module.MAX_LINE_BYTES >> 20} MiB without a blank line; documents in a "
                            "text input are separated by blank lines")
                    continue
                if line is None:  # undecodable: poison the block it belongs to
                    bad_line, start = bad_line or lineno, start or lineno
                    continue
                yield from _flush(source, block, start, bad_line)
                block, start, bad_line, size = [], 0, 0, 0
        except TruncatedInput as e:
            if not skip_bad:
                raise
            yield BadRecord(str(e), "truncated stream: the rest of this file is lost", True, source)
            return
        yield from _flush(source, block, start, bad_line)


def _flush(source: str, block: list[str], start: int, bad_line: int) -> Iterator[Item]:
    if bad_line:
        yield BadRecord(f"{source}: line {bad_line}", "not valid UTF-8", False, source)
    elif block:
        yield Record(f"text:{source}#{start}", source, tuple(block))


def read_jsonl(path: Path, source: str, skip_bad: bool = False) -> Iterator[Item]:
    """One document per JSON line: {"text": str, "id": optional}."""
    with Stream(path, source) as stream:
        try:
            for lineno, line in _decoded_lines(stream, source, skip_bad):
                if line is not None and not line.strip():
                    continue
                try:
                    yield _json_record(line, source, lineno)
                except CorpusError as e:
                    if not skip_bad:
                        raise
                    yield BadRecord(f"{source}: line {lineno}", str(e).split(": ", 2)[-1], False, source)
        except TruncatedInput as e:
            if not skip_bad:
                raise
            yield BadRecord(str(e), "truncated stream: the rest of this file is lost", True, source)


def _json_record(line: str | None, source: str, lineno: int) -> Record:
    where = f"{source}: line {lineno}"
    if line is None:
        raise CorpusError(f"{where}: not valid UTF-8")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{where}: not valid JSON (column {e.colno}): {e.msg}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise CorpusError(f"{where}: expected an object with a string 'text' field")
    doc_id = obj.get("id")
    return Record(f"jsonl:{source}#{lineno if doc_id is None else doc_id}", source, (obj["text"],))


def read_tar(path: Path, source: str, skip_bad: bool = False) -> Iterator[Item]:
    """One document per regular member, streamed (`r|*`: no random access, constant memory)."""
    with open(path, "rb") as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r|*") as tar:
                for member in tar:
                    if member.isfile():
                        yield _member_record(tar.extractfile(member).read(), source, member.name, skip_bad)
        except (tarfile.ReadError, EOFError, zlib.error, OSError) as e:
            size = path.stat().st_size
            message = (f"{source}: truncated or corrupt tar archive after reading {raw.tell()} of {size} "
                       f"bytes ({e})")
            if not skip_bad:
                raise CorpusError(message) from None
            yield BadRecord(message, "truncated stream: the rest of this archive is lost", True, source)


def _member_record(data: bytes, source: str, name: str, skip_bad: bool) -> Item:
    label = f"{source}:{name}"
    if name.endswith(".nxml"):
        return read_nxml_bytes(data, source, Path(name).name.split(".nxml")[0], skip_bad, label)
    try:
        text = decode_utf8(data, label)
    except CorpusError as e:
        if not skip_bad:
            raise
        return BadRecord(label, str(e).split(": ", 1)[-1], False, source)
    return Record(f"tar:{label}", source, tuple(text.splitlines()))
