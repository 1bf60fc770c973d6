"""The hyperparameter search of one task: Ray Tune running `fit` trials, Optuna's TPE choosing
them, ASHA stopping weak ones on the per-epoch dev metric.

Search and scheduler rank trials on `rank_score`: the dev metric with ties broken by the epoch's
mean training loss (`dev - TIE_BREAK * train_loss`). Early in a small run, every trial of an NER
task often scores 0 entity F1; without a tie-break ASHA sees them all at its cut-off and stops
none, and TPE learns nothing from them. The shift (at most a few thousandths of a point) cannot
reorder dev scores that differ by a meaningful amount; the best trial is chosen on the dev metric.

Each trial is a Ray Tune function trainable with the resources of one Ray worker
(`runtime.cpus_per_worker`, `gpus_per_worker`); `tune.max_concurrent` of them run at once. A trial
opens its own MLflow child run under the task's parent run and logs the dev metric of every
epoch. After the search the driver closes the runs Ray stopped (ASHA) or lost, and builds the
trial table from Tune's results: a crashed trial is a row with status `failed` and its error, and
the search goes on without it.

`tune.budget_epochs` caps the whole search's compute in trial-epochs (`budget.EpochBudget`): when
it is spent, the running trial stops (status `stopped early`) and no new one starts. Async ASHA
always runs the first trial, and every trial that leads its rung, to the end, so with few trials a
budget is what holds a search below a given share of a grid's compute.

`tune.fixed` replaces all of this with `fixed_search`: the same outcome's shape, the fixed
configuration chosen, no trial run.

The Tune experiment is named by a digest of everything that decides its result, under
`runtime.storage_path`, so rerunning an interrupted search resumes it (`Tuner.restore`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pubmedlm.config import SearchSpace, TuneConfig
from pubmedlm.finetune.features import FinetuneError
from pubmedlm.finetune.fit import HPARAMS, HParams, Settings, fit, load_task
from pubmedlm.infra.tracking import RunRef

METRIC = "dev_score"
RANK = "rank_score"
TIE_BREAK = 1e-3
OVERHEADS = ("overhead_start_s", "overhead_end_s", "eval_s")
COSTS = ("time_total_s", "tokens")  # Ray's seconds from the trial's start to its last report; tokens trained
# Fault injection for resilience tests: a comma-separated list of trial numbers (0-based, in
# creation order) that raise at start. Unset in normal use.
FAIL_TRIALS_ENV = "PUBMEDLM_FAIL_TRIALS"


def param_space(space: SearchSpace) -> dict[str, Any]:
    """Ray Tune domains for the search space (OptunaSearch converts them to Optuna distributions)."""
    from ray import tune

    def floats(r) -> Any:
        if r.low == r.high:
            return tune.choice([r.low])
        return tune.loguniform(r.low, r.high) if r.log else tune.uniform(r.low, r.high)

    lo, hi = space.epochs
    return {
        "learning_rate": floats(space.learning_rate),
        "batch_size": tune.choice(list(space.batch_size)),
        "epochs": tune.choice([lo]) if lo == hi else tune.randint(lo, hi + 1),
        "warmup_ratio": floats(space.warmup_ratio),
        "weight_decay": floats(space.weight_decay),
        "dropout": floats(space.dropout),
    }


@dataclass(frozen=True)
class SearchJob:
    """What every trial of one task's search shares (handed to each trial by Ray Tune)."""

    settings: Settings
    seed: int
    model_id: str
    """The hashes of the weights and the data: with the settings, names the Tune experiment."""
    parent: RunRef
    """The task's MLflow run; each trial is a child run of it."""


