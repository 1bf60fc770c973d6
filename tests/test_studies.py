"""Studies (issue #14): the shipped study files validate against today's params, bad study files
fail naming the file and the key, the analysis' intervals are `pubmedlm compare`'s and agree with
a Welch interval worked out from its formula, and the claim rules hold, fail or stay inconclusive
where they must. Hermetic: the repo's params.yaml and the committed fixtures, no mirror, no Ray."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest
from scipy import stats

from conftest import FIXTURES, REPO, fixture_rows
from pubmedlm.blurb.compare import compare, paired_bootstrap, welch
from pubmedlm.config import load_config
from pubmedlm.studies import StudyError, load_study
from pubmedlm.studies.analysis import analyse, runs_from_scores, variance_ratio, verdict
from pubmedlm.studies.render import markdown, write
from pubmedlm.studies.spec import Study

STUDIES = REPO / "pipelines" / "studies"

GOOD = """\
name: {name}
params: params.yaml
overrides: [finetune.model=minilm]
datasets: [NCBI-disease, BC5-chem]
variants:
  IO: [finetune.tagging=IO]
  BIO: [finetune.tagging=BIO]
baseline: BIO
seeds: 3
hparams: fixed
fixed: {{learning_rate: 5.0e-05, batch_size: 32, epochs: 3, warmup_ratio: 0.1, weight_decay: 0.01,
        dropout: 0.1}}
claim:
  text: the same
  rules: [{{kind: all_within, margin: 1.0}}]
paper:
  IO: {{BC5-chem: 93.11}}
  BIO: {{BC5-chem: 93.33}}
