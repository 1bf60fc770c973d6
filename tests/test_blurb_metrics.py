"""BLURB metrics against hand-computed values and against seqeval / scikit-learn / scipy.

`entity_f1` calls seqeval (that is its definition), so its checks use hand-computed values and
an independent span extractor written here; the other metrics are computed in the package and
checked against the libraries on golden inputs and on real BLURB rows (gold vs a perturbed copy;
the committed fixtures, tests/fixtures/blurb_data: hermetic)."""

from __future__ import annotations

import math
import random

import pytest
from scipy.stats import pearsonr
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import accuracy_score, f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from conftest import fixture_rows
from pubmedlm.blurb import metrics


def _rows(task: str) -> list[dict]:
    """Every fixture row of a dataset (train, dev and test: all real rows, more cases than one split)."""
    return [r for split in ("train", "dev", "test") for r in fixture_rows(task, split)]

# ---- entity_f1 -------------------------------------------------------------------------------


@pytest.mark.parametrize("gold, pred, expected", [
    # One of two gold mentions found, nothing spurious: P 1, R 1/2.
    ([["B", "I", "O", "B"]], [["B", "I", "O", "O"]], 2 / 3),
    # No predicted entities at all.
    ([["B", "I", "O", "B"]], [["O", "O", "O", "O"]], 0.0),
    # A mention at a sentence's end closes there; the next sentence's leading I opens a new one.
    ([["O", "B"], ["I", "O"]], [["O", "B"], ["B", "O"]], 1.0),
    # I without B opens a mention (conlleval / seqeval default mode)...
    ([["O", "B", "I", "O"]], [["O", "I", "I", "O"]], 1.0),
    # ...so an I inside a gold mention gives a wrong span: P 0 of 1.
    ([["O", "B", "I", "O"]], [["O", "O", "I", "O"]], 0.0),
    # Wrong end: exact spans only. Gold 2 mentions, pred 2, 1 right.
    ([["B", "I", "I", "O", "B"]], [["B", "I", "O", "O", "B"]], 0.5),
    # Types must agree when tags are typed.
    ([["B-PER", "O", "B-LOC"]], [["B-LOC", "O", "B-LOC"]], 0.5),
    # B directly after B splits mentions.
    ([["B", "B", "O"]], [["B", "I", "O"]], 0.0),
])
def test_entity_f1_hand_computed(gold, pred, expected) -> None:
    assert metrics.entity_f1(gold, pred) == pytest.approx(expected)


def _strict_spans(sentences: list[list[str]]) -> set[tuple[int, int, int]]:
    """(sentence, start, end) of each mention of valid untyped IOB2 tags (B then I*)."""
    spans = set()
    for s, tags in enumerate(sentences):
        start = None
        for i, tag in enumerate([*tags, "O"]):
            if start is not None and tag != "I":
                spans.add((s, start, i))
                start = None
            if tag == "B":
                start = i
    return spans


def _perturb_iob2(sentences: list[list[str]], rng: random.Random) -> list[list[str]]:
    """Valid IOB2 predictions: drop, split, shorten and invent mentions (every I follows B or I)."""

    def blank_from(tags: list[str], j: int) -> None:
        tags[j] = "O"
        while j + 1 < len(tags) and tags[j + 1] == "I":
            j += 1
            tags[j] = "O"

    out = []
    for gold_tags in sentences:
        tags = list(gold_tags)
        for i, tag in enumerate(tags):
            r = rng.random()
            if tag == "B" and r < 0.1:
                blank_from(tags, i)  # drop the mention
            elif tag == "I" and r < 0.05:
                tags[i] = "B"  # split the mention in two
            elif tag == "I" and r < 0.1:
                blank_from(tags, i)  # cut the mention short
            elif tag == "O" and r < 0.02:
                tags[i] = "B"  # invent a one-word mention
        out.append(tags)
    return out


def test_entity_f1_on_real_rows_matches_independent_count() -> None:
    gold = [r["tags"] for r in _rows("NCBI-disease")]
    pred = _perturb_iob2(gold, random.Random(0))
    g, p = _strict_spans(gold), _strict_spans(pred)
    expected = 2 * len(g & p) / (len(g) + len(p))
    assert 0.5 < expected < 1.0
    assert metrics.entity_f1(gold, pred) == pytest.approx(expected, abs=1e-12)
    assert metrics.entity_f1(gold, gold) == 1.0


def test_entity_f1_refuses_ragged_inputs() -> None:
    with pytest.raises(ValueError, match="sentence 0"):
        metrics.entity_f1([["B", "O"]], [["B"]])
    with pytest.raises(ValueError):
        metrics.entity_f1([["B"]], [])


