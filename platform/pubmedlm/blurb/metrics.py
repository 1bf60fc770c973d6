"""BLURB's metrics, one function per metric name of the task table, on plain Python lists.

Owns the exact definitions of docs/BLURB.md ("what the reference implementations compute"):

| function | datasets | definition |
|---|---|---|
| `entity_f1` | BC5-chem, BC5-disease, NCBI-disease, BC2GM, JNLPBA | \
exact-span entity micro F1 (seqeval, default mode) |
| `typed_entity_f1` | users' typed NER tasks (`usertasks`) | \
strict IOB2 entity F1, micro over types (seqeval, mode strict); per type: `typed_entity_report` |
| `pico_token_macro_f1` | EBM PICO | word-level F1 of PAR, INT, OUT, unweighted mean |
| `micro_f1_excluding` | ChemProt, DDI | micro F1 over every label but the negative one |
| `positive_f1` | GAD | F1 of the positive class |
| `pearson` | BIOSSES | Pearson correlation |
| `hoc_abstract_micro_f1` | HoC | micro F1 over (abstract, hallmark) cells after OR-ing sentences |
| `accuracy` | PubMedQA, BioASQ | share of exact matches |

Scores are fractions in [0, 1] (Pearson in [-1, 1]); multiply by 100 to compare with the paper.

**Counts** (`COUNTS`): every metric above is a function of counts that add over its items
(sentences, rows, HoC abstracts): true/gold/predicted positives, correct answers, the sums of
Pearson's moments. `COUNTS[name] = (counts, score)`: `counts` takes the metric's arguments and
returns one row of counts per item, `score` turns summed rows into the metric. A resample of the
items scores as the sum of their rows: what the paired bootstrap (`compare`) computes thousands of
times, without re-running seqeval on every resample.
F1 with nothing to score (no gold and no predicted positives) is 0, as scikit-learn and seqeval
give with `zero_division=0`. Every function refuses gold and predictions of different lengths.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Any

import numpy as np

PICO_CLASSES = ("PAR", "INT", "OUT")


def _check(gold: Sequence, pred: Sequence, what: str = "items") -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} {what}, predictions have {len(pred)}")


def entity_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Exact-span entity-level micro F1 over all mentions of all sentences.

    This is seqeval's `f1_score` in its default (conlleval) mode, which the BLURB reference
    implementations use: an `I` after `O` (or after another type) opens a new mention, untyped
    `B`/`I` tags are one type, and a mention still open at a sentence end closes there."""
    from seqeval.metrics import f1_score

    _check(gold, pred, "sentences")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        _check(g, p, f"tags in sentence {i}")
    return float(f1_score([list(s) for s in gold], [list(s) for s in pred], zero_division=0))


def _checked_lists(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> tuple[list, list]:
    _check(gold, pred, "sentences")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        _check(g, p, f"tags in sentence {i}")
    return [list(s) for s in gold], [list(s) for s in pred]


def typed_entity_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict]:
    """Strict entity-level scores of typed IOB2 tags (`B-Chemical`, `I-Disease`, `O`): per type and
    micro-averaged over types, as seqeval's `classification_report(mode="strict", scheme=IOB2)`.

    Strict: a mention counts only when its tags are valid IOB2 (an `I-X` that does not continue a
    `B-X`/`I-X` opens nothing) and its type and both ends match a gold mention exactly. Returns
    `{type: {precision, recall, f1, support}, ..., "micro": {...}}` with every value a float or int;
    support is the number of gold mentions."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    g, p = _checked_lists(gold, pred)
    with warnings.catch_warnings():  # no gold and no predicted mention: numpy warns on the empty averages
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(g, p, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    out = {}
    for name, row in report.items():
        if name in ("macro avg", "weighted avg"):
            continue
        key = "micro" if name == "micro avg" else name
        out[key] = {"precision": float(row["precision"]), "recall": float(row["recall"]),
                    "f1": float(row["f1-score"]), "support": int(row["support"])}
    return out


def typed_entity_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Strict IOB2 entity F1, micro-averaged over all types (seqeval `f1_score`, mode strict)."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    g, p = _checked_lists(gold, pred)
    return float(f1_score(g, p, mode="strict", scheme=IOB2, average="micro", zero_division=0))


def _pico_class(tag: str) -> str:
    # `I-PAR` in the files, `B-PAR` after LinkBERT's rewrite: at word level both are PAR.
    return tag.split("-", 1)[1] if tag[:2] in ("I-", "B-") else tag


def pico_token_macro_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Mean of the word-level F1 of PAR, INT and OUT (O is not averaged); one tag list per sentence."""
    return _total("pico_token_macro_f1", gold, pred)


