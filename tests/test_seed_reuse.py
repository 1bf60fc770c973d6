"""A seed read back from an earlier run (same encoder, data, settings, hyperparameters) is recorded
under the current task run too: every task run in MLflow lists all its seeds, once."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from mlflow.tracking import MlflowClient

from pubmedlm.finetune.fit import HParams
from pubmedlm.finetune.seeds import SEED_RESULT, train_seeds
from pubmedlm.infra.tracking import RunRef

HP = HParams(learning_rate=3e-5, batch_size=16, epochs=2, warmup_ratio=0.1, weight_decay=0.01, dropout=0.1)


def _seeds(client: MlflowClient, experiment: str, parent: str) -> list:
    return [r for r in client.search_runs([experiment])
            if r.data.tags.get("mlflow.parentRunId") == parent]


def test_reused_seeds_get_a_child_run_under_the_new_parent_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    first = client.create_run(experiment).info.run_id
    work = tmp_path / "work"
    for k in range(2):
        (work / f"seed-{k}").mkdir(parents=True)
        (work / f"seed-{k}" / SEED_RESULT).write_text(json.dumps(
            {"index": k, "seed": 1000 + k, "dev_score": 50.0 + k, "test_score": 40.0 + k,
             "dev_curve": [45.0, 50.0 + k], "run_id": f"trained-{k}", "parent_run_id": first}))
    settings = SimpleNamespace(task="GAD")
    resources = {"cpu": 1}

    # the run the seeds were trained in: read back, nothing new recorded
    got = train_seeds(settings, HP, 2, 1000, work, RunRef(uri, experiment, first), resources)
    assert [r["test_score"] for r in got] == [40.0, 41.0]
    assert _seeds(client, experiment, first) == []

    # another task run with the same inputs: each seed recorded once under it, pointing at its origin
    second = client.create_run(experiment).info.run_id
    train_seeds(settings, HP, 2, 1000, work, RunRef(uri, experiment, second), resources)
    kids = sorted(_seeds(client, experiment, second), key=lambda r: r.info.run_name)
    assert [(r.info.run_name, r.data.tags["pubmedlm.kind"], r.data.tags["pubmedlm.reused_from"],
             r.data.metrics["test_score"], r.data.metrics["final_dev_score"], r.info.status)
            for r in kids] == [("seed 0", "seed", "trained-0", 40.0, 50.0, "FINISHED"),
                               ("seed 1", "seed", "trained-1", 41.0, 51.0, "FINISHED")]
    assert kids[0].data.params["seed"] == "1000" and float(kids[0].data.params["learning_rate"]) == 3e-5
