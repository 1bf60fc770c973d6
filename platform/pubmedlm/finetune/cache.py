"""A task's encoded splits, computed once per (task, tokenizer, codec, caps, data) and reused by every
trial and seed: the start-up of a fine-tuning run is reading, not tokenizing.

Two levels:
- in the process: a warm Ray actor or worker that runs the next trial or seed of the same task
  finds the encoded split in memory (no file read, no tokenization);
- on disk: a pickle per split under `<project>/<runtime.cache_dir>/features/` (`Settings.features_dir`),
  named by a digest of everything that decides the encoding: the task, the tokenizer's files, the
  codec options, the cap, the split file's bytes and the source of the encoding code itself. A fresh
  process (the first trial's actor, a seed worker, the finetune stage after tune) reads it. Written
  to a temporary name and renamed, so concurrent writers cannot leave a torn file.

Caps (`finetune.max_train_examples`, `max_eval_examples`) take a fixed random sample of rows, in
file order (files are often sorted by label, so the first rows would not do): the same sample for
every trial and seed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pubmedlm.blurb.normalized import Row, read_jsonl
from pubmedlm.finetune import features, tagging
from pubmedlm.finetune.features import Encoded, TaskCodec
from pubmedlm.text.models import resolve_model

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")
_MEMO: dict[str, Encoded] = {}
_MEMO_SIZE = 8
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def cap_rows(rows: list[Row], cap: int | None) -> list[Row]:
    """A fixed random sample of `cap` rows, in file order (see the module docstring)."""
    if cap is None or cap >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(0).choice(len(rows), cap, replace=False))
    return [rows[i] for i in keep]


def _file_hash(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_HASHES[key]


def _tokenizer_id(model: str) -> str:
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return model  # a hub id names its tokenizer
    return json.dumps({f: _file_hash(folder / f) for f in TOKENIZER_FILES if (folder / f).is_file()})


def _code_id() -> str:
    source = "".join(inspect.getsource(m) for m in (features, tagging)) + inspect.getsource(cap_rows)
    return hashlib.sha256(source.encode()).hexdigest()


def split_key(model: str, codec: TaskCodec, path: Path, cap: int | None) -> str:
    """The digest naming one encoded split (see the module docstring)."""
    key = json.dumps({"task": codec.task.id, "tokenizer": _tokenizer_id(model),
                      "codec": asdict(codec.options), "cap": cap, "data": _file_hash(path),
                      "code": _code_id()}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def encoded_split(model: str, codec: TaskCodec, path: Path, cap: int | None, folder: str) -> Encoded:
    """The split at `path` (capped), encoded by `codec`: from memory, else from `folder` (the disk
    cache; "" for none), else encoded now and kept in both."""
    key = split_key(model, codec, path, cap)
    if key in _MEMO:
        return _MEMO[key]
    file = Path(folder) / f"{codec.task.id}-{path.stem}-{key}.pkl" if folder else None
    encoded = None
    if file is not None and file.is_file():
        try:
            encoded = pickle.loads(file.read_bytes())
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            encoded = None  # unreadable (torn by a crash, or older code): encode again
    if encoded is None:
        encoded = codec.encode(cap_rows(read_jsonl(path), cap))
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(encoded, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp, file)
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = encoded
    return encoded


__all__ = ["cap_rows", "encoded_split", "split_key"]
