"""Reading the corpus stage's output: JSONL shards `data/corpus/{train,heldout}-NNNNN.jsonl`,
one record `{"id", "source", "text"}` per line. Every later stage reads the corpus through here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path


def shard_paths(corpus_dir: Path, split: str) -> list[Path]:
    """The corpus stage's JSONL shards of one split (`train`, `heldout`), in name order."""
    return sorted(corpus_dir.glob(f"{split}-*.jsonl"))


def iter_texts(paths: Iterable[Path], max_documents: int | None = None) -> Iterator[str]:
    """Stream the `text` field of every JSONL record, in file order (never all in memory)."""
    seen = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                if max_documents is not None and seen >= max_documents:
                    return
                seen += 1
                yield json.loads(line)["text"]


def count_documents(paths: Iterable[Path]) -> int:
    """Records in the shards (non-empty lines), without parsing them: sizes the progress bars."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            total += sum(1 for line in f if line.strip())
    return total
