"""Packing: corpus documents -> fixed-length token sequences in memory-mapped arrays.

Two layouts, chosen by `pack.nsp`:
- NSP (the paper's objective, BERT's `create_pretraining_data` algorithm): documents are split into
  sentences, sentences are gathered up to a target length and cut into segments A and B; half the
  time B is taken from another document of the same block (label 1 = random next).
- no NSP: documents are concatenated with [SEP] between them and cut into full sequences
  (`[CLS] tokens [SEP]`), wasting no padding.

On disk, one folder per set: `input_ids.bin` (uint16 while the vocab fits, else uint32, shape
[n, seq_len], row-major), with NSP also `token_type_ids.bin` (uint8) and `nsp_labels.bin` (uint8),
and `meta.json` (n, seq_len, dtype, padding share). Whole-word masking needs to know which pieces
start a word; that is a property of the vocabulary (pieces without the `##` prefix), so the
pretraining stage derives it from the tokenizer instead of storing a flag per token.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# beside the packed sets: which tokenizer packed them {"tokenizer", "vocab_size"}
PACK_INFO = "tokenizer.json"


@dataclass(frozen=True)
class SpecialIds:
    cls: int
    sep: int
    pad: int


def id_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


class PackedWriter:
    """Appends rows of one packed set; `close()` writes meta.json last, so a set without it is partial."""

    def __init__(self, folder: Path, seq_len: int, nsp: bool, dtype: np.dtype, pad_id: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.seq_len, self.nsp, self.dtype, self.pad_id = folder, seq_len, nsp, dtype, pad_id
        self._ids = open(folder / "input_ids.bin", "wb")  # noqa: SIM115 - closed in close()
        self._types = open(folder / "token_type_ids.bin", "wb") if nsp else None  # noqa: SIM115
        self._labels = open(folder / "nsp_labels.bin", "wb") if nsp else None  # noqa: SIM115
        self.rows = 0
        self.pad_tokens = 0

    def add(self, ids: list[int], types: list[int] | None = None, label: int | None = None) -> None:
        row = np.full(self.seq_len, self.pad_id, dtype=self.dtype)
        row[: len(ids)] = ids
        self._ids.write(row.tobytes())
        self.pad_tokens += self.seq_len - len(ids)
        if self.nsp:
            t = np.zeros(self.seq_len, dtype=np.uint8)
            t[: len(types or [])] = types or []
            self._types.write(t.tobytes())
            self._labels.write(np.uint8(label or 0).tobytes())
        self.rows += 1

    def close(self) -> dict:
        for f in (self._ids, self._types, self._labels):
            if f is not None:
                f.close()
        meta = {
            "sequences": self.rows,
            "seq_len": self.seq_len,
            "dtype": self.dtype.name,
            "nsp": self.nsp,
            "tokens": self.rows * self.seq_len,
            "padding_share": self.pad_tokens / max(1, self.rows * self.seq_len),
        }
        (self.folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return meta


class PackedSet:
    """Read-only memory-mapped view of one packed set."""

    def __init__(self, folder: Path) -> None:
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder}: not a packed set (meta.json missing; "
                                    "was the pack stage run?)")
        self.folder = folder
        self.meta = json.loads(meta_path.read_text())
        n, length = self.meta["sequences"], self.meta["seq_len"]
        if n == 0:
            raise ValueError(f"{folder}: packed split is empty (0 sequences)")
        self.input_ids = np.memmap(folder / "input_ids.bin", dtype=self.meta["dtype"], mode="r",
                                   shape=(n, length))
        self.token_type_ids = self.nsp_labels = None
        if self.meta["nsp"]:
            self.token_type_ids = np.memmap(folder / "token_type_ids.bin", dtype=np.uint8, mode="r",
                                            shape=(n, length))
            self.nsp_labels = np.memmap(folder / "nsp_labels.bin", dtype=np.uint8, mode="r", shape=(n,))

    def __len__(self) -> int:
        return self.meta["sequences"]

    @property
    def seq_len(self) -> int:
        return self.meta["seq_len"]


class StreamPacker:
    """No-NSP layout: documents joined by [SEP] and cut into `[CLS] ... [SEP]` rows of seq_len."""

    def __init__(self, seq_len: int, special: SpecialIds) -> None:
        self.body, self.special = seq_len - 2, special
        self.buf: list[int] = []

    def feed(self, doc: list[int]) -> Iterator[list[int]]:
        if self.buf:
            self.buf.append(self.special.sep)
        self.buf.extend(doc)
        while len(self.buf) >= self.body:
            yield [self.special.cls, *self.buf[: self.body], self.special.sep]
            self.buf = self.buf[self.body :]

    def flush(self) -> Iterator[list[int]]:
        if self.buf:
            yield [self.special.cls, *self.buf, self.special.sep]
            self.buf = []


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: random.Random) -> None:
    # BERT truncates the longer segment, from the front or the back at random, to avoid biases.
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _random_segment(block: list[list[list[int]]], avoid: int, target: int, rng: random.Random) -> list[int]:
    other = avoid
    for _ in range(10):
        other = rng.randrange(len(block))
        if other != avoid:
            break
    sents = block[other]
    out: list[int] = []
    for sent in sents[rng.randrange(len(sents)):]:
        out.extend(sent)
        if len(out) >= target:
            break
    return out


def nsp_instances(
    block: list[list[list[int]]], seq_len: int, short_seq_prob: float, rng: random.Random
) -> Iterator[tuple[list[int], int]]:
    """((segment A, segment B), label) per instance: BERT's algorithm on one block of documents,
    each a list of tokenized sentences. Label 1 means B was drawn from another document."""
    max_tokens = seq_len - 3
    for d, sents in enumerate(block):
        target = rng.randint(2, max_tokens) if rng.random() < short_seq_prob else max_tokens
        chunk: list[list[int]] = []
        length, i = 0, 0
        while i < len(sents):
            chunk.append(sents[i])
            length += len(sents[i])
            if i == len(sents) - 1 or length >= target:
                a_end = 1 if len(chunk) < 2 else rng.randint(1, len(chunk) - 1)
                a = [t for s in chunk[:a_end] for t in s]
                if len(block) > 1 and (len(chunk) == 1 or rng.random() < 0.5):
                    b = _random_segment(block, d, target - len(a), rng)
                    i -= len(chunk) - a_end  # the unused sentences start the next chunk
                    label = 1
                else:
                    b = [t for s in chunk[a_end:] for t in s]
                    label = 0
                _truncate_pair(a, b, max_tokens, rng)
                if a and b:
                    yield (a, b), label
                chunk, length = [], 0
            i += 1


def nsp_row(a: list[int], b: list[int], special: SpecialIds) -> tuple[list[int], list[int]]:
    ids = [special.cls, *a, special.sep, *b, special.sep]
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return ids, types
