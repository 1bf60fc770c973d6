"""Sanity baselines on the real BLURB test files: trivial predictions give exactly computed scores.

Expected values are counted straight from the files here, not through the package's readers."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from pubmedlm.blurb import metrics
from pubmedlm.blurb.readers import NER_DATASETS, available, gold_labels, instances


def _data_lines(path: Path, header: bool) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1 if header else 0:]
    return [line.split("\t") for line in lines if line]


def test_all_o_ner_scores_zero(mirror: Path) -> None:
    # Every NER test set the mirror holds (BC2GM is kept back from some mirrors).
    names = [n for n in NER_DATASETS if available(n, "test", mirror)]
    assert {"BC5CDR-chem", "BC5CDR-disease", "NCBI-disease", "JNLPBA"} <= set(names)
    for name in names:
        gold = gold_labels(name, "test", mirror)
        mentions = sum(tag.startswith("B") for s in gold for tag in s)
        assert mentions > 0
        assert metrics.entity_f1(gold, [["O"] * len(s) for s in gold]) == 0.0, name
        assert metrics.entity_f1(gold, gold) == 1.0, name


def test_all_o_pico_scores_zero(mirror: Path) -> None:
    gold = gold_labels("ebmnlp", "test", mirror)
    assert metrics.pico_token_macro_f1(gold, [["O"] * len(s) for s in gold]) == 0.0
    assert metrics.pico_token_macro_f1(gold, gold) == 1.0


@pytest.mark.parametrize("name, split, negative, size", [
    ("chemprot", "dev", "false", 11_268), ("DDI", "test", "DDI-false", 5_716)])
def test_majority_class_relation_extraction_scores_zero(name, split, negative, size, mirror: Path) -> None:
    labels = [row[2] for row in _data_lines(mirror / "blurb" / name / f"{split}.tsv", header=False)]
    assert len(labels) == size and Counter(labels).most_common(1)[0][0] == negative
    assert metrics.micro_f1_excluding(labels, [negative] * size, negative) == 0.0
    assert metrics.micro_f1_excluding(labels, labels, negative) == 1.0


def test_majority_class_gad_gives_the_positive_share_formula(mirror: Path) -> None:
    train = Counter(row[2] for row in _data_lines(mirror / "blurb/GAD/train.tsv", header=True))
    majority = train.most_common(1)[0][0]
    assert (majority, train["1"], sum(train.values())) == ("1", 2_227, 4_261)
    test = [row[2] for row in _data_lines(mirror / "blurb/GAD/test.tsv", header=True)]
    positives = test.count("1")
    # Every test item predicted positive: precision = positives / n, recall 1 -> 2P / (P + n).
    expected = 2 * positives / (positives + len(test))
    assert metrics.positive_f1(test, [majority] * len(test)) == pytest.approx(expected, abs=1e-15)


def test_majority_answer_pubmedqa_accuracy_is_the_majority_share(mirror: Path) -> None:
    truth = json.loads((mirror / "blurb/pubmedqa/test_ground_truth.json").read_text(encoding="utf-8"))
    counts = Counter(truth.values())
    majority, n_majority = counts.most_common(1)[0]
    assert len(truth) == 500
    gold = gold_labels("pubmedqa", "test", mirror)
    assert Counter(gold) == counts
    assert metrics.accuracy(gold, [majority] * len(gold)) == n_majority / 500


def test_hoc_empty_and_all_positive_predictions(mirror: Path) -> None:
    rows = _data_lines(mirror / "blurb/HoC/test.tsv", header=True)
    abstracts: dict[str, set[str]] = {}
    for labels, _sentence, index in rows:
        abstracts.setdefault(index.split("_s")[0], set()).update(c for c in labels.split(",") if c.endswith("_1"))
    gold_cells = sum(map(len, abstracts.values()))
    gold = gold_labels("HoC", "test", mirror)
    ids = [inst.id for inst in instances("HoC", "test", mirror)]
    assert metrics.hoc_abstract_micro_f1(gold, [frozenset()] * len(gold), ids) == 0.0
    everything = [frozenset(range(10))] * len(gold)
    expected = 2 * gold_cells / (gold_cells + 10 * len(abstracts))
    assert metrics.hoc_abstract_micro_f1(gold, everything, ids) == pytest.approx(expected, abs=1e-15)


def test_constant_biosses_prediction_has_no_correlation(mirror: Path) -> None:
    gold = gold_labels("BIOSSES", "test", mirror)
    assert len(gold) == 20
    assert math.isnan(metrics.pearson(gold, [sum(gold) / len(gold)] * len(gold)))
