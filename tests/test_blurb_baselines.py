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


# The sanity baselines of `blurb.baselines` (the bar of the registry gate), on the same fixtures:
# each rule's constant is derived here from the train rows, its score from scikit-learn / seqeval /
# the counts, and the number must equal both what the module gives and what `pubmedlm evaluate
# --predictions` gives for a file predicting that constant on every row.

FIXTURE_TASKS = ("NCBI-disease", "EBM-PICO", "ChemProt", "DDI", "GAD", "BIOSSES", "HoC", "PubMedQA")


def _split(task: str, split: str) -> list[dict]:
    path = FIXTURES / "blurb_data" / task / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _sanity(task: str, ids: dict | None = None) -> dict:
    from pubmedlm.blurb import baselines, tasks

    return baselines.from_gold(FIXTURES / "blurb_data", tasks.get(task), ids or {"dev": None, "test": None})


def _reference(task: str, split: str) -> tuple[object, float]:
    """(the constant, its score in percent) computed without the package, from the JSON lines."""
    from seqeval.metrics import f1_score as seqeval_f1
    from sklearn.metrics import accuracy_score, f1_score

    from pubmedlm.blurb import tasks

    train, rows = _split(task, "train"), _split(task, split)
    if task in ("NCBI-disease", "EBM-PICO"):
        gold = [r["tags"] for r in rows]
        if task == "NCBI-disease":
            return "O", 100 * seqeval_f1(gold, [["O"] * len(t) for t in gold], zero_division=0)
        flat = [t for s in gold for t in s]
        return "O", 100 * f1_score(flat, ["O"] * len(flat), labels=["I-PAR", "I-INT", "I-OUT"],
                                   average="macro", zero_division=0)
    if task == "BIOSSES":
        return sum(r["score"] for r in train) / len(train), 0.0
    if task == "HoC":
        docs: dict[str, set] = {}
        for r in rows:
            docs.setdefault(r["id"].split("_s")[0], set()).update(r["labels"])
        cells = sum(map(len, docs.values()))
        return list(range(10)), 100 * 2 * cells / (cells + 10 * len(docs))
    gold = [r["label"] for r in rows]
    order = tasks.get(task).labels  # ties: the first label of the task table (data, not the code tested)
    negative = {"ChemProt": "false", "DDI": "DDI-false", "GAD": "0"}.get(task)
    counts = Counter(r["label"] for r in train if r["label"] != negative)
    value = sorted(counts, key=lambda label: (-counts[label], order.index(label)))[0]
    if negative is None:  # accuracy: the train majority
        return value, 100 * accuracy_score(gold, [value] * len(gold))
    positives = sorted({*gold, value} - {negative})
    return value, 100 * f1_score(gold, [value] * len(gold), labels=positives, average="micro",
                                 zero_division=0)


@pytest.mark.parametrize("task", FIXTURE_TASKS)
def test_sanity_baseline_is_the_reference_score_of_its_constant(task: str) -> None:
    got = _sanity(task)
    for split in ("dev", "test"):
        value, expected = _reference(task, split)
        assert got["prediction"] == pytest.approx(value) if task == "BIOSSES" else got["prediction"] == value
        assert got[split] == pytest.approx(expected, abs=1e-9), (task, split, got["rule"])
        assert got["rows"][split] == len(_split(task, split))
    if task == "GAD":
        assert got["prediction"] == "1" and "all-positive" in got["rule"]
    if task in ("GAD", "HoC", "ChemProt", "DDI", "PubMedQA"):  # a real bar, not a zero
        assert got["dev"] > 0 or got["test"] > 0


@pytest.mark.parametrize("task", FIXTURE_TASKS)
def test_sanity_baseline_equals_scoring_a_prediction_file_of_it(task: str, tmp_path) -> None:
    from pubmedlm.blurb import baselines, predictions, tasks

    t = tasks.get(task)
    got = _sanity(task)
    for split in ("dev", "test"):
        rows = _split(task, split)
        value, _ = baselines.constant(t, _split(task, "train"))
        folder = tmp_path / split
        predictions.write_predictions(folder / f"{task}.jsonl", rows, baselines.predictions(t, value, rows))
        result = predictions.score_predictions(FIXTURES / "blurb_data", folder, split)
        scored = result["datasets"][task]["score"]
        assert (0.0 if scored is None else scored) == pytest.approx(got[split], abs=1e-12)


def test_sanity_baseline_on_the_rows_a_model_was_scored_on() -> None:
    rows = _split("GAD", "dev")
    kept = [r for r in rows if r["label"] == "1"][:3] + [r for r in rows if r["label"] == "0"][:1]
    got = _sanity("GAD", {"dev": [r["id"] for r in kept], "test": None})
    assert got["rows"]["dev"] == 4
    assert got["dev"] == pytest.approx(100 * 2 * 3 / (3 + 4))  # P = 3 of n = 4, all predicted positive
    with pytest.raises(ValueError, match="not in the gold split"):
        _sanity("GAD", {"dev": ["no-such-id"]})


def test_ties_go_to_the_first_label_of_the_task_table() -> None:
    from pubmedlm.blurb import baselines, tasks

    train = [{"label": "no"}, {"label": "yes"}, {"label": "maybe"}, {"label": "no"}, {"label": "yes"}]
    assert baselines.constant(tasks.get("PubMedQA"), train)[0] == "yes"  # yes/no tie: yes is listed first
    assert baselines.constant(tasks.get("PubMedQA"), train[:4])[0] == "no"
