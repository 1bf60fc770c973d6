"""Sanity baselines on real BLURB rows: trivial predictions give exactly computed scores.

The rows are the committed fixtures (tests/fixtures/blurb_data, every split: hermetic). Expected
values are counted here straight from the JSON lines, not through the package's readers."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from conftest import FIXTURES
from pubmedlm.blurb import metrics


def _rows(task: str) -> list[dict]:
    folder = FIXTURES / "blurb_data" / task
    return [json.loads(line) for split in ("train", "dev", "test")
            for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_all_o_ner_scores_zero() -> None:
    gold = [r["tags"] for r in _rows("NCBI-disease")]
    assert sum(tag == "B" for s in gold for tag in s) > 50
    assert metrics.entity_f1(gold, [["O"] * len(s) for s in gold]) == 0.0
    assert metrics.entity_f1(gold, gold) == 1.0


def test_all_o_pico_scores_zero() -> None:
    gold = [r["tags"] for r in _rows("EBM-PICO")]
    assert {t for s in gold for t in s} == {"O", "I-PAR", "I-INT", "I-OUT"}
    assert metrics.pico_token_macro_f1(gold, [["O"] * len(s) for s in gold]) == 0.0
    assert metrics.pico_token_macro_f1(gold, gold) == 1.0


@pytest.mark.parametrize("name, negative", [("ChemProt", "false"), ("DDI", "DDI-false")])
def test_all_negative_relation_extraction_scores_zero(name: str, negative: str) -> None:
    labels = [r["label"] for r in _rows(name)]
    assert negative in labels and len(set(labels)) > 2
    assert metrics.micro_f1_excluding(labels, [negative] * len(labels), negative) == 0.0
    assert metrics.micro_f1_excluding(labels, labels, negative) == 1.0
    # Everything predicted as one positive class: tp = its gold count; F1 = 2 tp / (gold positives + n).
    positive = next(label for label in labels if label != negative)
    tp, gold_positives = labels.count(positive), sum(label != negative for label in labels)
    expected = 2 * tp / (gold_positives + len(labels))
    got = metrics.micro_f1_excluding(labels, [positive] * len(labels), negative)
    assert got == pytest.approx(expected, abs=1e-15)


def test_all_positive_gad_gives_the_positive_share_formula() -> None:
    test = [r["label"] for r in _rows("GAD")]
    positives = test.count("1")
    assert 0 < positives < len(test)
    # Every item predicted positive: precision = positives / n, recall 1 -> 2P / (P + n).
    expected = 2 * positives / (positives + len(test))
    assert metrics.positive_f1(test, ["1"] * len(test)) == pytest.approx(expected, abs=1e-15)
    assert metrics.positive_f1(test, ["0"] * len(test)) == 0.0


def test_constant_pubmedqa_answer_accuracy_is_that_answer_share() -> None:
    gold = [r["label"] for r in _rows("PubMedQA")]
    counts = Counter(gold)
    assert set(counts) == {"yes", "no", "maybe"}
    for answer, n in counts.items():
        assert metrics.accuracy(gold, [answer] * len(gold)) == n / len(gold)


def test_hoc_empty_and_all_positive_predictions() -> None:
    rows = _rows("HoC")
    abstracts: dict[str, set[int]] = {}
    for r in rows:
        abstracts.setdefault(r["id"].split("_s")[0], set()).update(r["labels"])
    gold_cells = sum(map(len, abstracts.values()))
    assert 0 < gold_cells < 10 * len(abstracts)
    gold = [frozenset(r["labels"]) for r in rows]
    ids = [r["id"] for r in rows]
    assert metrics.hoc_abstract_micro_f1(gold, [frozenset()] * len(gold), ids) == 0.0
    everything = [frozenset(range(10))] * len(gold)
    expected = 2 * gold_cells / (gold_cells + 10 * len(abstracts))
    assert metrics.hoc_abstract_micro_f1(gold, everything, ids) == pytest.approx(expected, abs=1e-15)


def test_constant_biosses_prediction_has_no_correlation() -> None:
    gold = [r["score"] for r in _rows("BIOSSES")]
    assert len(set(gold)) > 5
    assert math.isnan(metrics.pearson(gold, [sum(gold) / len(gold)] * len(gold)))