"""


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_study_validates(path: Path) -> None:
    study = load_study(path, REPO)
    assert study.name == path.stem and study.baseline in study.variants
    assert study.seeds >= 2 and study.claim.rules


def test_the_shipped_studies_are_the_issues() -> None:
    assert {p.stem for p in STUDIES.glob("*.yaml")} == {"tagging", "re-encoding", "vocab-wwm", "init",
                                                        "stabilizers"}


def test_paper_cells_are_the_documented_numbers() -> None:
    """Every paper cell of a study is a number docs/BLURB.md states (none invented)."""
    doc = (REPO / "docs" / "BLURB.md").read_text(encoding="utf-8")
    for path in STUDIES.glob("*.yaml"):
        for cells in load_study(path, REPO).paper.values():
            for value in cells.values():
                assert f"{value:.2f}" in doc, f"{path.name}: {value} is not in docs/BLURB.md"


def _write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_good_example_loads(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, GOOD.format(name="demo")), REPO)
    assert study.others() == ["IO"]
    assert study.overrides_of("IO") == ["finetune.model=minilm", "finetune.tagging=IO"]
    assert study.fixed is not None and study.fixed.learning_rate == 5e-5
    # a study's `fixed` block is a `tune.fixed` value: the variant's run sets it as it stands
    cfg = load_config(REPO / "params.yaml", [f"tune.fixed={json.dumps(study.fixed.as_dict())}"])
    assert cfg.tune.fixed == study.fixed


BAD = [
    ("unknown top key", ("seeds: 3", "seeds: 3\ncolour: red"), r"unknown key 'colour'"),
    ("unknown rule key", ("margin: 1.0}", "margn: 1.0}"),
     r"unknown key 'claim\.rules\.0\.all_within\.margn'"),
    ("unknown rule kind", ("kind: all_within", "kind: mostly"), r"claim\.rules\.0"),
    ("unknown dataset", ("NCBI-disease, BC5-chem", "NCBI-disease, BC5-chemical"),
     r"bad value for 'datasets': unknown dataset 'BC5-chemical'"),
    ("unknown param", ("finetune.tagging=IO", "finetune.taging=IO"),
     r"variants\.IO: .*unknown key 'finetune\.taging'"),
    ("bad param value", ("finetune.tagging=IO", "finetune.tagging=IOB"),
     r"variants\.IO: .*'finetune\.tagging'"),
    ("baseline not a variant", ("baseline: BIO", "baseline: BIOUL"), r"baseline: 'BIOUL' is not a variant"),
    ("duplicate key", ("seeds: 3", "seeds: 3\nseeds: 5"), r"key 'seeds' written twice"),
    ("paper of an unknown variant", ("  IO: {BC5-chem: 93.11}", "  IOB: {BC5-chem: 93.11}"), r"paper\.IOB"),
    ("paper of another dataset", ("{BC5-chem: 93.11}", "{GAD: 80.0}"), r"paper\.IO\.GAD"),
    ("rule of an unknown variant", ("{kind: all_within, margin: 1.0}", "{kind: below, variant: BIOES}"),
     r"claim\.rules\.0\.variant: 'BIOES'"),
    ("rule on the baseline", ("{kind: all_within, margin: 1.0}", "{kind: above, variant: BIO}"),
     r"claim\.rules\.0\.variant: 'BIO'"),
    ("one variant", ("  BIO: [finetune.tagging=BIO]\n", ""), r"'variants'"),
    ("negative margin", ("margin: 1.0", "margin: -1.0"), r"margin"),
]


@pytest.mark.parametrize(("change", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_study_fails_naming_file_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = GOOD.format(name="demo")
    assert change[0] in text
    path = _write(tmp_path, text.replace(change[0], change[1], 1))
    with pytest.raises(StudyError, match=message) as err:
        load_study(path, REPO)
    assert str(path) in str(err.value)


def test_fixed_is_required_with_fixed_and_refused_with_search(tmp_path: Path) -> None:
    text = GOOD.format(name="demo")
    without = re.sub(r"fixed: \{[^}]*\}\n", "", text)
    assert "learning_rate" not in without
    with pytest.raises(StudyError, match="fixed: required with `hparams: fixed`"):
        load_study(_write(tmp_path, without), REPO)
    with pytest.raises(StudyError, match="not allowed with `hparams: search`"):
        load_study(_write(tmp_path, text.replace("hparams: fixed", "hparams: search")), REPO)
    with pytest.raises(StudyError, match=r"bad value for 'fixed\.learning_rate'"):
        load_study(_write(tmp_path, text.replace("learning_rate: 5.0e-05", "learning_rate: -1")), REPO)


@pytest.mark.parametrize(("changes", "message"), [
    ("{GAD: {epochs: 30}}", r"fixed_per_dataset\.GAD: not one of the study's datasets"),
    ("{BC5-chem: {epoch: 30}}", r"fixed_per_dataset\.BC5-chem\.epoch: not a field of tune\.fixed"),
    ("{BC5-chem: {epochs: 0}}", r"fixed_per_dataset\.BC5-chem\.epochs: Input should be greater"),
])
def test_fixed_per_dataset_is_checked_and_reaches_every_variant(tmp_path: Path, changes: str,
                                                                message: str) -> None:
    from pubmedlm.studies.runner import protocol

    text = GOOD.format(name="demo")
    study = load_study(_write(tmp_path, text + "fixed_per_dataset: {BC5-chem: {epochs: 9}}\n"), REPO)
    assert 'tune.fixed_per_dataset={"BC5-chem": {"epochs": 9}}' in protocol(study)
    with pytest.raises(StudyError, match=message):
        load_study(_write(tmp_path, text + f"fixed_per_dataset: {changes}\n"), REPO)


def test_name_is_the_file_name_and_the_base_params_must_exist(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"name: 'other' differs"):
        load_study(_write(tmp_path, GOOD.format(name="other")), REPO)
    with pytest.raises(StudyError, match=r"params: base params file not found"):
        load_study(_write(tmp_path, GOOD.format(name="demo").replace("params.yaml", "nope.yaml")), REPO)
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "missing.yaml", REPO)


# --- analysis ----------------------------------------------------------------------------------

def _study(rules: list[dict], variants: tuple[str, ...] = ("BIO", "IO", "BIOUL"),
           datasets: tuple[str, ...] = ("NCBI-disease", "BC5-chem")) -> Study:
    return Study.model_validate({
        "name": "demo", "datasets": list(datasets), "variants": {v: [] for v in variants},
        "baseline": variants[0], "hparams": "search", "claim": {"text": "t", "rules": rules},
        "paper": {"IO": {"BC5-chem": 93.11}, "BIO": {"BC5-chem": 93.33}} if "BC5-chem" in datasets else {}})


def _runs(scores: dict[str, dict[str, list[float]]]) -> dict:
    return {v: runs_from_scores(v, s) for v, s in scores.items()}


BASE = {"NCBI-disease": [80.1, 81.0, 79.7, 80.6], "BC5-chem": [90.2, 90.9, 90.4]}


def _welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float]:
    """Welch's interval from its formula (Welch-Satterthwaite df), not from ttest_ind."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    d = statistics.fmean(a) - statistics.fmean(b)
    return d - half, d + half


