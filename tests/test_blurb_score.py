"""BLURB score aggregation and the packaged published results."""

from __future__ import annotations

import pytest

from pubmedlm.blurb.published import comparison_table, published
from pubmedlm.blurb.score import DATASETS, TASK_TYPES, blurb_score, canonical


def test_published_table_has_every_model_and_dataset() -> None:
    table = published()
    assert table.models == ("BERT", "RoBERTa", "BioBERT", "SciBERT", "ClinicalBERT", "BlueBERT",
                            "PubMedBERT", "BioLinkBERT-base", "BioLinkBERT-large")
    assert table.scores["PubMedBERT"]["BC5-chem"] == 93.33
    assert table.scores["BioLinkBERT-large"]["BioASQ"] == 94.82
    assert all(set(table.scores[m]) == set(DATASETS) for m in table.models)


@pytest.mark.parametrize("model, expected", [("PubMedBERT", 81.16), ("BioLinkBERT-base", 83.39)])
def test_published_per_dataset_scores_aggregate_to_the_printed_blurb(model: str, expected: float) -> None:
    score = blurb_score(published().scores[model])
    assert round(score.value, 2) == expected
    assert not score.partial and score.label == "BLURB"


def test_every_published_column_reproduces_its_printed_blurb() -> None:
    table = published()
    computed = {m: round(blurb_score(table.scores[m]).value, 2) for m in table.models}
    assert computed == table.blurb


def test_aggregation_is_a_mean_of_task_type_means() -> None:
    # NER all 90, PICO 60, RE (ChemProt 70, DDI 80, GAD 90) -> 80, others 50/40/(30, 10) -> 20.
    results = {d: 90.0 for d in TASK_TYPES["NER"]} | {
        "EBM PICO": 60.0, "ChemProt": 70.0, "DDI": 80.0, "GAD": 90.0,
        "BIOSSES": 50.0, "HoC": 40.0, "PubMedQA": 30.0, "BioASQ": 10.0}
    score = blurb_score(results)
    assert score.per_type == {
        "NER": 90.0, "PICO": 60.0, "relation extraction": 80.0, "sentence similarity": 50.0,
        "document classification": 40.0, "question answering": 20.0}
    assert score.value == pytest.approx((90 + 60 + 80 + 50 + 40 + 20) / 6)
    assert score.used == DATASETS and score.missing == () and not score.partial


def test_missing_and_proxy_datasets_mark_the_score_partial_everywhere() -> None:
    results = dict(published().scores["PubMedBERT"])
    del results["BioASQ"], results["BC2GM"]
    score = blurb_score(results, proxies={"EBM PICO"})
    assert score.partial
    assert score.missing == ("BC2GM", "BioASQ") and score.proxies == ("EBM PICO",)
    assert "BioASQ" not in score.used and "EBM PICO" in score.used
    assert score.per_type["question answering"] == 55.84  # the mean of what is there
    for shown in (str(score), score.label, score.as_dict()["label"]):
        assert "partial" in shown and "BC2GM" in shown and "EBM PICO" in shown
    assert score.as_dict()["partial"] is True


def test_a_missing_task_type_is_left_out_of_the_mean_and_marked() -> None:
    score = blurb_score({"BC5-chem": 80.0, "HoC": 60.0})
    assert score.value == 70.0 and set(score.per_type) == {"NER", "document classification"}
    assert score.partial and "BIOSSES" in score.missing


def test_folder_names_are_aliases_and_bad_input_is_refused() -> None:
    assert canonical("BC5CDR-chem") == "BC5-chem" and canonical("ebmnlp") == "EBM PICO"
    assert canonical("pubmedqa") == "PubMedQA" and canonical("chemprot") == "ChemProt"
    assert blurb_score({"chemprot": 70.0}).used == ("ChemProt",)
    with pytest.raises(KeyError):
        blurb_score({"SQuAD": 90.0})
    with pytest.raises(ValueError, match="twice"):
        blurb_score({"chemprot": 70.0, "ChemProt": 71.0})
    with pytest.raises(ValueError, match="proxies"):
        blurb_score({"ChemProt": 70.0}, proxies={"DDI"})
    with pytest.raises(ValueError):
        blurb_score({})


def test_comparison_table_shows_partial_scores_beside_the_paper() -> None:
    text = comparison_table({"BC5CDR-chem": 90.0, "ebmnlp": 70.0}, name="tiny", proxies=["ebmnlp"],
                            models=["PubMedBERT"])
    lines = text.splitlines()
    assert lines[0] == "| dataset | tiny | PubMedBERT |"
    assert "| BC5-chem | 90.00 | 93.33 |" in lines
    assert "| EBM PICO | 70.00 (proxy) | 73.38 |" in lines
    assert "| **BLURB (partial)** | 80.00 | 81.16 |" in lines
    assert lines[-1].startswith("tiny: BLURB (partial: missing BC5-disease")
    full = comparison_table(published().scores["PubMedBERT"], name="again")
    assert "| **BLURB** | 81.16 | 76.11 |" in full and "partial" not in full
