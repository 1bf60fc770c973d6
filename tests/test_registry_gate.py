"""The promotion gate (`registry.gate.gate`) as a table: (candidate standing, champion standing) ->
(promoted?, reason). Hermetic: no MLflow; test_registry_report.py drives the same rules through a
real registry."""

from __future__ import annotations

import pytest

from pubmedlm.registry.gate import Standing, gate

BLURB = ("BC5-chem", "NCBI-disease", "GAD")
FEWER = ("BC5-chem", "NCBI-disease")


def full(score: float, tasks: tuple[str, ...] = BLURB, **kw) -> Standing:
    return Standing(score, tasks, **kw)


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
                                      full(70.0, proxy=True, capped=True), Standing(0.0, ())])
def test_standing_round_trips_through_version_tags(standing: Standing) -> None:
    tags = standing.as_tags()
    assert all(isinstance(v, str) for v in tags.values())  # MLflow tags are strings
    back = Standing.from_tags(tags)
    assert back == Standing(standing.score, tuple(sorted(standing.tasks)), standing.partial, standing.proxy,
                            standing.capped)
    # the gate treats the stored standing as the live one (task order does not matter)
    assert gate(full(99.0, standing.tasks), back)[0] == gate(full(99.0, standing.tasks), standing)[0]


def test_a_version_without_gate_tags_has_no_standing() -> None:
    assert Standing.from_tags({"git.commit": "abc"}) is None
