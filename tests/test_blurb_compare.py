"""The BLURB weights used by `pubmedlm compare` and the BLURB score, Welch's interval, the BLURB row
of `compare`, and the paired bootstrap with the committed fixtures as gold. Hermetic.

BLURB (Gu et al.) is a macro average: each task type present weighs equally, and a type's weight
is shared equally by its datasets. So with all 13 datasets a NER dataset weighs 1/6 x 1/5, a QA
dataset 1/6 x 1/2, and EBM PICO, BIOSSES and HoC 1/6 each."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, fixture_rows
from pubmedlm.blurb.compare import RunResults, blurb_weights, compare, paired_bootstrap, welch
from pubmedlm.blurb.published import published
from pubmedlm.blurb.score import DATASETS, blurb_score

NER = ("BC5-chem", "BC5-disease", "NCBI-disease", "BC2GM", "JNLPBA")
PAPER_WEIGHTS = {
    **dict.fromkeys(NER, F(1, 30)),
    "EBM PICO": F(1, 6), **dict.fromkeys(("ChemProt", "DDI", "GAD"), F(1, 18)), "BIOSSES": F(1, 6),
    "HoC": F(1, 6), "PubMedQA": F(1, 12), "BioASQ": F(1, 12),
}


def test_full_benchmark_weights_are_the_papers_and_sum_to_one() -> None:
    assert set(PAPER_WEIGHTS) == set(DATASETS) and sum(PAPER_WEIGHTS.values()) == 1
    weights = blurb_weights(list(DATASETS))
    assert weights == pytest.approx({k: float(v) for k, v in PAPER_WEIGHTS.items()}, abs=1e-15)
    assert math.fsum(weights.values()) == pytest.approx(1.0, abs=1e-15)


# (per-dataset scores, each dataset's weight, the BLURB score: all worked out by hand)
SMALL = [
    # NER (90 + 80) / 2 = 85, RE 70, HoC 60 -> (85 + 70 + 60) / 3
    ({"BC5-chem": 90.0, "NCBI-disease": 80.0, "GAD": 70.0, "HoC": 60.0},
     {"BC5-chem": F(1, 6), "NCBI-disease": F(1, 6), "GAD": F(1, 3), "HoC": F(1, 3)}, 215 / 3),
    # NER (93.33 + 85.62) / 2 = 89.475, RE (77.24 + 82.36 + 82.34) / 3 = 80.64667, BIOSSES 92.30, QA 55.84
    ({"BC5-chem": 93.33, "BC5-disease": 85.62, "ChemProt": 77.24, "DDI": 82.36, "GAD": 82.34,
      "BIOSSES": 92.30, "PubMedQA": 55.84},
     {"BC5-chem": F(1, 8), "BC5-disease": F(1, 8), "ChemProt": F(1, 12), "DDI": F(1, 12),
      "GAD": F(1, 12), "BIOSSES": F(1, 4), "PubMedQA": F(1, 4)}, (89.475 + 241.94 / 3 + 92.30 + 55.84) / 4),
    # one dataset is the whole score
    ({"HoC": 60.0}, {"HoC": F(1)}, 60.0),
    # dataset ids and data-folder names name the same datasets; weights keep the names given
    ({"BC5CDR-chem": 90.0, "ebmnlp": 70.0, "chemprot": 50.0},
     {"BC5CDR-chem": F(1, 3), "ebmnlp": F(1, 3), "chemprot": F(1, 3)}, 70.0),
    # five NER datasets against one PICO: the type, not the dataset count, carries the weight
    ({**dict.fromkeys(NER, 80.0), "EBM-PICO": 40.0},
     {**dict.fromkeys(NER, F(1, 10)), "EBM-PICO": F(1, 2)}, 60.0),
]


@pytest.mark.parametrize(("scores", "expected", "blurb"), SMALL,
                         ids=["4-types", "paper-subset", "one", "aliases", "ner-vs-pico"])
def test_weights_reproduce_the_hand_computed_macro_average(scores: dict, expected: dict,
                                                           blurb: float) -> None:
    weights = blurb_weights(list(scores))
    assert sum(expected.values()) == 1
    assert weights == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-15)
    weighted = math.fsum(weights[k] * v for k, v in scores.items())
    assert weighted == pytest.approx(blurb, abs=1e-12)
    assert blurb_score(scores).value == pytest.approx(blurb, abs=1e-12)


@pytest.mark.parametrize("model", ["PubMedBERT", "BioLinkBERT-base"])
def test_weights_reproduce_the_published_blurb_score(model: str) -> None:
    table = published()
    scores = table.scores[model]
    weights = blurb_weights(list(scores))
    assert round(math.fsum(weights[k] * v for k, v in scores.items()), 2) == table.blurb[model]


def test_welch_against_the_textbook_formula() -> None:
    from scipy import stats

    a, b = [85.1, 86.0, 84.7, 85.5, 85.9], [84.2, 84.9, 85.3, 83.8, 84.6]
    va, vb = stats.tvar(a) / len(a), stats.tvar(b) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    w = welch(a, b)
    d = sum(a) / 5 - sum(b) / 5
    assert w["diff"] == pytest.approx(d)
    assert w["low"] == pytest.approx(d - half) and w["high"] == pytest.approx(d + half)
    assert welch([85.0], b) is None  # one seed: no interval
    assert welch([85.0, 85.0], [84.0, 84.0]) == {"diff": 1.0, "low": 1.0, "high": 1.0, "p": 0.0}


def _run(name: str, seeds: dict[str, list[float]]) -> RunResults:
    results = {t: {"seeds": [{"test_score": s} for s in v]} for t, v in seeds.items()}
    return RunResults(name, Path(name), results)


def test_compare_blurb_row_is_the_blurb_score_of_each_side() -> None:
    a = _run("a", {"BC5-chem": [90.0, 92.0], "NCBI-disease": [80.0, 81.0, 82.0], "GAD": [70.0, 74.0],
                   "HoC": [60.0, 61.0], "BIOSSES": [88.0, 89.0]})
    b = _run("b", {"BC5-chem": [89.0, 90.0], "NCBI-disease": [79.0, 80.0], "GAD": [72.0, 73.0],
                   "HoC": [55.0, 58.0]})
    out = compare(a, b)
    means = {side: {t: sum(run.seeds(t)) / len(run.seeds(t)) for t in b.results} for side, run in
             (("a", a), ("b", b))}
    row = out["blurb"]
    assert row["datasets"] == 4 and out["not_shared"] == ["BIOSSES"]
    assert row["a_mean"] == pytest.approx(blurb_score(means["a"]).value, abs=1e-12)
    assert row["b_mean"] == pytest.approx(blurb_score(means["b"]).value, abs=1e-12)
    assert row["diff"] == pytest.approx(row["a_mean"] - row["b_mean"], abs=1e-12)
    # a normal interval from the datasets' variances of the mean, weighted as in BLURB: NER 1/6 each,
    # RE 1/3, HoC 1/3
    w = {"BC5-chem": 1 / 6, "NCBI-disease": 1 / 6, "GAD": 1 / 3, "HoC": 1 / 3}
    var = sum(w[r["dataset"]] ** 2 * (r["a_std"] ** 2 / r["a_n"] + r["b_std"] ** 2 / r["b_n"])
              for r in out["rows"])
    assert row["low"] == pytest.approx(row["diff"] - 1.959964 * math.sqrt(var))
    assert row["high"] == pytest.approx(row["diff"] + 1.959964 * math.sqrt(var))


def _write_predictions(path: Path, rows: list[dict], key: str, change=lambda v: v) -> Path:
    path.write_text("".join(json.dumps({"id": r["id"], "prediction": change(r[key])}) + "\n" for r in rows))
    return path


def test_paired_bootstrap_on_fixture_gold(tmp_path: Path) -> None:
    gold_dir = FIXTURES / "blurb_data"
    rows = fixture_rows("NCBI-disease", "test")
    gold = _write_predictions(tmp_path / "gold.jsonl", rows, "tags")
    empty = _write_predictions(tmp_path / "all-o.jsonl", rows, "tags", lambda tags: ["O"] * len(tags))
    better = paired_bootstrap("NCBI-disease", gold_dir, gold, empty, 200)
    assert better["diff"] == 100.0 and better["low"] > 0 and better["rows"] == len(rows)
    worse = paired_bootstrap("NCBI-disease", gold_dir, empty, gold, 200)
    assert worse["diff"] == -100.0 and worse["high"] < 0
    same = paired_bootstrap("NCBI-disease", gold_dir, gold, gold, 50)
    assert same["diff"] == same["low"] == same["high"] == 0.0 and same["p"] == 1.0
    # HoC resamples whole abstracts and scores per abstract: the gold still scores 100 against nothing
    hoc = fixture_rows("HoC", "test")
    hoc_gold = _write_predictions(tmp_path / "hoc-gold.jsonl", hoc, "labels")
    hoc_none = _write_predictions(tmp_path / "hoc-none.jsonl", hoc, "labels", lambda _labels: [])
    result = paired_bootstrap("HoC", gold_dir, hoc_gold, hoc_none, 100)
    assert result["diff"] == 100.0 and result["high"] == 100.0 and result["rows"] == len(hoc)


def _perturbed(task_id: str, row: dict, rng: random.Random) -> object:
    """A prediction for a gold row that is right most of the time (a plausible model's output)."""
    from pubmedlm.blurb import tasks

    task = tasks.get(task_id)
    if task.task_type in ("ner", "pico"):
        return [rng.choice(task.labels) if rng.random() < 0.2 else t for t in row["tags"]]
    if task.task_type == "similarity":
        return row["score"] + rng.gauss(0, 1.0)
    if task.task_type == "doc_classification":
        return sorted({int(x) for x in row["labels"] if rng.random() < 0.7}
                      | ({rng.randrange(10)} if rng.random() < 0.2 else set()))
    return rng.choice(task.labels) if rng.random() < 0.3 else row["label"]


@pytest.mark.parametrize("task_id", ["NCBI-disease", "EBM-PICO", "ChemProt", "DDI", "GAD", "BIOSSES",
                                     "HoC", "PubMedQA"])
def test_bootstrap_from_counts_is_the_metric_on_every_resample(tmp_path: Path, task_id: str) -> None:
    """The bootstrap scores resamples from summed per-item counts; the reference re-scores each
    resample's rows with score_dataset (the metric as evaluate runs it), drawing the same items."""
    from pubmedlm.blurb import tasks
    from pubmedlm.blurb.metrics import abstract_id, hoc_abstracts
    from pubmedlm.blurb.predictions import score_dataset

    task, rows = tasks.get(task_id), fixture_rows(task_id, "test")
    rng = random.Random(task_id)
    paths = []
    for name in ("a", "b"):
        predicted = [{**r, "p": _perturbed(task_id, r, rng)} for r in rows]
        paths.append(_write_predictions(tmp_path / f"{name}.jsonl", predicted, "p"))
    read = [{json.loads(line)["id"]: json.loads(line)["prediction"] for line in p.read_text().splitlines()}
            for p in paths]
    result = paired_bootstrap(task_id, FIXTURES / "blurb_data", *paths, 30, seed=7)

    # the items resampled: rows, or (HoC) abstracts, each a new abstract every time it is drawn
    documents = task.task_type == "doc_classification"
    unit = (lambda r: abstract_id(r.get("doc_id") or r["id"])) if documents else (lambda r: r["id"])
    units = hoc_abstracts([unit(r) for r in rows]) if documents else [r["id"] for r in rows]
    members = {u: [r for r in rows if unit(r) == u] for u in units}

    def score(sample: list[dict], side: int) -> float:
        preds = [read[side][r["source"]] for r in sample]
        if documents:
            preds = [frozenset(p) for p in preds]
        value = score_dataset(task, sample, preds)
        return 0.0 if value is None else value

    draws = np.random.default_rng(7)
    expected = []
    for _ in range(30):
        sample = [{**r, "source": r["id"], "id": f"{u}#{k}_s{j}", "doc_id": f"{u}#{k}"}
                  for k, u in enumerate(units[i] for i in draws.integers(0, len(units), len(units)))
                  for j, r in enumerate(members[u])]
        expected.append(score(sample, 0) - score(sample, 1))
    whole = [{**r, "source": r["id"]} for r in rows]
    assert result["diff"] == pytest.approx(score(whole, 0) - score(whole, 1), abs=1e-9)
    assert result["samples"] == pytest.approx(expected, abs=1e-9)
    assert len(set(np.round(expected, 6))) > 1  # the resamples differ: the check is not vacuous
