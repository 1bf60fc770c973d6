"""Fragmentation analysis: how many word pieces a tokenizer needs for biomedical text.

Owns the measurements behind the vocab report, each done the same way for any two fast
(`tokenizers`-backed) Hugging Face tokenizers:

* word fragmentation: mean word pieces per word and share of words split into more than one
  piece. A "word" is what the tokenizer's own BERT normalizer and pre-tokenizer yield (lowercased,
  accents stripped, punctuation split off), so "5-fluorouracil" is three words; no special tokens;
* on held-out corpus text and on the entity mentions of every BLURB NER train set (per dataset
  and pooled over all mentions);
* mean input length in pieces per instance of each published BLURB dataset split, as the model
  sees it ([CLS] ... [SEP], pairs as [CLS] A [SEP] B [SEP]) but never truncated (the paper's Table 8);
* example words tokenized both ways.

The BLURB mentions and model inputs are the ones the blurb-data stage exported
(`data/blurb_data/exports/`, `pubmedlm.blurb.exports`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from pubmedlm.blurb.exports import read_model_inputs

BATCH = 1024  # texts per encode_batch call: large enough for Rust-side parallelism, small in memory


@dataclass
class Fragmentation:
    """Raw counts over some texts; the rates are derived so that pooling is a plain sum."""

    texts: int = 0
    words: int = 0
    pieces: int = 0
    split_words: int = 0
    unknown_pieces: int = 0

    def add(self, other: Fragmentation) -> Fragmentation:
        return Fragmentation(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def summary(self) -> dict[str, float | int]:
        words = max(self.words, 1)
        return {
            "texts": self.texts,
            "words": self.words,
            "pieces": self.pieces,
            "pieces_per_word": round(self.pieces / words, 4),
            "share_split": round(self.split_words / words, 4),
            "pieces_per_text": round(self.pieces / max(self.texts, 1), 4),
            "unknown_per_1k_words": round(1000 * self.unknown_pieces / words, 3),
        }


def _batches(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def fragmentation(tokenizer, texts: Iterable[str]) -> Fragmentation:
    """Pieces per pre-tokenized word over `texts`, counted from each piece's word index."""
    backend = tokenizer.backend_tokenizer
    unk = tokenizer.unk_token_id
    out = Fragmentation()
    for batch in _batches(texts):
        for enc in backend.encode_batch(batch, add_special_tokens=False):
            per_word = Counter(w for w in enc.word_ids if w is not None)
            out.texts += 1
            out.words += len(per_word)
            out.pieces += sum(per_word.values())
            out.split_words += sum(1 for n in per_word.values() if n > 1)
            out.unknown_pieces += sum(1 for i in enc.ids if i == unk)
    return out


def input_lengths(tokenizer, instances: Iterable[Sequence[str]]) -> list[int]:
    """Pieces per instance (its one text, or a pair of texts) with the special tokens the model
    adds, untruncated."""
    backend = tokenizer.backend_tokenizer
    lengths: list[int] = []
    for batch in _batches(instances):
        inputs = [texts[0] if len(texts) == 1 else tuple(texts[:2]) for texts in batch]
        # encode_batch_fast skips offsets and word ids (unused here): ~20% faster on long inputs.
        lengths.extend(len(enc.ids) for enc in backend.encode_batch_fast(inputs, add_special_tokens=True))
    return lengths


def compare_mentions(ours, reference, mentions: dict[str, list[str]],
                     progress: bool = False) -> dict[str, Any]:
    """Fragmentation of the NER train mentions (dataset -> mention texts): pooled over all datasets
    (`ours`, `reference`) and `by_dataset`."""
    per: dict[str, dict[str, Any]] = {}
    pooled = {"ours": Fragmentation(), "reference": Fragmentation()}
    for name in _progress(list(mentions), progress, "NER mentions"):
        texts = mentions[name]
        counts = {"ours": fragmentation(ours, texts), "reference": fragmentation(reference, texts)}
        per[name] = {side: c.summary() for side, c in counts.items()} | {"mentions": len(texts)}
        pooled = {side: pooled[side].add(counts[side]) for side in pooled}
    return {
        "mentions": pooled["ours"].texts,
        **{side: c.summary() for side, c in pooled.items()},
        "by_dataset": per,
    }


def compare_heldout(ours, reference, texts: list[str]) -> dict[str, Any]:
    """Fragmentation of held-out corpus documents (the same documents for both tokenizers)."""
    return {
        "documents": len(texts),
        "ours": fragmentation(ours, texts).summary(),
        "reference": fragmentation(reference, texts).summary(),
    }


def compare_input_lengths(ours, reference, blurb_dir: Path, datasets: list[str], splits: Sequence[str],
                          progress: bool = False) -> dict[str, Any]:
    """{dataset: {split: {instances, ours, reference}}}: mean pieces per instance (Table 8 style),
    for each of `datasets` and `splits` whose model inputs blurb-data exported into `blurb_dir`."""
    out: dict[str, dict[str, Any]] = {}
    seen: dict[str, dict[str, Any]] = {}  # BC5CDR-chem and -disease share every sentence
    for name in _progress(datasets, progress, "input lengths"):
        for split in splits:
            items = read_model_inputs(blurb_dir, name, split)
            if not items:
                continue
            key = hashlib.sha256("\x1e".join("\x1f".join(texts) for texts in items).encode()).hexdigest()
            if key not in seen:
                seen[key] = _length_summary(input_lengths(ours, items), input_lengths(reference, items))
            out.setdefault(name, {})[split] = dict(seen[key])
    return out


def _length_summary(a: list[int], b: list[int]) -> dict[str, Any]:
    return {
        "instances": len(a),
        "ours": round(sum(a) / len(a), 2),
        "reference": round(sum(b) / len(b), 2),
        "ours_max": max(a),
        "reference_max": max(b),
    }


def example_words(ours, reference, words: list[str]) -> list[dict[str, Any]]:
    """Each word's pieces under both tokenizers (no special tokens)."""
    rows = []
    for word in words:
        a = ours.backend_tokenizer.encode(word, add_special_tokens=False).tokens
        b = reference.backend_tokenizer.encode(word, add_special_tokens=False).tokens
        rows.append({"word": word, "ours": a, "reference": b})
    return rows


def _progress(items: list[str], progress: bool, desc: str) -> Iterable[str]:
    from rich.progress import track

    return track(items, description=desc, disable=not progress, transient=True)
