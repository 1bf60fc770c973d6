"""Corpus assembly: read every input into staging, filter, and write shards plus metrics.

Order of operations (each document is dropped for the first reason that applies, so the counts
in `dropped` add up: records_read = documents.total + sum(dropped except bad_records)):

1. read inputs in the order given; clean each record's text; stage it by id (MEDLINE: the
   latest version of a PMID wins, `<DeleteCitation>` removes PMIDs) -> `superseded`, `deleted`;
2. in first-seen order: BLURB test documents (by PMID, then by shared n-grams) -> `blurb_test`;
   fewer than `min_words` words (empty documents always) -> `too_short`; same normalized text as
   a document already kept -> `duplicate_text`; beyond `max_documents` -> `over_max_documents`;
3. the rest go to `train-NNNNN.jsonl` or `heldout-NNNNN.jsonl` (a stable hash of the id picks
   held-out documents), `shard_documents` per shard, one `{"id", "source", "text"}` per line.

The same inputs and params give the same bytes (no timestamps, stable order, stable hashes).
Metrics: `unique_pmids` counts kept MEDLINE documents (one per PMID by construction; PMC articles
are counted as documents, not PMIDs); `bad_records` counts skipped records plus truncation events
(what followed a truncation is unreadable and uncounted); `sources` gives records read and
documents kept per input.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pubmedlm.config import CorpusConfig
from pubmedlm.corpus.clean import clean, text_key, unit_hash, word_count
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.exclusion import BlurbExclusion
from pubmedlm.corpus.inputs import CorpusInput, read_input
from pubmedlm.corpus.records import BadRecord, Deletion, Record
from pubmedlm.corpus.staging import Staging

SPLITS = ("train", "heldout")
_REPORTED_BAD = 50  # bad-record positions listed in metrics (all are counted)


@dataclass
class Tally:
    """Every count the stage reports."""

    records: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    deletions: Counter[str] = field(default_factory=Counter)
    blurb: Counter[str] = field(default_factory=Counter)
    blurb_method: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    source_records: Counter[str] = field(default_factory=Counter)
    source_kept: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    shards: dict[str, int] = field(default_factory=dict)
    words: int = 0
    characters: int = 0
    pmids: int = 0


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), disable=not enabled, transient=True,
    ) as bar:
        yield bar


def _ingest(inputs: list[CorpusInput], staging: Staging, tally: Tally, skip_bad: bool, bar: Any) -> None:
    for inp in inputs:
        task = bar.add_task(f"read {inp.label}", total=None)
        for item in read_input(inp, skip_bad):
            if isinstance(item, Record):
                tally.records += 1
                tally.source_records[item.source] += 1
                if staging.put(item, clean(*item.segments)) != "new":
                    tally.dropped["superseded"] += 1
                bar.advance(task)
            elif isinstance(item, Deletion):
                for pmid in item.pmids:
                    tally.deletions["requested"] += 1
                    applied = staging.delete(f"pmid:{pmid}")
                    tally.deletions["applied" if applied else "not_found"] += 1
                    tally.dropped["deleted"] += applied
            elif isinstance(item, BadRecord):
                tally.dropped["bad_records"] += 1
                note = f"{item.where}: {item.reason}"
                (tally.truncated if item.truncated else tally.bad).append(note)
        bar.remove_task(task)


class _ShardWriter:
    """Lines into `<split>-00000.jsonl`, `<split>-00001.jsonl`, ... (shard 0 always exists)."""

    def __init__(self, folder: Path, split: str, per_shard: int) -> None:
        self.folder, self.split, self.per_shard = folder, split, per_shard
        self.shards, self.in_shard = 0, 0
        self.file: TextIO = self._open()

    def _open(self) -> TextIO:
        path = self.folder / f"{self.split}-{self.shards:05d}.jsonl"
        self.shards += 1
        return open(path, "w", encoding="utf-8", newline="\n")

    def write(self, line: str) -> None:
        if self.in_shard == self.per_shard:
            self.file.close()
            self.file, self.in_shard = self._open(), 0
        self.file.write(line)
        self.in_shard += 1

    def close(self) -> int:
        self.file.close()
        return self.shards


def _drop_reason(
    pmid: str | None, text: str, words: int, cfg: CorpusConfig, exclusion: BlurbExclusion | None,
    staging: Staging, tally: Tally,
) -> str | None:
    if exclusion is not None and (match := exclusion.match(pmid, text)) is not None:
        tally.blurb[match.dataset] += 1
        tally.blurb_method[match.method] += 1
        return "blurb_test"
    if words < max(cfg.min_words, 1):
        return "too_short"
    if not staging.first_text(text_key(text)):
        return "duplicate_text"
    return None


def _write(staging: Staging, cfg: CorpusConfig, out: Path, exclusion: BlurbExclusion | None,
           tally: Tally, bar: Any) -> None:
    writers = {s: _ShardWriter(out, s, cfg.shard_documents) for s in SPLITS}
    total = staging.count()
    task = bar.add_task("filter and write", total=total)
    done = 0
    for doc_id, source, pmid, text in staging.documents():
        if cfg.max_documents is not None and sum(tally.kept.values()) >= cfg.max_documents:
            tally.dropped["over_max_documents"] += total - done
            break
        done += 1
        bar.advance(task)
        words = word_count(text)
        reason = _drop_reason(pmid, text, words, cfg, exclusion, staging, tally)
        if reason is not None:
            tally.dropped[reason] += 1
            continue
        split = "heldout" if unit_hash(doc_id) < cfg.heldout_fraction else "train"
        writers[split].write(json.dumps({"id": doc_id, "source": source, "text": text}, ensure_ascii=False)
                             + "\n")
        tally.kept[split] += 1
        tally.source_kept[source] += 1
        tally.words += words
        tally.characters += len(text)
        tally.pmids += doc_id.startswith("pmid:")
    tally.shards = {s: w.close() for s, w in writers.items()}


def build_corpus(inputs: list[CorpusInput], cfg: CorpusConfig, out: Path,
                 exclusion: BlurbExclusion | None, progress: bool = False) -> dict[str, Any]:
    """Read, filter and write the corpus into the (empty) folder `out`; return the metrics."""
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="pubmedlm-corpus-") as tmp, _progress(progress) as bar:
        staging = Staging(Path(tmp) / "staging.sqlite")
        try:
            _ingest(inputs, staging, tally, cfg.skip_bad_records, bar)
            if staging.count() == 0:
                raise CorpusError(_empty_message(inputs, tally, "no documents in the inputs"))
            _write(staging, cfg, out, exclusion, tally, bar)
        finally:
            staging.close()
    if not tally.kept:
        raise CorpusError(_empty_message(inputs, tally, "no documents left after filtering"))
    return metrics(tally, inputs, exclusion)


def _empty_message(inputs: list[CorpusInput], tally: Tally, what: str) -> str:
    names = ", ".join(i.label for i in inputs) or "(no inputs)"
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(tally.dropped.items()) if v) or "nothing dropped"
    return f"corpus: {what} ({tally.records} records read from {names}; {dropped})"


def metrics(tally: Tally, inputs: list[CorpusInput], exclusion: BlurbExclusion | None) -> dict[str, Any]:
    """The content of `metrics/corpus.json` (sorted keys, no timings: stable bytes)."""
    reasons = ("superseded", "deleted", "blurb_test", "too_short", "duplicate_text", "over_max_documents",
               "bad_records")
    blurb: dict[str, Any] = {"enabled": exclusion is not None}
    if exclusion is not None:
        blurb |= exclusion.summary()
        blurb["by_dataset"] = {d: tally.blurb[d] for d in sorted(exclusion.datasets)}
        blurb["by_method"] = {m: tally.blurb_method[m] for m in ("id", "text")}
    return {
        "documents": {**{s: tally.kept[s] for s in SPLITS}, "total": sum(tally.kept.values())},
        "unique_pmids": tally.pmids,
        "words": tally.words,
        "characters": tally.characters,
        "shards": tally.shards,
        "records_read": tally.records,
        "dropped": {r: tally.dropped[r] for r in reasons},
        "deletions": {k: tally.deletions[k] for k in ("requested", "applied", "not_found")},
        "blurb_test": blurb,
        "bad_input": {
            "bad_records": tally.bad[:_REPORTED_BAD],
            "bad_records_listed": min(len(tally.bad), _REPORTED_BAD),
            "truncated_files": tally.truncated,
            "note": "records after a truncation point cannot be read and are not counted",
        },
        "sources": {
            i.label: {"records": tally.source_records[i.label], "documents": tally.source_kept[i.label]}
            for i in inputs
        },
    }
