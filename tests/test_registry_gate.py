"""The promotion gate (`registry.gate.gate`) as a table: (candidate standing, champion standing) ->
(promoted?, reason). Hermetic: no MLflow; test_registry_report.py drives the same rules through a
real registry."""

from __future__ import annotations

import pytest

from pubmedlm.registry.gate import Standing, gate

BLURB = ("BC5-chem", "NCBI-disease", "GAD")
FEWER = ("BC5-chem", "NCBI-disease")


def full(score: float, tasks: tuple[str, ...] = BLURB, **kw) -> Standing:
    """A standing whose dev score beats its sanity baseline unless `dev` / `sanity` say otherwise."""
    return Standing(score, tasks, **{"dev": 60.0, "sanity": 20.0, **kw})


# (case, candidate, champion, promoted, words the reason must contain)
TABLE = [
    ("first version", full(70.0), None, True, "no champion yet"),
    ("first version, low score", full(1.0), None, True, "no champion yet"),
    ("partial, no champion", full(90.0, partial=True), None, False, "partial"),
    ("proxy, no champion", full(90.0, proxy=True), None, False, "proxy split"),
    ("capped, no champion", full(60.0, capped=True), None, True, "no champion yet"),
    ("partial beats nothing", full(95.0, partial=True), full(70.0), False, "partial"),
    ("proxy beats nothing", full(95.0, proxy=True), full(70.0), False, "proxy split"),
    ("partial and capped", full(95.0, partial=True, capped=True), full(70.0, capped=True), False, "partial"),
    ("fewer datasets", full(95.0, FEWER), full(70.0), False, "another task set"),
    ("more datasets", full(95.0), full(70.0, FEWER), False, "another task set"),
    ("same datasets, other order", full(71.0, BLURB[::-1]), full(70.0), True, "> champion's 70.00"),
    ("capped vs full, higher", full(95.0, capped=True), full(70.0), False, "capped run"),
    ("capped vs full, lower", full(50.0, capped=True), full(70.0), False, "capped run"),
    ("full vs capped, lower", full(50.0), full(70.0, capped=True), True, "replaces the capped"),
    ("full vs capped, higher", full(90.0), full(70.0, capped=True), True, "replaces the capped"),
    ("capped vs capped, higher", full(71.0, capped=True), full(70.0, capped=True), True, "71.00 > champ"),
    ("capped vs capped, lower", full(69.0, capped=True), full(70.0, capped=True), False, "not above"),
    ("higher", full(70.01), full(70.0), True, "70.01 > champion's 70.00"),
    ("lower", full(69.5), full(70.0), False, "69.50 not above the champion's 70.00"),
    ("equal", full(70.0), full(70.0), False, "not above"),
    ("champion itself partial (older rules)", full(71.0), full(70.0, partial=True), True, "> champion's"),
    # The sanity baseline (dev score against a constant prediction's on the same dev rows).
    ("dev at the sanity baseline (NER all-O: 0)", full(0.0, dev=0.0, sanity=0.0), None, False,
     "dev 0.00 not above the sanity baseline's 0.00: never champion"),
    ("dev below the sanity baseline (GAD all-positive)", full(64.6, dev=63.1, sanity=66.7), None, False,
     "not above the sanity baseline's 66.70"),
    ("below sanity, higher than the champion", full(90.0, dev=10.0, sanity=30.0), full(70.0), False,
     "sanity baseline"),
    ("a hair above the sanity baseline", full(5.0, dev=30.01, sanity=30.0), None, True, "no champion yet"),
    ("no sanity baseline known", Standing(70.0, BLURB, dev=60.0), None, False, "no dev score against"),
    ("no dev score known", Standing(70.0, BLURB, sanity=10.0), None, False, "no dev score against"),
    ("partial and below sanity: partial named", full(1.0, partial=True, dev=0.0, sanity=0.0), None, False,
     "partial"),
    ("beats sanity, champion does not", full(10.0, dev=5.0, sanity=0.0),
     full(70.0, dev=0.0, sanity=0.0), True, "beats the sanity baseline, which the champion does not"),
    ("capped, beats sanity, full champion does not", full(10.0, capped=True),
     full(70.0, dev=1.0, sanity=2.0), True, "which the champion does not"),
    ("champion's sanity unknown (older rules): the usual rules", full(95.0, capped=True),
     Standing(70.0, BLURB), False, "capped run"),
]


