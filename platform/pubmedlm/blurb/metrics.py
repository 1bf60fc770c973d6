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
F1 with nothing to score (no gold and no predicted positives) is 0, as scikit-learn and seqeval
give with `zero_division=0`. Every function refuses gold and predictions of different lengths.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Hashable, Sequence

PICO_CLASSES = ("PAR", "INT", "OUT")


def _check(gold: Sequence, pred: Sequence, what: str = "items") -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} {what}, predictions have {len(pred)}")


def _f1(true_positives: int, gold_positives: int, predicted_positives: int) -> float:
    # 2PR/(P+R) written on counts; 0 when P+R is 0 (nothing predicted right, or nothing at all).
    denominator = gold_positives + predicted_positives
    return 2 * true_positives / denominator if true_positives else 0.0


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
    _check(gold, pred, "sentences")
    counts = {c: [0, 0, 0] for c in PICO_CLASSES}  # class -> [true pos, gold pos, predicted pos]
    for i, (g_sentence, p_sentence) in enumerate(zip(gold, pred, strict=True)):
        _check(g_sentence, p_sentence, f"tags in sentence {i}")
        for g_tag, p_tag in zip(g_sentence, p_sentence, strict=True):
            g, p = _pico_class(g_tag), _pico_class(p_tag)
            if g in counts:
                counts[g][1] += 1
            if p in counts:
                counts[p][2] += 1
                counts[p][0] += g == p
    return sum(_f1(*counts[c]) for c in PICO_CLASSES) / len(PICO_CLASSES)


def micro_f1_excluding(gold: Sequence[Hashable], pred: Sequence[Hashable], negative: Hashable) -> float:
    """Micro F1 over every label except `negative` (ChemProt: `false`; DDI: `DDI-false`).

    A negative prediction is never a predicted positive, a negative gold never a gold positive;
    a positive predicted with the wrong positive label is both a false positive and a miss."""
    _check(gold, pred)
    true_positives = sum(g == p != negative for g, p in zip(gold, pred, strict=True))
    gold_positives = sum(g != negative for g in gold)
    predicted_positives = sum(p != negative for p in pred)
    return _f1(true_positives, gold_positives, predicted_positives)


def positive_f1(gold: Sequence[Hashable], pred: Sequence[Hashable], positive: Hashable = "1") -> float:
    """F1 of the one positive class (GAD: `1`)."""
    _check(gold, pred)
    true_positives = sum(g == p == positive for g, p in zip(gold, pred, strict=True))
    return _f1(true_positives, sum(g == positive for g in gold), sum(p == positive for p in pred))


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
    _check(gold, pred)
    _check(gold, sentence_ids, "sentence ids")
    gold_sets: dict[str, set] = {}
    pred_sets: dict[str, set] = {}
    for g, p, sid in zip(gold, pred, sentence_ids, strict=True):
        doc = abstract_id(sid)
        gold_sets.setdefault(doc, set()).update(g)
        pred_sets.setdefault(doc, set()).update(p)
    true_positives = sum(len(gold_sets[d] & pred_sets[d]) for d in gold_sets)
    return _f1(true_positives, sum(map(len, gold_sets.values())), sum(map(len, pred_sets.values())))


def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """Share of predictions equal to the gold label."""
    _check(gold, pred)
    if not gold:
        raise ValueError("accuracy of zero items is undefined")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


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
    "METRICS",
    "PICO_CLASSES",
    "REPORTS",
    "abstract_id",
    "accuracy",
    "entity_f1",
    "hoc_abstract_micro_f1",
    "micro_f1_excluding",
    "pearson",
    "pico_token_macro_f1",
    "positive_f1",
    "typed_entity_f1",
    "typed_entity_report",
]
