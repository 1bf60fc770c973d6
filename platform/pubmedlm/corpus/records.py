"""What every corpus reader yields: documents, MEDLINE deletions, and (when bad records may be
skipped) notices of what was skipped. Readers stay free of policy; `build` applies it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    """One document as read, before cleaning and filtering.

    `id` is the dedup key: `pmid:<PMID>` for MEDLINE (so a later version replaces an earlier
    one), `pmc:<PMCID>` for PMC articles, `text:<input>#<line>`, `jsonl:<input>#<id or line>`,
    `tar:<input>:<member>` for the rest. `version` is MEDLINE's `PMID Version` (1 elsewhere).
    """

    id: str
    source: str
    segments: tuple[str, ...]
    version: int = 1
    pmid: str | None = None


@dataclass(frozen=True)
class Deletion:
    """A MEDLINE `<DeleteCitation>`: these PMIDs leave the corpus (in processing order)."""

    pmids: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class BadRecord:
    """A record skipped because `corpus.skip_bad_records` is on; `where` names file and position.

    `truncated` marks a stream that ended early (a cut gzip or tar): nothing after `where` in that
    file could be read, so an unknown number of records is lost with it.
    """

    where: str
    reason: str
    truncated: bool = False
    source: str = field(default="", compare=False)


Item = Record | Deletion | BadRecord