def trial(config: dict[str, Any], job: SearchJob) -> None:
    """One Tune trial: fine-tune with `config`, report the dev metric after every epoch, and the trial's
    overhead: seconds from its start to its first optimizer step (`overhead_start_s`: tracking run,
    data, model) and from its last step to its final report (`overhead_end_s`: the last dev scoring,
    `eval_s` of it, and the tracking call)."""
    from ray import tune

    from pubmedlm.infra.tracking import ChildRun

    started = time.perf_counter()
    trial_id = tune.get_context().get_trial_id()
    number = trial_number(tune.get_context().get_trial_name())
    hp = HParams.from_dict(config)
    run = ChildRun(job.parent.uri, job.parent.experiment_id, job.parent.run_id, f"trial {number}",
                   params=hp.as_dict(), tags={"ray.trial_id": trial_id, "ray.trial_name": f"trial-{number}",
                                              "pubmedlm.kind": "trial",
                                              "pubmedlm.task": job.settings.task})
    try:
        if str(number) in os.environ.get(FAIL_TRIALS_ENV, "").split(","):
            raise RuntimeError(f"injected failure of trial {number} ({FAIL_TRIALS_ENV})")
        data = load_task(job.settings, ("train", "dev"))

        def on_epoch(epoch: int, dev: float, stats: dict[str, float]) -> None:
            entered = time.perf_counter()
            run.log_metrics({METRIC: dev, **stats}, step=epoch)
            loss = min(stats["train_loss"], 10.0) if math.isfinite(stats["train_loss"]) else 10.0
            # last step -> this report: the dev scoring (`eval_s`) and the tracking call; the last
            # epoch's is the trial's
            stats["overhead_end_s"] = stats["eval_s"] + time.perf_counter() - entered
            tune.report({METRIC: dev, RANK: dev - TIE_BREAK * loss, "epoch": epoch, **stats})

        fit(data, hp, job.seed, job.settings, on_epoch, started=started)
    except Exception as e:
        run.set_tags({"error": f"{type(e).__name__}: {e}"[:5000]})
        run.end("FAILED")
        raise
    run.end("FINISHED")


def trial_name(t) -> str:
    """`trial-<n>`, n counting from 0 in creation order (the search generator's tag starts with n+1)."""
    return f"trial-{int(t.experiment_tag.split('_', 1)[0]) - 1}"


def trial_number(name: str) -> int:
    return int(name.rsplit("-", 1)[-1])


