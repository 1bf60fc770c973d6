"""What every BLURB format module shares: the format error, the JSON Lines reader and the relation
TSV row.

Owns `BlurbFormatError` (raised by the strict readers of `normalized.py`, one per source format,
and by the converters) and BLURB's relation TSV (ChemProt, DDI: `pair_id<TAB>masked
sentence<TAB>label`, no header): the row the converters build and its byte-exact writer, which
`assemble.py` compares with the published files. The reader of that format is
`normalized.read_relation_tsv`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pubmedlm.errors import UserError


class BlurbFormatError(UserError, ValueError):
    """A BLURB file does not follow its documented format; the message names file and line."""


def json_lines(path: Path, error: type[Exception] = BlurbFormatError) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines file (prepared splits, exports,
    prediction files); a line that is not JSON, or bytes that are not UTF-8, raise `error` naming
    `path:line`."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                            f"{e.start + 1}); save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON: {e.msg}") from None


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


__all__ = ["BlurbFormatError", "RelationRow", "relation_tsv_text", "write_relation_tsv"]