def test_welch_intervals_are_compares_and_agree_with_the_formula() -> None:
    io = {"NCBI-disease": [78.0, 79.5, 80.2], "BC5-chem": [92.0, 92.8, 91.7, 92.5, 92.1]}
    study = _study([{"kind": "all_within", "margin": 1.0}], ("BIO", "IO"))
    result = analyse(study, _runs({"BIO": BASE, "IO": io}))
    for dataset in BASE:
        row = next(d for d in result["differences"] if d["dataset"] == dataset)
        ref = welch(io[dataset], BASE[dataset])
        assert (row["welch"]["low"], row["welch"]["high"]) == (ref["low"], ref["high"])
        t = stats.ttest_ind(io[dataset], BASE[dataset], equal_var=False).confidence_interval(0.95)
        assert row["welch"]["low"] == pytest.approx(t.low, abs=1e-9)
        by_hand = _welch_by_hand(io[dataset], BASE[dataset])
        assert (row["welch"]["low"], row["welch"]["high"]) == pytest.approx(by_hand, abs=1e-9)
        assert row["diff"] == pytest.approx(statistics.fmean(io[dataset]) - statistics.fmean(BASE[dataset]))
    blurb = next(d for d in result["differences"] if d["dataset"] == "BLURB")
    ref = compare(runs_from_scores("IO", io), runs_from_scores("BIO", BASE))["blurb"]
    assert blurb["diff"] == ref["diff"]
    assert (blurb["welch"]["low"], blurb["welch"]["high"]) == (ref["low"], ref["high"])
    bc5 = next(d for d in result["differences"] if d["dataset"] == "BC5-chem")
    assert bc5["verdict"] == "better" and bc5["paper_diff"] == pytest.approx(93.11 - 93.33)


def test_the_table_is_mean_and_sample_std_with_the_paper_beside() -> None:
    result = analyse(_study([{"kind": "all_within", "margin": 1.0}], ("BIO", "IO")),
                     _runs({"BIO": BASE, "IO": {"BC5-chem": [91.0]}}))
    bio, io = result["table"]
    assert bio["cells"]["NCBI-disease"]["std"] == pytest.approx(statistics.stdev(BASE["NCBI-disease"]))
    assert bio["cells"]["BC5-chem"]["paper"] == 93.33 and "mean" in bio["cells"]["BLURB"]
    assert io["cells"]["NCBI-disease"] == {"missing": True, "paper": None}
    assert io["cells"]["BC5-chem"]["std"] == 0.0 and io["cells"]["BLURB"]["missing"]
    # one seed against the baseline: a difference with no interval, and the claim cannot hold
    row = next(d for d in result["differences"] if d["dataset"] == "BC5-chem")
    assert row["welch"] is None and row["verdict"] == "n/a"
    assert result["claim"]["outcome"] == "inconclusive"


def _shift(scores: dict[str, list[float]], by: float, spread: float = 1.0) -> dict[str, list[float]]:
    """Scores moved by `by`, spread around their mean `spread` times as wide."""
    means = {d: statistics.fmean(v) for d, v in scores.items()}
    return {d: [by + means[d] + spread * (x - means[d]) for x in v] for d, v in scores.items()}


CLAIMS = [
    # rule, the IO variant's scores, the expected outcome
    ({"kind": "all_within", "margin": 1.0}, _shift(BASE, 0.05, 0.1), "holds"),
    ({"kind": "all_within", "margin": 1.0}, _shift(BASE, 3.0), "fails"),
    ({"kind": "all_within", "margin": 1.0}, _shift(BASE, 0.5, 2.0), "inconclusive"),  # wide interval
    ({"kind": "below", "variant": "IO", "margin": 5.0}, _shift(BASE, -30.0), "holds"),
    ({"kind": "below", "variant": "IO", "margin": 5.0}, _shift(BASE, -2.0), "fails"),
    ({"kind": "below", "variant": "IO", "margin": 5.0}, _shift(BASE, -5.5, 3.0), "inconclusive"),
    ({"kind": "above", "variant": "IO", "margin": 0.0}, _shift(BASE, 5.0), "holds"),
    ({"kind": "above", "variant": "IO", "margin": 0.0}, _shift(BASE, -1.0), "fails"),
    ({"kind": "within", "variant": "IO", "margin": 1.0}, _shift(BASE, 0.0, 0.2), "holds"),
    ({"kind": "all_below", "margin": 0.0, "scope": "blurb"}, _shift(BASE, -10.0), "holds"),
    ({"kind": "all_below", "margin": 0.0, "scope": "blurb"}, _shift(BASE, 1.0), "fails"),
    ({"kind": "std_below", "variant": "IO"}, _shift(BASE, 0.0, 0.01), "holds"),
    ({"kind": "std_below", "variant": "IO"}, _shift(BASE, 0.0, 3.0), "fails"),
    ({"kind": "std_below", "variant": "IO"}, _shift(BASE, 0.0, 0.8), "inconclusive"),
]


@pytest.mark.parametrize(("rule", "io", "expected"), CLAIMS, ids=[f"{c[0]['kind']}-{c[2]}" for c in CLAIMS])
def test_claim_rules_on_constructed_inputs(rule: dict, io: dict, expected: str) -> None:
    result = analyse(_study([rule], ("BIO", "IO")), _runs({"BIO": BASE, "IO": io}))
    assert result["claim"]["rules"][0]["outcome"] == expected
    assert result["claim"]["outcome"] == expected