def _experiment_name(job: SearchJob, tune_cfg: TuneConfig) -> str:
    import hashlib
    import json

    key = json.dumps({"settings": job.settings.identity(), "seed": job.seed,
                      "tune": tune_cfg.model_dump(mode="json", exclude={"fixed"}), "model_id": job.model_id},
                     sort_keys=True, default=str)
    return f"tune-{job.settings.task}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _tuner(job: SearchJob, tune_cfg: TuneConfig, resources: dict[str, float], storage: str, name: str):
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    from pubmedlm.finetune.budget import EpochBudget

    trainable = tune.with_resources(tune.with_parameters(trial, job=job), resources)
    path = f"{storage.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False)
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=tune_cfg.search.epochs[1],
                               grace_period=tune_cfg.grace_period, reduction_factor=tune_cfg.reduction_factor)
                 if tune_cfg.scheduler == "asha" else FIFOScheduler())
    return tune.Tuner(
        trainable,
        param_space=param_space(tune_cfg.search),
        tune_config=tune.TuneConfig(
            metric=RANK, mode="max", search_alg=OptunaSearch(sampler=TPESampler(
                n_startup_trials=tune_cfg.startup_trials, seed=tune_cfg.seed)), scheduler=scheduler,
            num_samples=tune_cfg.num_samples, max_concurrent_trials=tune_cfg.max_concurrent,
            reuse_actors=True, trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=1,
            stop=EpochBudget(tune_cfg.budget_epochs) if tune_cfg.budget_epochs else None,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
    )


def _rows(grid) -> list[dict[str, Any]]:
    rows = []
    for result in grid:
        name = Path(result.path).name
        config = {k: result.config[k] for k in HPARAMS if k in result.config}
        frame = result.metrics_dataframe
        scores = [] if frame is None or METRIC not in frame else [float(x) for x in frame[METRIC].dropna()]
        status = ("failed" if result.error
                  else ("completed" if len(scores) >= int(config["epochs"]) else "stopped early"))
        rows.append({
            "trial": trial_number(name), "trial_name": name, "status": status, **config,
            "epochs_run": len(scores), "dev_score": scores[-1] if scores else None,
            **{k: float(frame[k].dropna().iloc[-1]) if frame is not None and k in frame else None
               for k in (*OVERHEADS, *COSTS)},
            "best_epoch_dev_score": max(scores) if scores else None, "dev_curve": scores,
            "error": (str(result.error).strip().splitlines() or [""])[-1][:500] if result.error else "",
        })
    return sorted(rows, key=lambda r: r["trial"])


def _close_runs(parent: RunRef, rows: list[dict[str, Any]]) -> None:
    """Close the child runs a trial could not close itself (stopped by ASHA, or its process died)."""
    from pubmedlm.infra.tracking import child_runs, end_run

    by_trial = {r["trial_name"]: r for r in rows}
    for run in child_runs(parent.uri, parent.experiment_id, parent.run_id):
        row = by_trial.get(run["tags"].get("ray.trial_name", ""))
        if row is None:
            continue
        tags = {"tune.status": row["status"], "tune.epochs_run": row["epochs_run"]}
        if run["status"] == "RUNNING":
            end_run(parent.uri, run["run_id"], "FAILED" if row["status"] == "failed" else "FINISHED",
                    tags | ({"error": row["error"]} if row["error"] else {}))
        else:
            end_run(parent.uri, run["run_id"], run["status"], tags)


def best_trial(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The best dev score among trials that ran all their epochs (else among all that reported)."""
    done = [r for r in rows if r["status"] == "completed"] or [r for r in rows if r["dev_score"] is not None]
    if not done:
        errors = "; ".join(sorted({r["error"] for r in rows if r["error"]}))[:1000]
        raise FinetuneError(f"all {len(rows)} trials failed: {errors}")
    return max(done, key=lambda r: (r["dev_score"], -r["trial"]))


def fixed_search(hp: HParams) -> dict[str, Any]:
    """`tune.fixed`: the outcome of a search that runs nothing, in `run_search`'s shape. The chosen row
    is the fixed configuration, with no dev score; no trial, no trial-epoch, no Tune experiment."""
    return {"trials": [], "best": {**hp.as_dict(), "trial": None, "dev_score": None}, "trial_epochs": 0,
            "wall_seconds": 0.0, "experiment": None, "fixed": True}


def run_search(settings: Settings, seed: int, tune_cfg: TuneConfig, resources: dict[str, float], storage: str,
               parent: RunRef, model_id: str) -> dict[str, Any]:
    """Search one task; returns {"trials": rows, "best": row, "trial_epochs", "wall_seconds", "experiment",
    "fixed": False}.

    `model_id` identifies the weights and data (hashes): with the settings it names the Tune
    experiment, so only an identical search is resumed."""
    # The search space was checked with the config (`config.SearchSpace`). Fail before Ray: the data
    # loads and the model matches the task.
    load_task(settings, ("dev",))
    job = SearchJob(settings, seed, model_id, parent)
    name = _experiment_name(job, tune_cfg)
    t0 = time.time()
    grid = _tuner(job, tune_cfg, resources, storage, name).fit()
    rows = _rows(grid)
    _close_runs(parent, rows)
    return {"trials": rows, "best": best_trial(rows), "trial_epochs": sum(r["epochs_run"] for r in rows),
            "wall_seconds": time.time() - t0, "experiment": f"{storage.rstrip('/')}/{name}", "fixed": False}


__all__ = ["FAIL_TRIALS_ENV", "METRIC", "RANK", "TIE_BREAK", "SearchJob", "best_trial", "fixed_search",
           "param_space", "run_search", "trial"]
