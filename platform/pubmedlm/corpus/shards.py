"""Reading the corpus stage's output: JSONL shards `data/corpus/{train,heldout}-NNNNN.jsonl`,
one record `{"id", "source", "text"}` per line. Every later stage reads the corpus through here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from pubmedlm.corpus.errors import CorpusError


def shard_paths(corpus_dir: Path, split: str) -> list[Path]:
    """The corpus stage's JSONL shards of one split (`train`, `heldout`), in name order."""
    return sorted(corpus_dir.glob(f"{split}-*.jsonl"))


def iter_texts(paths: Iterable[Path], max_documents: int | None = None) -> Iterator[str]:
    """Stream the `text` field of every JSONL record, in file order (never all in memory)."""
    seen = 0
    for path in paths:
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                if max_documents is not None and seen >= max_documents:
                    return
                seen += 1
                yield _text(line, path, lineno)


def _text(line: bytes, path: Path, lineno: int) -> str:
    """The `text` of one shard record; a cut, undecodable or foreign line is a `CorpusError`
    naming the shard and line (rerun `pubmedlm corpus` to rebuild the shards)."""
    try:
        text = json.loads(line)["text"]
    except UnicodeDecodeError as e:
        problem = f"not UTF-8 ({e.reason})"
    except json.JSONDecodeError as e:
        problem = f"not a complete JSON record ({e.msg}, column {e.colno}); the shard may be cut short"
    except (KeyError, TypeError):
        problem = "not a corpus record (no 'text' field)"
    else:
        if isinstance(text, str):
            return text
        problem = "its 'text' is not a string"
    raise CorpusError(f"corpus shard {path}:{lineno}: {problem}; rerun `pubmedlm corpus` to rebuild it")


def count_documents(paths: Iterable[Path]) -> int:
    """Records in the shards (non-empty lines), without parsing them: sizes the progress bars."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            total += sum(1 for line in f if line.strip())
    return total
