"""Byte streams of input files: transparent gzip, position tracking, and errors that say where.

Every reader goes through `Stream`, so a truncated or corrupt `.gz` is reported the same way
everywhere: file name, decompressed bytes and lines read so far, compressed bytes consumed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pubmedlm.corpus.errors import CorpusError

CHUNK = 1 << 20  # 1 MiB: large enough to amortize the per-call cost, small enough to stay flat
MAX_LINE_BYTES = 16 << 20
"""The longest line (and plain-text document) an input may hold: a MEDLINE abstract is a few KiB,
a whole PMC article a few hundred; a longer one is a file without line breaks (or blank lines), which
would become one document many times its size in memory."""


class TruncatedInput(CorpusError):
    """The stream ended early or is corrupt; nothing after this position can be read."""


def is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def base_suffix(path: Path) -> str:
    """The format suffix, ignoring a trailing `.gz`: `a.xml.gz` -> `.xml`, `b.tar.gz` -> `.tar`."""
    name = path.name[:-3] if is_gzip(path) else path.name
    return Path(name).suffix.lower() if "." in name else ""


class Stream:
    """Read `path` (decompressing `.gz`) in chunks or lines while counting bytes and lines.

    Gzip is decompressed here with `zlib` rather than `gzip.GzipFile`, because GzipFile discards
    whatever it had decompressed in a read that hits a truncation; with zlib every decompressible
    byte is delivered before the truncation is reported. Concatenated gzip members are supported.
    """

    def __init__(self, path: Path, label: str | None = None) -> None:
        self.path = path
        self.label = label or str(path)
        self.bytes = 0  # decompressed bytes handed out so far
        self.lines = 0  # newlines in them
        self.compressed = 0  # bytes read from the file
        self._raw: BinaryIO | None = None

    def __enter__(self) -> Stream:
        try:
            self._raw = open(self.path, "rb")
        except OSError as e:
            raise CorpusError(f"{self.label}: cannot open: {e.strerror or e}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._raw is not None:
            self._raw.close()

    def _truncated(self, err: str) -> TruncatedInput:
        return TruncatedInput(
            f"{self.label}: truncated or corrupt gzip stream after {self.bytes} decompressed bytes "
            f"(line {self.lines + 1}); {self.compressed} of {self.path.stat().st_size} compressed bytes read "
            f"({err})"
        )

    def _file_chunks(self, size: int) -> Iterator[bytes]:
        assert self._raw is not None, "use Stream as a context manager"
        while chunk := self._raw.read(size):
            self.compressed += len(chunk)
            yield chunk

    def _gunzip(self, size: int) -> Iterator[bytes]:
        inflate = zlib.decompressobj(wbits=31)  # 31: expect a gzip header and trailer
        started = False
        for data in self._file_chunks(size // 4):
            while data:
                try:
                    out = inflate.decompress(data, size)  # bounded output, whatever the ratio
                except zlib.error as e:
                    raise self._truncated(f"corrupt data: {e}") from None
                started = True
                if out:
                    yield out
                if not inflate.eof:
                    data = inflate.unconsumed_tail
                    continue
                # A further gzip member may follow; NUL padding after the last one is allowed.
                data = inflate.unused_data if inflate.unused_data.strip(b"\0") else b""
                if data:
                    inflate = zlib.decompressobj(wbits=31)
        if not started or not inflate.eof:
            raise self._truncated("compressed data ends before the end-of-stream marker")

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        source = self._gunzip(size) if is_gzip(self.path) else self._file_chunks(size)
        for chunk in source:
            self.bytes += len(chunk)
            self.lines += chunk.count(b"\n")
            yield chunk

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def lines_with_offsets(self) -> Iterator[tuple[int, int, bytes]]:
        """(1-based line number, byte offset of the line start, raw line bytes with its newline).
        `bytes`/`lines` count what was read ahead, so use the yielded numbers for positions."""
        lineno, offset, pending = 0, 0, []  # pending: pieces of a line longer than a chunk
        for chunk in self.chunks():
            if b"\n" not in chunk:
                pending.append(chunk)
                if sum(map(len, pending)) > MAX_LINE_BYTES:
                    raise CorpusError(
                        f"{self.label}: line {lineno + 1} (from byte {offset}) runs over "
                        f"{MAX_LINE_BYTES >> 20} MiB without a line break; text inputs hold documents "
                        "separated by blank lines, JSON Lines one record a line: check the file's format")
                continue
            lines = (b"".join(pending) + chunk).split(b"\n")
            pending = [lines.pop()]
            for line in lines:
                lineno += 1
                yield lineno, offset, line + b"\n"
                offset += len(line) + 1
        if rest := b"".join(pending):
            yield lineno + 1, offset, rest


def decode_utf8(data: bytes, label: str, offset: int = 0, line: int | None = None) -> str:
    """UTF-8 text, or a CorpusError naming the file, the byte offset and (if known) the line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        at_line = f"line {line}, column {e.start + 1}" if line is not None else _line_of(data, e.start)
        raise CorpusError(
            f"{label}: not valid UTF-8 at byte {offset + e.start} ({at_line}): "
            f"{e.reason} (byte 0x{data[e.start]:02x}); convert the file to UTF-8"
        ) from None


def _line_of(data: bytes, index: int) -> str:
    line = data.count(b"\n", 0, index) + 1
    column = index - (data.rfind(b"\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"