def micro_f1_excluding(gold: Sequence[Hashable], pred: Sequence[Hashable], negative: Hashable) -> float:
    """Micro F1 over every label except `negative` (ChemProt: `false`; DDI: `DDI-false`).

    A negative prediction is never a predicted positive, a negative gold never a gold positive;
    a positive predicted with the wrong positive label is both a false positive and a miss."""
    return _total("micro_f1_excluding", gold, pred, negative)


def positive_f1(gold: Sequence[Hashable], pred: Sequence[Hashable], positive: Hashable = "1") -> float:
    """F1 of the one positive class (GAD: `1`)."""
    return _total("positive_f1", gold, pred, positive)


def pearson(gold: Sequence[float], pred: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant (the correlation is undefined)."""
    _check(gold, pred)
    if len(gold) < 2:
        raise ValueError("Pearson correlation needs at least two pairs")
    mean_g, mean_p = math.fsum(gold) / len(gold), math.fsum(pred) / len(pred)
    dg = [g - mean_g for g in gold]
    dp = [p - mean_p for p in pred]
    norm = math.sqrt(math.fsum(x * x for x in dg)) * math.sqrt(math.fsum(y * y for y in dp))
    if norm == 0:
        return math.nan
    # Clamp: rounding can push a perfect correlation a hair past 1.
    return max(-1.0, min(1.0, math.fsum(x * y for x, y in zip(dg, dp, strict=True)) / norm))


def abstract_id(sentence_id: str) -> str:
    """The abstract of a HoC sentence id (`<PMID>_s<n>` -> `<PMID>`); other ids are kept whole."""
    head, sep, tail = sentence_id.rpartition("_s")
    return head if sep and tail.isdigit() else sentence_id


def hoc_abstract_micro_f1(gold: Sequence[Collection[Hashable]], pred: Sequence[Collection[Hashable]],
                          sentence_ids: Sequence[str]) -> float:
    """HoC micro F1: each abstract's label set is the union of its sentences' positive labels
    (gold and predicted alike); F1 is micro over all positive (abstract, label) cells.

    `gold[i]` / `pred[i]` are the positive hallmarks of sentence `sentence_ids[i]`; abstracts
    whose gold set is empty still count their predicted labels as false positives."""
    return _total("hoc_abstract_micro_f1", gold, pred, sentence_ids)


def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """Share of predictions equal to the gold label."""
    if not gold:
        raise ValueError("accuracy of zero items is undefined")
    return _total("accuracy", gold, pred)


def _total(name: str, *args: Any) -> float:
    """A metric from its items' summed counts (`COUNTS`)."""
    counts, score = COUNTS[name]
    return float(score(counts(*args).sum(axis=0)))


def _f1_of(totals: np.ndarray) -> np.ndarray:
    """F1 of summed (true, gold, predicted) positives: 2PR/(P+R) written on counts; 0 when P+R is 0
    (nothing predicted right, or nothing at all)."""
    tp, denominator = totals[..., 0], totals[..., 1] + totals[..., 2]
    return np.where(tp > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                   entities: Callable[[list[str]], set]) -> np.ndarray:
    g, p = _checked_lists(gold, pred)
    out = np.zeros((len(g), 3))
    for i, (gs, ps) in enumerate(zip(g, p, strict=True)):
        eg, ep = entities(gs), entities(ps)
        out[i] = len(eg & ep), len(eg), len(ep)
    return out


def _conlleval_entities(tags: list[str]) -> set:
    from seqeval.metrics.sequence_labeling import get_entities
    return set(get_entities(tags))


def _strict_entities(tags: list[str]) -> set:
    from seqeval.scheme import IOB2, Entities
    return {e.to_tuple() for e in Entities([tags], IOB2, suffix=False).entities[0]}


def _pico_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence, per class of PICO_CLASSES: (true, gold, predicted) words of the class."""
    g, p = _checked_lists(gold, pred)
    out = np.zeros((len(g), 3 * len(PICO_CLASSES)))
    for i, (gs, ps) in enumerate(zip(g, p, strict=True)):
        gc, pc = [_pico_class(t) for t in gs], [_pico_class(t) for t in ps]
        out[i] = [value for c in PICO_CLASSES for value in
                  (sum(a == b == c for a, b in zip(gc, pc, strict=True)), gc.count(c), pc.count(c))]
    return out


def _label_counts(gold: Sequence[Hashable], pred: Sequence[Hashable],
                  keep: Callable[[Hashable], bool]) -> np.ndarray:
    """Per row: (true, gold, predicted) positives, a positive being a label `keep` keeps."""
    _check(gold, pred)
    return np.array([(g == p and keep(g), keep(g), keep(p)) for g, p in zip(gold, pred, strict=True)],
                    dtype=float).reshape(len(gold), 3)


def _pearson_counts(gold: Sequence[float], pred: Sequence[float]) -> np.ndarray:
    # shifted by the first pair: constant predictions give exactly zero variance, and the sums stay small
    _check(gold, pred)
    g = np.asarray(gold, dtype=float) - (gold[0] if len(gold) else 0.0)
    p = np.asarray(pred, dtype=float) - (pred[0] if len(pred) else 0.0)
    return np.stack([np.ones_like(g), g, p, g * g, p * p, g * p], axis=1)


def _pearson_of(totals: np.ndarray) -> np.ndarray:
    n, sg, sp, sgg, spp, sgp = (totals[..., i] for i in range(6))
    var_g, var_p = n * sgg - sg * sg, n * spp - sp * sp
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (n * sgp - sg * sp) / np.sqrt(var_g * var_p)
    return np.where((var_g > 0) & (var_p > 0), np.clip(r, -1.0, 1.0), np.nan)


def _hoc_counts(gold: Sequence[Collection[Hashable]], pred: Sequence[Collection[Hashable]],
                sentence_ids: Sequence[str]) -> np.ndarray:
    """One row per abstract, in the order of `hoc_abstracts(sentence_ids)`."""
    _check(gold, pred)
    _check(gold, sentence_ids, "sentence ids")
    sets: dict[str, tuple[set, set]] = {}
    for g, p, sid in zip(gold, pred, sentence_ids, strict=True):
        gs, ps = sets.setdefault(abstract_id(sid), (set(), set()))
        gs.update(g)
        ps.update(p)
    return np.array([(len(g & p), len(g), len(p)) for g, p in sets.values()], dtype=float).reshape(-1, 3)


def _accuracy_counts(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> np.ndarray:
    _check(gold, pred)
    return np.array([(g == p, 1) for g, p in zip(gold, pred, strict=True)], dtype=float).reshape(-1, 2)


def _accuracy_of(totals: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals[..., 1] > 0, totals[..., 0] / totals[..., 1], np.nan)


COUNTS: dict[str, tuple[Callable[..., np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "entity_f1": (lambda gold, pred: _entity_counts(gold, pred, _conlleval_entities), _f1_of),
    "typed_entity_f1": (lambda gold, pred: _entity_counts(gold, pred, _strict_entities), _f1_of),
    "pico_token_macro_f1": (_pico_counts, lambda totals: sum(
        _f1_of(totals[..., 3 * i:3 * i + 3]) for i in range(len(PICO_CLASSES))) / len(PICO_CLASSES)),
    "micro_f1_excluding": (lambda gold, pred, negative: _label_counts(gold, pred, lambda v: v != negative),
                           _f1_of),
    "positive_f1": (lambda gold, pred, positive="1": _label_counts(gold, pred, lambda v: v == positive),
                    _f1_of),
    "pearson": (_pearson_counts, _pearson_of),
    "hoc_abstract_micro_f1": (_hoc_counts, _f1_of),
    "accuracy": (_accuracy_counts, _accuracy_of),
}


def hoc_abstracts(sentence_ids: Sequence[str]) -> list[str]:
    """The abstracts of HoC sentence ids, in order of first appearance (the rows of its counts)."""
    return list(dict.fromkeys(abstract_id(s) for s in sentence_ids))


METRICS = {
    "entity_f1": entity_f1,
    "typed_entity_f1": typed_entity_f1,
    "pico_token_macro_f1": pico_token_macro_f1,
    "micro_f1_excluding": micro_f1_excluding,
    "positive_f1": positive_f1,
    "pearson": pearson,
    "hoc_abstract_micro_f1": hoc_abstract_micro_f1,
    "accuracy": accuracy,
}

# Metrics with a per-class breakdown (evaluate writes it beside the score).
REPORTS = {"typed_entity_f1": typed_entity_report}

__all__ = [
    "COUNTS",
    "METRICS",
    "PICO_CLASSES",
    "REPORTS",
    "abstract_id",
    "accuracy",
    "entity_f1",
    "hoc_abstract_micro_f1",
    "hoc_abstracts",
    "micro_f1_excluding",
    "pearson",
    "pico_token_macro_f1",
    "positive_f1",
    "typed_entity_f1",
    "typed_entity_report",
]
