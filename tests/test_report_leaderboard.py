"""The leaderboard's sanity-baseline column and first sentence, from a hand-made evaluate summary
(hermetic; test_registry_report.py renders a real run's page in Chromium)."""

from __future__ import annotations

import pytest

from pubmedlm.report import leaderboard as lb


def _summary() -> dict:
    def entry(paper: str, mean: float, dev: float, test: float, proxy: bool = False) -> dict:
        return {"paper_name": paper, "mean": mean, "std": 0.0, "seeds": 2, "dev_mean": mean, "proxy": proxy,
                "sanity": {"dev": dev, "test": test, "rule": "r"}}

    return {"model": "tiny", "not_comparable": True, "proxies": ["EBM PICO"],
            "datasets": {"NCBI-disease": entry("NCBI-disease", 1.0, 0.0, 0.0),
                         "EBM-PICO": entry("EBM PICO", 2.0, 0.0, 0.0, proxy=True),
                         "GAD": entry("GAD", 70.0, 66.1, 67.5),
                         "PubMedQA": entry("PubMedQA", 51.0, 56.0, 55.2)},
            "blurb": {"blurb": 30.0, "per_type": {}, "partial": True, "label": "BLURB (partial)"}}


def test_sanity_column_holds_the_test_baselines_and_their_blurb_average() -> None:
    col = lb.sanity_column(_summary())
    assert col.name == "sanity baseline" and col.baseline and not col.ours
    assert col.scores == {"NCBI-disease": 0.0, "EBM PICO": 0.0, "GAD": 67.5, "PubMedQA": 55.2}
    # Four task types with one dataset each (NER, PICO, RE, QA): BLURB is their plain mean.
    assert col.blurb == pytest.approx((0.0 + 0.0 + 67.5 + 55.2) / 4)
    assert col.flags == ["partial", "proxy", "not comparable"]
    cells = {label: cells for _, label, cells in lb.rows([col])}
    assert cells["GAD"] == ["67.50"] and cells["EBM PICO"] == ["0.00 (proxy)"] and cells["BC2GM"] == ["–"]
    assert lb.sanity_column({"datasets": {"GAD": {"paper_name": "GAD"}}}) is None  # before baselines


def test_the_page_opens_with_what_ran_and_how_to_run_the_full_recipe() -> None:
    facts = {"params": "params.yaml", "model": "a 2-layer model", "max_train": 200, "max_eval": 100,
             "max_length": 128, "trials": 2, "seeds": 2}
    intro = lb.intro(facts)
    assert intro.count(". ") == 0 and intro.endswith(".")  # one sentence
    for words in ("`params.yaml`", "200 training rows", "100 dev/test rows", "128 tokens", "2 search trials",
                  "cp pipelines/profiles/paper.yaml params.yaml && dvc repro"):
        assert words in intro
    assert "demo" not in lb.intro({**facts, "max_train": None, "max_eval": None, "max_length": None})
    fixed = lb.intro({**facts, "fixed": True})  # tune.fixed: no search to count
    assert "fixed hyperparameters, 2 seeds" in fixed and "search trials" not in fixed
    page = lb.html_page([lb.sanity_column(_summary())], {}, summary=intro)
    assert page.index('<p class="summary">') < page.index('<table id="leaderboard">')
    assert '<th class="baseline">sanity baseline' in page
