"""`pubmedlm study run|report` (issue #14): the plan gives each variant exactly the overrides its
study file says (common, its own, the study's datasets / seeds / `tune.fixed`, then the command
line's), a rerun runs only the variants and datasets not done with the same params, the report's
table is numpy's mean and sample std of the per-seed scores the runs wrote, and bad names are one
clear error. One integration test runs a two-variant study on BIOSSES end to end with MiniLM and
checks the report against what MLflow recorded of the seeds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, prepare_blurb
from pubmedlm.config import load_config
from pubmedlm.stages import write_resolved_config
from pubmedlm.studies import StudyError, runner
from pubmedlm.studies.results import collect, report

STUDY = """\
name: mini
params: params.yaml
overrides: [finetune.model=minilm, finetune.max_eval_examples=null]
datasets: [{datasets}]
variants:
  plain: []
  freeze: [finetune.freeze_layers=2]
baseline: plain
seeds: {seeds}
hparams: fixed
fixed: {{learning_rate: 1.0e-04, batch_size: 16, epochs: 1, warmup_ratio: 0.1, weight_decay: 0.01,
        dropout: 0.1}}
claim:
  text: freezing keeps the score
  rules: [{{kind: within, variant: freeze, margin: 100.0}}]
"""


def _root(tmp_path: Path, datasets: str = "BIOSSES, GAD", seeds: int = 3) -> Path:
    root = tmp_path / "project"
    (root / "pipelines" / "studies").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "pipelines" / "studies" / "mini.yaml").write_text(STUDY.format(datasets=datasets, seeds=seeds))
    return root


def _plans(root: Path, variants: list[str] | None = None, extra: tuple[str, ...] = ()) -> list:
    study, path = runner.resolve("mini", root)
    return runner.make_plan(study, path, root, variants, extra)


def _finished(plan: runner.VariantPlan, dataset: str, scores: list[float], best: int = 0) -> None:
    """What `finetune` leaves for a dataset: results.json with per-seed scores and its config.yaml."""
    folder = plan.folder / "finetune" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    results = {"status": "ok", "best_seed": best, "seeds": [{"index": i, "test_score": s}
                                                            for i, s in enumerate(scores)],
               "test": {"mean": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)),
                        "n": len(scores)}}
    (folder / "results.json").write_text(json.dumps(results))
    write_resolved_config(folder, plan.config(), runner.SECTIONS)


def test_each_variant_gets_the_overrides_its_study_file_says(tmp_path: Path) -> None:
    root = _root(tmp_path)
    plans = _plans(root, extra=("finetune.max_train_examples=32",))
    assert [p.variant for p in plans] == ["plain", "freeze"]
    freeze = plans[1]
    assert freeze.overrides == (
        "finetune.model=minilm", "finetune.max_eval_examples=null", "finetune.freeze_layers=2",
        'finetune.datasets=["BIOSSES", "GAD"]', "finetune.seeds={default: 3}",
        'tune.fixed={"learning_rate": 0.0001, "batch_size": 16, "epochs": 1, "warmup_ratio": 0.1, '
        '"weight_decay": 0.01, "dropout": 0.1}', "finetune.max_train_examples=32")
    cfg = freeze.config()
    assert cfg.finetune.freeze_layers == 2 and plans[0].config().finetune.freeze_layers == 0
    assert cfg.tune.fixed is not None and cfg.tune.fixed.as_dict() == {
        "learning_rate": 1e-4, "batch_size": 16, "epochs": 1, "warmup_ratio": 0.1, "weight_decay": 0.01,
        "dropout": 0.1}
    # the study's seed count replaces params.yaml's (and any per-dataset count)
    assert cfg.finetune.seeds == {"default": 3} and cfg.finetune.seeds_for("BIOSSES") == 3
    assert cfg.finetune.datasets == ["BIOSSES", "GAD"] and cfg.finetune.max_train_examples == 32
    assert freeze.folder == root / "data" / "studies" / "mini" / "freeze"
    assert runner.digest(cfg) != runner.digest(plans[0].config())
    text = runner.describe(plans)
    assert "mini/freeze: 2 dataset(s) x 3 seed(s)" in text and "--set finetune.freeze_layers=2" in text
    assert "to run: BIOSSES (tune + fine-tune), GAD (tune + fine-tune)" in text


def test_a_rerun_runs_only_what_is_not_done_with_the_same_params(tmp_path: Path) -> None:
    root = _root(tmp_path)
    plain, freeze = _plans(root)
    for d in ("BIOSSES", "GAD"):
        _finished(plain, d, [80.0, 81.0, 82.0])
    _finished(freeze, "BIOSSES", [70.0, 71.0])  # 2 of 3 seeds: not done
    calls: list[str] = []
    lines = runner.run_study([plain, freeze], lambda p, _: calls.append(p.variant), progress=calls.append)
    assert calls == ["[mini/plain] done earlier: skipped", "freeze"]
    assert lines[0] == "mini/plain: BIOSSES 81.00 ± 1.00 (3 seeds); GAD 81.00 ± 1.00 (3 seeds)"
    assert lines[1] == "mini/freeze: BIOSSES 70.50 ± 0.71 (2 seeds); GAD not run"
    assert runner.pending(freeze) == {"BIOSSES": "todo", "GAD": "todo"}
    # tuned with these params: only seeds are missing, so tuning is not repeated
    tune = freeze.folder / "tune" / "BIOSSES"
    tune.mkdir(parents=True)
    (tune / "best.json").write_text("{}")
    one_seed = load_config(freeze.params_file, [*freeze.overrides, "finetune.seeds={default: 1}"])
    write_resolved_config(tune, one_seed, runner.SECTIONS)
    assert runner.pending(freeze)["BIOSSES"] == "tuned"
    # another recipe (a cap from the command line) is another result: everything is to run again
    capped = _plans(root, ["plain"], ("finetune.max_train_examples=16",))
    assert runner.pending(capped[0]) == {"BIOSSES": "todo", "GAD": "todo"}


def test_variants_run_in_parallel_as_processes_and_failures_are_named(tmp_path: Path) -> None:
    plans = _plans(_root(tmp_path))
    spawned: list[str] = []

    def spawn(plan: runner.VariantPlan) -> int:
        spawned.append(plan.variant)
        return 3 if plan.variant == "freeze" else 0

    with pytest.raises(StudyError, match=r"variants failed: freeze \(exit 3\)"):
        runner.run_study(plans, lambda p, _: pytest.fail("ran in-process"), jobs=2, spawn=spawn,
                         progress=lambda _: None)
    assert sorted(spawned) == ["freeze", "plain"]


def test_bad_names_are_one_clear_error(tmp_path: Path) -> None:
    root = _root(tmp_path)
    with pytest.raises(StudyError, match=r"unknown study 'nope'.*available: mini$"):
        runner.resolve("nope", root)
    with pytest.raises(StudyError, match=r"unknown --variant 'frozen'; variants: plain, freeze"):
        _plans(root, ["frozen"])
    with pytest.raises(StudyError, match=r"--set finetune.freeze_layers: the study mini varies this param"):
        _plans(root, extra=("finetune.freeze_layers=1",))
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "PYTHONPATH": str(REPO / "platform")}
    proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", "study", "run", "tagging", "--dry-run"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: unknown study 'tagging': no {root}/pipelines/studies/tagging.yaml; available: mini"]


def test_the_report_table_is_numpys_mean_and_std_of_the_runs(tmp_path: Path, monkeypatch) -> None:
    root = _root(tmp_path)
    plain, freeze = _plans(root)
    rng = np.random.default_rng(7)
    scores = {(v.variant, d): list(rng.normal(80, 2, 3)) for v in (plain, freeze) for d in ("BIOSSES", "GAD")}
    scores["freeze", "GAD"] = scores["freeze", "GAD"][:2]
    for (variant, d), values in scores.items():
        _finished(plain if variant == "plain" else freeze, d, values)
    runs, notes = collect(runner.resolve("mini", root)[0], root)
    assert notes == ["freeze / GAD: 2 of 3 seeds"] and sorted(runs) == ["freeze", "plain"]
    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    out = report(runner.resolve("mini", root)[0], root, bootstrap=0)
    assert out["markdown"] == root / "reports/studies/mini/mini.md" and out["plot"].suffix == ".png"
    result = json.loads(out["json"].read_text())
    for row in result["table"]:
        for d in ("BIOSSES", "GAD"):
            values = scores[row["variant"], d]
            assert row["cells"][d]["mean"] == pytest.approx(np.mean(values))
            assert row["cells"][d]["std"] == pytest.approx(np.std(values, ddof=1))
    assert "freeze / GAD: 2 of 3 seeds" in out["markdown"].read_text()

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("study-mini").experiment_id])
    assert run.info.run_name == "report" and run.data.tags["study.claim"] == result["claim"]["outcome"]
    assert run.data.metrics["mean/freeze/GAD"] == pytest.approx(np.mean(scores["freeze", "GAD"]))
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "study")) == [
        "study/mini.json", "study/mini.md", "study/mini.png"]

    # the report stage's pages end with the study: its claim, its table and its plot
    import base64

    from pubmedlm.report import leaderboard as lb
    from pubmedlm.studies.render import report_sections

    md, html_parts = report_sections(root)
    assert f"- [`mini`](../studies/mini/mini.md): the claim {result['claim']['outcome']}" in md
    page = lb.html_page(lb.published_columns(), {}, sections=html_parts)
    section = page[page.index("<h2>Studies</h2>"):]
    assert f"On our runs the claim {result['claim']['outcome']}." in section
    for (variant, d), values in scores.items():
        n = len(values)
        assert f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f} (n={n})" in section, (variant, d)
    assert base64.b64encode(out["plot"].read_bytes()).decode() in section
    assert report_sections(tmp_path / "elsewhere") == ([], [])


def test_a_report_without_the_baseline_says_what_to_run(tmp_path: Path) -> None:
    root = _root(tmp_path)
    _finished(_plans(root)[1], "BIOSSES", [70.0, 71.0, 72.0])
    with pytest.raises(StudyError, match=r"no results of the baseline 'plain'.*pubmedlm study run mini"):
        report(runner.resolve("mini", root)[0], root, bootstrap=0)
    runs, notes = collect(runner.resolve("mini", root)[0], root)
    assert list(runs) == ["freeze"] and notes == ["freeze / GAD: not run"]


@pytest.mark.integration
def test_a_two_variant_study_runs_resumes_and_reports(tmp_path: Path, mirror: Path) -> None:
    """BIOSSES (64 train, 16 dev, 20 test pairs), MiniLM, 1 epoch, 2 seeds per variant."""
    root = _root(tmp_path, datasets="BIOSSES", seeds=2)
    prepare_blurb(root, mirror, {
        "corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]},
        "blurb_data": {"datasets": ["BIOSSES"]},
        "finetune": {"max_train_examples": 32, "max_length": 64, "attention_dropout": 0.0},
        "runtime": {"progress": False, "cpus_per_worker": 2, "micro_batch_size": 16}})
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "PUBMEDLM_DATA_MIRROR": str(mirror),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "COLUMNS": "200"}

    def cli(*args: str, command: str = "study") -> str:
        proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", command, *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        return proc.stdout + proc.stderr

    out = cli("run", "mini")
    assert "mini/plain: BIOSSES" in out and "mini/freeze: BIOSSES" in out
    again = cli("run", "mini")  # resumed: nothing left to do
    assert "[mini/plain] done earlier: skipped" in again and "[mini/freeze] done earlier: skipped" in again
    cli("report", "mini", "--bootstrap", "50")
    result = json.loads((root / "reports/studies/mini/mini.json").read_text())
    assert (root / "reports/studies/mini/mini.png").read_bytes()[:4] == b"\x89PNG"
    assert result["missing"] == [] and [d["variant"] for d in result["differences"]] == ["freeze"]

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("study-mini").experiment_id], max_results=500)
    variants = {r.info.run_name: r for r in runs if r.data.tags.get("pubmedlm.kind") == "variant"}
    assert sorted(variants) == ["freeze", "plain"]  # the rerun reopened nothing new
    for row in result["table"]:
        parent = variants[row["variant"]]
        assert parent.info.status == "FINISHED" and parent.data.tags["pubmedlm.study"] == "mini"
        (task,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert task.data.tags["pubmedlm.kind"] == "task"
        assert task.data.tags["pubmedlm.variant"] == row["variant"]
        seeds = [r.data.metrics["test_score"] for r in runs
                 if r.data.tags.get("mlflow.parentRunId") == task.info.run_id
                 and r.data.tags.get("pubmedlm.kind") == "seed"]
        assert len(seeds) == 2  # what MLflow recorded of the seeds is what the report summarises
        assert row["cells"]["BIOSSES"]["mean"] == pytest.approx(np.mean(seeds))
        assert row["cells"]["BIOSSES"]["std"] == pytest.approx(np.std(seeds, ddof=1))
    assert [r.info.run_name for r in runs if r.data.tags.get("pubmedlm.kind") == "report"] == ["report"]
    # the report stage's page ends with the study: what its runs scored, the claim's outcome on them
    cli(command="report")
    page = (root / "reports/report/index.html").read_text()
    section = page[page.index("<h2>Studies</h2>"):]
    assert f"On our runs the claim {result['claim']['outcome']}." in section
    for row in result["table"]:
        cell = row["cells"]["BIOSSES"]
        assert f"<td>{row['variant']}</td><td>{cell['mean']:.2f} ± {cell['std']:.2f} (n=2)</td>" in section