def test_entity_f1_is_seqeval_default_mode_on_messy_tags() -> None:
    rng = random.Random(1)
    gold = [[rng.choice("BIO") for _ in range(rng.randint(1, 12))] for _ in range(200)]
    pred = [[rng.choice("BIO") for _ in s] for s in gold]
    assert metrics.entity_f1(gold, pred) == pytest.approx(seqeval_f1(gold, pred))


@pytest.mark.parametrize("name, tags", [("entity_f1", ["B", "I", "O"]),
                                        ("typed_entity_f1", ["B-Chem", "I-Chem", "B-Dis", "I-Dis", "O"])])
def test_entity_counts_sum_to_seqeval_on_messy_tags_and_resamples(name: str, tags: list[str]) -> None:
    """The bootstrap's per-sentence counts (metrics.COUNTS) give seqeval's F1 on any multiset of
    sentences: the whole set and resamples with repeats, on tags that are not valid IOB2."""
    rng = random.Random(2)
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(150)]
    pred = [[rng.choice(tags) if rng.random() < 0.4 else t for t in s] for s in gold]
    counts, score = metrics.COUNTS[name]
    rows = counts(gold, pred)
    for draw in [range(len(gold))] + [[rng.randrange(len(gold)) for _ in gold] for _ in range(5)]:
        weights = [0] * len(gold)
        for i in draw:
            weights[i] += 1
        expected = metrics.METRICS[name]([gold[i] for i in draw], [pred[i] for i in draw])
        assert 0.1 < expected < 0.9
        assert float(score(sum(w * row for w, row in zip(weights, rows, strict=True)))) == pytest.approx(
            expected, abs=1e-12)


# ---- pico_token_macro_f1 ---------------------------------------------------------------------


def test_pico_hand_computed() -> None:
    gold = [["I-PAR", "I-PAR", "O", "I-INT"], ["I-OUT", "O"]]
    pred = [["I-PAR", "O", "I-INT", "I-INT"], ["I-PAR", "O"]]
    # PAR: tp 1, gold 2, pred 2 -> 0.5; INT: tp 1, gold 1, pred 2 -> 2/3; OUT: tp 0 -> 0.
    assert metrics.pico_token_macro_f1(gold, pred) == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    # B- and I- prefixes name the same class at word level.
    b_pred = [[t.replace("I-", "B-") for t in s] for s in pred]
    assert metrics.pico_token_macro_f1(gold, b_pred) == metrics.pico_token_macro_f1(gold, pred)


def test_pico_absent_class_scores_zero_like_sklearn() -> None:
    gold, pred = [["I-PAR", "O"]], [["I-PAR", "O"]]
    assert metrics.pico_token_macro_f1(gold, pred) == pytest.approx(1 / 3)
    ref = f1_score(["PAR", "O"], ["PAR", "O"], labels=list(metrics.PICO_CLASSES), average="macro",
                   zero_division=0)
    assert ref == pytest.approx(1 / 3)


def test_pico_on_real_rows_matches_sklearn() -> None:
    gold = [r["tags"] for r in _rows("EBM-PICO")]
    rng = random.Random(2)
    choices = ["O", "I-PAR", "I-INT", "I-OUT"]
    pred = [[rng.choice(choices) if rng.random() < 0.2 else t for t in s] for s in gold]
    flat = lambda seqs: [t.split("-")[-1] for s in seqs for t in s]  # noqa: E731
    ref = f1_score(flat(gold), flat(pred), labels=list(metrics.PICO_CLASSES), average="macro",
                   zero_division=0)
    assert metrics.pico_token_macro_f1(gold, pred) == pytest.approx(ref, abs=1e-12)


# ---- micro_f1_excluding, positive_f1 --------------------------------------------------------


def test_micro_f1_excluding_hand_computed() -> None:
    gold = ["CPR:3", "CPR:4", "false", "false", "CPR:9"]
    pred = ["CPR:3", "CPR:3", "CPR:4", "false", "false"]
    # tp 1 (CPR:3); gold positives 3; predicted positives 3 -> F1 1/3.
    assert metrics.micro_f1_excluding(gold, pred, "false") == pytest.approx(1 / 3)
    assert metrics.micro_f1_excluding(gold, ["false"] * 5, "false") == 0.0
    assert metrics.micro_f1_excluding(["false"] * 3, ["false"] * 3, "false") == 0.0


@pytest.mark.parametrize("name, negative", [("ChemProt", "false"), ("DDI", "DDI-false")])
def test_micro_f1_excluding_on_real_rows_matches_sklearn(name: str, negative: str) -> None:
    gold = [r["label"] for r in _rows(name)]
    labels = sorted(set(gold))
    rng = random.Random(3)
    pred = [rng.choice(labels) if rng.random() < 0.3 else g for g in gold]
    positives = [label for label in labels if label != negative]
    ref = f1_score(gold, pred, labels=positives, average="micro")
    assert metrics.micro_f1_excluding(gold, pred, negative) == pytest.approx(ref, abs=1e-12)


