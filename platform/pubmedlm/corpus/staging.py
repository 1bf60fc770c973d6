"""Disk-backed staging of documents between reading and writing, so MEDLINE semantics hold across
any number of files with bounded memory.

MEDLINE update files restate whole citations: the record read last (in processing order) for a
PMID replaces earlier ones, and `<DeleteCitation>` removes a PMID. Both need random access by id
over the whole corpus, which a SQLite table (stdlib, one temporary file) gives without holding
the corpus in memory. A document keeps the position where its id was first seen, so the output
order is the input order however often a document is replaced.

"Latest version wins": a record replaces the stored one unless the stored `PMID Version` is
higher (versioned citations are rare; equal versions mean a plain update, which wins by order).
A deletion removes every version of the PMID; a later record may add it back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from pubmedlm.corpus.records import Record

_SCHEMA = """
CREATE TABLE docs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    pmid TEXT,
    text TEXT NOT NULL
);
CREATE TABLE seen_text (key BLOB PRIMARY KEY) WITHOUT ROWID;
"""


class Staging:
    """The working set of documents, keyed by document id."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)
        # A scratch file: durability is worthless here, speed is not.
        self.con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;")
        self.con.executescript(_SCHEMA)
        self.con.execute("BEGIN")
        self._seq = 0

    def close(self) -> None:
        self.con.close()

    def put(self, rec: Record, text: str) -> str:
        """Store a document: returns "new", "replaced" (an earlier copy is superseded) or
        "older" (this record is itself superseded by a higher stored version)."""
        row = self.con.execute("SELECT version FROM docs WHERE id = ?", (rec.id,)).fetchone()
        if row is None:
            self._seq += 1
            self.con.execute(
                "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)",
                (rec.id, self._seq, rec.version, rec.source, rec.pmid, text),
            )
            return "new"
        if rec.version < row[0]:
            return "older"
        self.con.execute(
            "UPDATE docs SET version = ?, source = ?, pmid = ?, text = ? WHERE id = ?",
            (rec.version, rec.source, rec.pmid, text, rec.id),
        )
        return "replaced"

    def delete(self, doc_id: str) -> bool:
        """Remove a document; False when no such document is staged."""
        return self.con.execute("DELETE FROM docs WHERE id = ?", (doc_id,)).rowcount > 0

    def count(self) -> int:
        return self.con.execute("SELECT COUNT(*) FROM docs").fetchone()[0]

    def documents(self) -> Iterator[tuple[str, str, str | None, str]]:
        """(id, source, pmid, text) in first-seen order."""
        self.con.execute("CREATE INDEX IF NOT EXISTS docs_seq ON docs(seq)")
        cur = self.con.cursor()
        cur.execute("SELECT id, source, pmid, text FROM docs ORDER BY seq")
        yield from cur

    def first_text(self, key: bytes) -> bool:
        """True the first time a normalized-text key is offered (duplicate-text detection)."""
        return self.con.execute("INSERT OR IGNORE INTO seen_text VALUES (?)", (key,)).rowcount > 0