def test_std_below_against_a_constant_baseline() -> None:
    """All seeds equal (a model stuck on the majority class): a variant that varies fails to be
    steadier; one that is constant too has no variance to lower (inconclusive)."""
    rule = [{"kind": "std_below", "variant": "IO"}]
    constant = _shift(BASE, 0.0, 0.0)
    varies = analyse(_study(rule, ("BIO", "IO")), _runs({"BIO": constant, "IO": BASE}))
    assert varies["claim"]["outcome"] == "fails"
    both = analyse(_study(rule, ("BIO", "IO")), _runs({"BIO": constant, "IO": constant}))
    assert both["claim"]["outcome"] == "inconclusive"
    assert {c["std"] for c in both["claim"]["rules"][0]["cells"]} == {0.0}


def test_a_claim_fails_when_one_rule_fails_and_a_missing_variant_is_inconclusive() -> None:
    rules = [{"kind": "below", "variant": "IO", "margin": 5.0},
             {"kind": "within", "variant": "BIOUL", "margin": 1.0}]
    runs = _runs({"BIO": BASE, "IO": _shift(BASE, -30.0), "BIOUL": _shift(BASE, 4.0)})
    assert analyse(_study(rules), runs)["claim"]["outcome"] == "fails"
    partial = analyse(_study(rules), _runs({"BIO": BASE, "IO": _shift(BASE, -30.0)}))
    assert partial["missing"] == ["BIOUL"] and partial["claim"]["outcome"] == "inconclusive"
    with pytest.raises(StudyError, match="baseline variant 'BIO'"):
        analyse(_study(rules), _runs({"IO": BASE}))


def test_verdicts_and_the_variance_ratio_interval() -> None:
    assert [verdict(iv) for iv in ({"low": 0.1, "high": 2}, {"low": -2, "high": -0.1}, {"low": -1, "high": 1},
                                   None)] == ["better", "worse", "same", "n/a"]
    a, b = [1.0, 2.0, 4.0], [1.0, 1.5, 2.5, 3.0]
    r = variance_ratio(a, b)
    ratio = statistics.variance(a) / statistics.variance(b)
    assert r["ratio"] == pytest.approx(ratio)
    assert r["low"] == pytest.approx(ratio / stats.f.ppf(0.975, 2, 3))
    assert r["high"] == pytest.approx(ratio / stats.f.ppf(0.025, 2, 3))
    assert variance_ratio([1.0], b) is None and variance_ratio(a, [2.0, 2.0]) is None


def _predictions(folder: Path, task: str, rows: list[dict], change=lambda v: v) -> None:
    path = folder / task / "predictions" / "seed-0" / "test" / f"{task}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps({"id": r["id"], "prediction": change(r["tags"])}) + "\n"
                            for r in rows))


def test_bootstrap_intervals_are_compares_on_the_best_dev_seeds(tmp_path: Path) -> None:
    rows = fixture_rows("NCBI-disease", "test")
    _predictions(tmp_path / "BIO", "NCBI-disease", rows)
    _predictions(tmp_path / "IO", "NCBI-disease", rows, lambda tags: ["O"] * len(tags))
    runs = {v: runs_from_scores(v, {"NCBI-disease": s}, tmp_path / v) for v, s in
            (("BIO", [80.0, 81.0]), ("IO", [10.0]))}
    study = _study([{"kind": "below", "variant": "IO", "margin": 5.0}], ("BIO", "IO"), ("NCBI-disease",))
    result = analyse(study, runs, gold_dir=FIXTURES / "blurb_data", bootstrap=50)
    (row,) = result["differences"]
    ref = paired_bootstrap("NCBI-disease", FIXTURES / "blurb_data", runs["IO"].predictions("NCBI-disease"),
                           runs["BIO"].predictions("NCBI-disease"), 50)
    assert row["bootstrap"] == {"diff": ref["diff"], "low": ref["low"], "high": ref["high"], "p": ref["p"]}
    assert row["welch"] is None and row["method"] == "bootstrap" and row["verdict"] == "worse"
    assert result["claim"]["outcome"] == "holds"


def test_markdown_json_and_plot(tmp_path: Path) -> None:
    study = load_study(STUDIES / "tagging.yaml", REPO)
    runs = _runs({"BIO": BASE, "IO": _shift(BASE, 0.2), "BIOUL": _shift(BASE, -0.3)})
    result = analyse(study, runs)
    text = markdown(result, "differences.png")
    assert "93.11" in text and "93.33" in text and "held fixed" in text and "BLURB*" in text
    assert f"the claim {result['claim']['outcome']}" in text and "| IO | BC5-chem |" in text
    out = write(result, tmp_path / "report")
    assert json.loads(out["json"].read_text())["claim"]["outcome"] == result["claim"]["outcome"]
    assert out["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = write(result, tmp_path / "again")  # stable bytes: an unchanged study keeps its DVC hash
    assert again["plot"].read_bytes() == out["plot"].read_bytes()