def test_positive_f1_on_gad_matches_sklearn() -> None:
    gold = [r["label"] for r in _rows("GAD")]
    rng = random.Random(4)
    pred = [("0" if g == "1" else "1") if rng.random() < 0.25 else g for g in gold]
    assert metrics.positive_f1(gold, pred) == pytest.approx(f1_score(gold, pred, pos_label="1"), abs=1e-12)
    # Hand: tp 1, gold positives 2, predicted positives 1 -> 2/3.
    assert metrics.positive_f1(["1", "1", "0"], ["1", "0", "0"]) == pytest.approx(2 / 3)
    assert metrics.positive_f1(["1", "0"], ["0", "0"]) == 0.0


# ---- pearson ---------------------------------------------------------------------------------


def test_pearson_matches_scipy() -> None:
    gold = [r["score"] for r in _rows("BIOSSES")]
    rng = random.Random(5)
    pred = [g + rng.gauss(0, 1) for g in gold]
    assert metrics.pearson(gold, pred) == pytest.approx(pearsonr(gold, pred)[0], abs=1e-12)
    assert metrics.pearson(gold, gold) == pytest.approx(1.0)
    assert metrics.pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert metrics.pearson([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)


def test_pearson_of_a_constant_is_nan() -> None:
    assert math.isnan(metrics.pearson([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))
    with pytest.raises(ValueError):
        metrics.pearson([1.0], [1.0])


# ---- hoc_abstract_micro_f1 -------------------------------------------------------------------


def test_hoc_hand_computed_with_empty_abstracts() -> None:
    ids = ["1_s0", "1_s1", "2_s0", "3_s0", "3_s1"]
    gold = [{1}, {3}, set(), set(), set()]  # abstract 1 {1, 3}; abstracts 2 and 3 empty
    pred = [{1}, set(), {5}, set(), set()]  # abstract 1 {1}; abstract 2 {5}; abstract 3 empty
    # cells: tp 1 (1,1); gold 2; predicted 2 -> F1 0.5. The empty abstract 3 adds nothing.
    assert metrics.hoc_abstract_micro_f1(gold, pred, ids) == pytest.approx(0.5)
    assert metrics.hoc_abstract_micro_f1([set(), set()], [set(), set()], ["1_s0", "2_s0"]) == 0.0


def test_hoc_on_real_rows_matches_sklearn() -> None:
    rows = _rows("HoC")
    gold = [frozenset(r["labels"]) for r in rows]
    ids = [r["id"] for r in rows]
    rng = random.Random(6)
    pred = [frozenset(k for k in range(10) if (k in g) != (rng.random() < 0.05)) for g in gold]
    docs = sorted({i.split("_s")[0] for i in ids})
    assert len(docs) == len({r["doc_id"] for r in rows}) > 5 and len(ids) > 2 * len(docs)

    def per_abstract(sets):
        out = {d: set() for d in docs}
        for sid, labels in zip(ids, sets, strict=True):
            out[sid.split("_s")[0]] |= labels
        return [out[d] for d in docs]

    binarizer = MultiLabelBinarizer(classes=list(range(10)))
    y_true, y_pred = binarizer.fit_transform(per_abstract(gold)), binarizer.transform(per_abstract(pred))
    ref = f1_score(y_true, y_pred, average="micro")
    assert metrics.hoc_abstract_micro_f1(gold, pred, ids) == pytest.approx(ref, abs=1e-12)


def test_abstract_id() -> None:
    assert metrics.abstract_id("20839428_s12") == "20839428"
    assert metrics.abstract_id("20839428") == "20839428"


# ---- accuracy --------------------------------------------------------------------------------


def test_accuracy_matches_sklearn() -> None:
    gold = [r["label"] for r in _rows("PubMedQA")]
    rng = random.Random(7)
    pred = [rng.choice(["yes", "no", "maybe"]) if rng.random() < 0.4 else g for g in gold]
    assert metrics.accuracy(gold, pred) == pytest.approx(accuracy_score(gold, pred), abs=1e-12)
    assert metrics.accuracy(["yes", "no", "maybe", "yes"], ["yes", "no", "no", "no"]) == 0.5
    with pytest.raises(ValueError):
        metrics.accuracy([], [])


def test_registry_names() -> None:
    assert set(metrics.METRICS) == {
        "entity_f1", "pico_token_macro_f1", "micro_f1_excluding", "positive_f1", "pearson",
        "hoc_abstract_micro_f1", "accuracy", "typed_entity_f1"}  # the last: users' typed NER tasks
