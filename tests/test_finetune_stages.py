"""The tune / finetune / evaluate stages and `pubmedlm blurb`, run as commands on the real data
with the real MiniLM, tracked in a real MLflow store: trials and seeds nested under one parent run
per task, a crashing trial recorded as failed while the search goes on, seed predictions that the
independent prediction scorer scores the same, a rerun that reuses finished seeds, and every
available dataset scored (tiny caps, flagged not comparable) with the unavailable ones named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import prepare_blurb
from pubmedlm.blurb.predictions import score_predictions

pytestmark = pytest.mark.integration

TINY = {
    "finetune": {"model": "minilm", "max_train_examples": 24, "max_eval_examples": 24, "max_length": 64,
                 "seeds": {"default": 1}, "attention_dropout": 0.0},
    "tune": {"num_samples": 2,
             "search": {"epochs": [1, 1], "learning_rate": {"low": 3e-5, "high": 1e-4, "log": True}}},
    "runtime": {"progress": False, "cpus_per_worker": 2, "micro_batch_size": 16},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Iterator[Path]:
    """A project with every BLURB dataset the mirror has prepared (EBM PICO on the proxy split)."""
    root = tmp_path_factory.mktemp("finetune")
    prepare_blurb(root, mirror, {"corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]},
                                 "blurb_data": {"pico_proxy_from_dev": True}, **TINY})
    yield root


def _cli(root: Path, mirror: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "PUBMEDLM_DATA_MIRROR": str(mirror),
                "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", *args], cwd=root, env=full_env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def _runs(root: Path, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=5000)


def test_failed_trial_is_recorded_and_seed_predictions_score_the_same(root: Path, mirror: Path) -> None:
    # BIOSSES without the eval cap (16 dev, 20 test pairs): the whole test split is predicted.
    sets = ["--set", "finetune.max_eval_examples=null", "--set", "tune.num_samples=3", "--set",
            "finetune.seeds={default: 2}"]
    _cli(root, mirror, "tune", "--task", "BIOSSES", *sets, env={"PUBMEDLM_FAIL_TRIALS": "1"})
    trials = json.loads((root / "data/tune/BIOSSES/trials.json").read_text())
    assert ([t["status"] for t in trials][1] == "failed"
            and "injected failure of trial 1" in trials[1]["error"])
    assert [t["status"] for t in trials].count("completed") == 2
    best_text = (root / "data/tune/BIOSSES/best.json").read_text()
    best = json.loads(best_text)
    assert best["best_trial"] != 1 and best["trial_counts"]["failed"] == 1
    assert best["flags"]["capped"] and "not comparable" in best["flags"]["note"]
    # a versioned output holds the recipe's outcome only: no tracking URI, run id or machine path
    assert not {"parent_run_id", "experiment_id", "tracking_uri", "model_path"} & set(best)
    assert str(root) not in best_text and "sqlite" not in best_text

    _cli(root, mirror, "finetune", "--task", "BIOSSES", *sets)
    results = json.loads((root / "data/finetune/BIOSSES/results.json").read_text())
    assert [s["index"] for s in results["seeds"]] == [0, 1]
    for seed in results["seeds"]:
        scored = score_predictions(root / "data/blurb_data",
                                   root / f"data/finetune/BIOSSES/predictions/seed-{seed['index']}/test")
        assert scored["datasets"]["BIOSSES"]["score"] == pytest.approx(seed["test_score"], abs=1e-9)
    assert results["test"]["mean"] == pytest.approx(sum(s["test_score"] for s in results["seeds"]) / 2)
    # the cost ledger: the seeds' and the trials' seconds and tokens
    spent = json.loads((root / "metrics/finetune/BIOSSES.json").read_text())["cost"]
    assert spent["device"] == "cpu" and spent["tokens"] == sum(s["tokens"] for s in results["seeds"]) > 0
    assert spent["device_seconds"] >= sum(s["train_seconds"] for s in results["seeds"]) > 0
    searched = json.loads((root / "metrics/tune/BIOSSES.json").read_text())["cost"]
    assert searched["tokens"] == sum(t["tokens"] or 0 for t in trials) > 0

    # MLflow: one parent run for the task, its three trials (one FAILED) and two seeds nested in it.
    runs = _runs(root, "pubmedlm")
    parents = [r for r in runs
               if r.data.tags.get("pubmedlm.kind") == "task" and r.data.tags["pubmedlm.task"] == "BIOSSES"]
    assert len(parents) == 1  # finetune found the run tune opened, by its tags
    parent = parents[0]
    assert parent.info.run_name == "BIOSSES" and parent.info.status == "FINISHED"
    assert parent.data.metrics["finetune/test_mean"] == pytest.approx(results["test"]["mean"])
    assert parent.data.metrics["finetune/cost/device_seconds"] == pytest.approx(spent["device_seconds"])
    assert parent.data.metrics["tune/cost/tokens"] == searched["tokens"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    kinds = sorted((r.data.tags["pubmedlm.kind"], r.info.status) for r in children)
    assert kinds == [("seed", "FINISHED")] * 2 + [("trial", "FAILED")] + [("trial", "FINISHED")] * 2

    # The best-dev seed's model is a plain HF model that loads without our code.
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(root / "data/finetune/BIOSSES/model")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"

    # A rerun reuses the finished seeds (the same scores and training times, no new MLflow seed runs).
    _cli(root, mirror, "finetune", "--task", "BIOSSES", *sets)
    again = json.loads((root / "data/finetune/BIOSSES/results.json").read_text())
    assert again["seeds"] == results["seeds"]
    seeds = [r for r in _runs(root, "pubmedlm") if r.data.tags.get("pubmedlm.kind") == "seed"]
    assert len(seeds) == 2


def test_a_project_moved_to_another_tracking_server_finetunes_against_it(root: Path, mirror: Path) -> None:
    """The outputs name no server: with MLFLOW_TRACKING_URI changed, finetune records its run on the
    new server (opening the task's run there) and sends nothing to the old one."""
    from mlflow.tracking import MlflowClient

    sets = ["--set", "tune.num_samples=1"]
    _cli(root, mirror, "tune", "--task", "GAD", *sets)
    before = len(_runs(root, "pubmedlm"))
    other = f"sqlite:///{root / 'moved.db'}"
    _cli(root, mirror, "finetune", "--task", "GAD", *sets, env={"MLFLOW_TRACKING_URI": other})
    assert len(_runs(root, "pubmedlm")) == before
    client = MlflowClient(tracking_uri=other)
    runs = client.search_runs([client.get_experiment_by_name("pubmedlm").experiment_id])
    parents = [r for r in runs if r.data.tags.get("pubmedlm.kind") == "task"]
    assert [(p.info.run_name, p.data.tags["pubmedlm.task"], p.data.tags["pubmedlm.model"])
            for p in parents] == [("GAD", "GAD", "minilm")]
    results = json.loads((root / "data/finetune/GAD/results.json").read_text())
    assert parents[0].data.metrics["finetune/test_mean"] == pytest.approx(results["test"]["mean"])
    seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert [r.data.tags["pubmedlm.kind"] for r in seeds] == ["seed"]


def test_search_stops_when_its_epoch_budget_is_spent(root: Path, mirror: Path) -> None:
    # Four 2-epoch trials would spend 8 trial-epochs; a budget of 3 ends the search during trial 1.
    sets = ["--set", "tune.num_samples=4", "--set", "tune.search.epochs=[2, 2]", "--set",
            "tune.budget_epochs=3", "--set", "tune.scheduler=fifo"]
    _cli(root, mirror, "tune", "--task", "GAD", *sets)
    trials = json.loads((root / "data/tune/GAD/trials.json").read_text())
    assert [(t["trial"], t["status"], t["epochs_run"]) for t in trials] == [
        (0, "completed", 2), (1, "stopped early", 1)]
    best = json.loads((root / "data/tune/GAD/best.json").read_text())
    assert best["trial_epochs"] == 3 and best["best_trial"] == 0 and best["hparams"]["epochs"] == 2


def test_blurb_command_scores_every_available_dataset(root: Path, mirror: Path) -> None:
    out = _cli(root, mirror, "blurb", "--model", "minilm")
    base = root / "data/blurb/minilm"
    prepared = sorted(p.name for p in (root / "data/blurb_data").iterdir() if (p / "meta.json").is_file())
    assert len(prepared) == 11
    summary = json.loads((base / "metrics/evaluate.json").read_text())
    assert sorted(summary["datasets"]) == prepared
    assert set(summary["not_scored"]) == {"BC2GM", "BioASQ"}
    assert summary["blurb"]["partial"] and summary["not_comparable"]
    assert summary["datasets"]["EBM-PICO"]["proxy"]
    report = (base / "reports/blurb.md").read_text()
    assert "BLURB (partial" in report and "not comparable" in report and "PubMedBERT" in report
    assert "blurb-minilm" in out

    runs = _runs(root, "blurb-minilm")
    parents = {r.info.run_name: r for r in runs if r.data.tags.get("pubmedlm.kind") == "task"}
    assert sorted(parents) == prepared
    for name, parent in parents.items():
        kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(r.data.tags["pubmedlm.kind"] for r in kids) == ["seed", "trial", "trial"], name
        assert all(r.info.status == "FINISHED" for r in kids), name
        assert parent.data.tags["pubmedlm.model"] == "minilm"
    evaluate = [r for r in runs if r.data.tags.get("pubmedlm.stage") == "evaluate"]
    assert (len(evaluate) == 1
            and evaluate[0].data.metrics["blurb"] == pytest.approx(summary["blurb"]["blurb"]))
