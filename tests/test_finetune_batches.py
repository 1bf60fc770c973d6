"""Fine-tuning's data path: length-grouped batches (the same rows as the plain seeded shuffle, less
padding, reproducible) and the cache of encoded splits (what it returns equals a fresh encoding;
a change of data or cap is a new entry; a torn file is encoded again). Hermetic: committed fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES
from pubmedlm.blurb import tasks
from pubmedlm.blurb.normalized import read_jsonl
from pubmedlm.config import FinetuneConfig, RuntimeConfig
from pubmedlm.finetune import cache
from pubmedlm.finetune.features import TaskCodec
from pubmedlm.finetune.fit import Settings, epoch_batches, load_task
from pubmedlm.text.models import load_tokenizer


def _padded(batches: list[np.ndarray], lengths: np.ndarray) -> int:
    return int(sum(len(b) * lengths[b].max() for b in batches))


def test_grouped_batches_hold_the_plain_shuffles_rows_with_less_padding() -> None:
    lengths = np.random.default_rng(1).integers(5, 120, size=403)
    for epoch in range(3):
        plain = epoch_batches(lengths, 16, 7, epoch, 0)
        # the reference: the loop's order before grouping, a seeded permutation cut into batches
        reference = np.random.default_rng((7, epoch)).permutation(403)[: 25 * 16].reshape(25, 16)
        assert np.array_equal(np.stack(plain), reference)
        grouped = epoch_batches(lengths, 16, 7, epoch, 5)
        assert len(grouped) == 25 and all(len(b) == 16 for b in grouped)
        assert sorted(np.concatenate(grouped)) == sorted(reference.ravel()), "same rows, each once"
        assert all(np.array_equal(a, b) for a, b in zip(grouped, epoch_batches(lengths, 16, 7, epoch, 5),
                                                        strict=True)), "reproducible"
        assert _padded(grouped, lengths) < 0.8 * _padded(plain, lengths)
    first, second = (np.concatenate(epoch_batches(lengths, 16, 7, e, 5)) for e in (0, 1))
    assert not np.array_equal(first, second), "a fresh order each epoch"


def _settings(gold: Path, features: Path, cap: int | None = None) -> Settings:
    return Settings(model="minilm", task="NCBI-disease", gold_dir=str(gold),
                    finetune=FinetuneConfig(model="minilm", max_train_examples=cap), runtime=RuntimeConfig(),
                    features_dir=str(features))


def test_cached_splits_equal_a_fresh_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gold = tmp_path / "gold"
    shutil.copytree(FIXTURES / "blurb_data" / "NCBI-disease", gold / "NCBI-disease")
    monkeypatch.setattr(cache, "_MEMO", {})
    settings = _settings(gold, tmp_path / "features")
    first = load_task(settings, ("train",)).splits["train"]
    assert load_task(settings, ("train",)).splits["train"] is first, "the same process: from memory"
    files = list((tmp_path / "features").glob("NCBI-disease-train-*.pkl"))
    assert len(files) == 1
    cache._MEMO.clear()
    from_disk = load_task(settings, ("train",)).splits["train"]
    codec = TaskCodec(tasks.get("NCBI-disease"), load_tokenizer("minilm"), settings.codec)
    fresh = codec.encode(read_jsonl(gold / "NCBI-disease" / "train.jsonl"))
    for got in (first, from_disk):
        assert got.inputs == fresh.inputs and got.first_pieces == fresh.first_pieces
        assert got.rows == fresh.rows
    # a cap, or other data, is another entry
    load_task(_settings(gold, tmp_path / "features", cap=5), ("train",))
    path = gold / "NCBI-disease" / "train.jsonl"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    shorter = load_task(settings, ("train",)).splits["train"]
    assert len(shorter) == len(fresh) - 1
    assert len(list((tmp_path / "features").glob("NCBI-disease-train-*.pkl"))) == 3
    # a torn file is encoded again, not an error
    cache._MEMO.clear()
    newest = max((tmp_path / "features").glob("*.pkl"), key=lambda f: f.stat().st_mtime_ns)
    newest.write_bytes(newest.read_bytes()[:20])
    assert load_task(settings, ("train",)).splits["train"].inputs == shorter.inputs