@pytest.mark.parametrize(("candidate", "champion", "promoted", "reason"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_gate_table(candidate: Standing, champion: Standing | None, promoted: bool, reason: str) -> None:
    got_promoted, got_reason = gate(candidate, champion)
    assert got_promoted is promoted, got_reason
    assert reason in got_reason


def test_reason_names_the_champion_version() -> None:
    assert gate(full(69.0), full(70.0), "7") == (False, "score 69.00 not above the champion v7's 70.00")
    ok, why = gate(full(50.0), full(70.0, capped=True), "3")
    assert ok and why == "full-budget run replaces the capped champion v3"
    ok, why = gate(full(90.0, FEWER), full(70.0), "2")
    assert not ok and "champion v2" in why and "(2 vs 3 datasets)" in why


@pytest.mark.parametrize("standing", [full(81.16), full(12.5, FEWER, partial=True),
                                      full(70.0, proxy=True, capped=True), Standing(0.0, ()),
                                      full(0.0, dev=0.0, sanity=0.0), Standing(3.0, BLURB, sanity=66.7)])
def test_standing_round_trips_through_version_tags(standing: Standing) -> None:
    tags = standing.as_tags()
    assert all(isinstance(v, str) for v in tags.values())  # MLflow tags are strings
    back = Standing.from_tags(tags)
    assert back == Standing(standing.score, tuple(sorted(standing.tasks)), standing.partial, standing.proxy,
                            standing.capped, standing.dev, standing.sanity)
    # the gate treats the stored standing as the live one (task order does not matter)
    assert gate(full(99.0, standing.tasks), back)[0] == gate(full(99.0, standing.tasks), standing)[0]


def test_a_version_without_gate_tags_has_no_standing() -> None:
    assert Standing.from_tags({"git.commit": "abc"}) is None


def _entry(paper: str, dev: float, sanity: float | None) -> dict:
    known = {"sanity": {"dev": sanity}} if sanity is not None else {}
    return {"paper_name": paper, "dev_mean": dev, **known}


def test_the_register_stage_judges_a_task_model_by_its_dev_mean_against_its_sanity_baseline() -> None:
    from pubmedlm.registry import versions

    r = {"test": {"mean": 70.0, "std": 0.0, "n": 2}, "dev": {"mean": 62.0}, "flags": {"proxy": False,
         "capped": True, "note": ""}, "hparams": {}, "metric": "positive_f1", "paper_name": "GAD"}
    summary = {"datasets": {"GAD": _entry("GAD", 62.0, 66.7)}}
    standing, _, _ = versions.task_version("GAD", r, "tiny", None, {}, {}, None,
                                              versions.sanity_dev(summary["datasets"]["GAD"]))
    assert (standing.dev, standing.sanity) == (62.0, 66.7)
    assert gate(standing, None) == (False, "dev 62.00 not above the sanity baseline's 66.70: never champion")
    assert versions.sanity_dev(_entry("GAD", 62.0, None)) is None  # an evaluation from before baselines


def test_the_encoder_is_judged_by_blurb_over_dev_means_against_blurb_over_sanity_baselines() -> None:
    from pubmedlm.registry import versions

    datasets = {"NCBI-disease": _entry("NCBI-disease", 30.0, 0.0), "BC5-chem": _entry("BC5-chem", 50.0, 0.0),
                "GAD": _entry("GAD", 60.0, 66.0),
                "PubMedQA": _entry("PubMedQA", 50.0, 55.0)}
    got = versions.dev_against_sanity({"datasets": datasets})
    # BLURB: the mean over task types of each type's mean: NER (30+50)/2, RE 60, QA 50 -> 50; sanity 0, 66, 55
    assert got["dev"] == pytest.approx((40.0 + 60.0 + 50.0) / 3)
    assert got["sanity"] == pytest.approx((0.0 + 66.0 + 55.0) / 3)
    datasets["GAD"] = _entry("GAD", 60.0, None)
    assert versions.dev_against_sanity({"datasets": datasets}) == {"dev": None, "sanity": None}
