"""The `tune` stage, one per task (`dvc.yaml`: `foreach` over finetune.datasets): the
hyperparameter search on dev (Ray Tune + Optuna TPE + ASHA, `finetune.search`).

Opens the task's MLflow parent run (named after the task, tagged with task and model), under which
every trial is a child run; `finetune` later finds it by those tags and adds its seeds to it.
`best.json` holds only the recipe's outcome (no tracking URI, run id or machine path), so the same
outputs work against another tracking server. A task that
blurb-data could not prepare is written out as `unavailable` with the reason, so the pipeline
goes on and the BLURB score says it is partial.

With `tune.fixed` set, nothing is searched (no Ray, no trial): best.json holds the fixed
configuration marked `"fixed": true` (no dev score), trials.json is empty, the metrics say
`fixed: true`, and the task's run is tagged `pubmedlm.hparams=fixed` (`search` otherwise);
finetune reads it as it reads a searched one.

Outputs: `data/tune/<task>/` (best.json, trials.csv, trials.json, config.yaml; a trial's MLflow run
is the task run's child tagged `ray.trial_name`) and
`metrics/tune/<task>.json`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pubmedlm.config import Config, HParams
from pubmedlm.finetune import plan
from pubmedlm.infra.lineage import content_id
from pubmedlm.project import atomic_dir, data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult, write_resolved_config
from pubmedlm.text.models import model_label, resolve_encoder

STAGE = "tune"
SECTIONS = ("finetune", "tune")
TABLE_COLUMNS = ("trial", "status", "learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay",
                 "dropout", "epochs_run", "dev_score", "best_epoch_dev_score", "error")


def _write_outputs(folder: Path, cfg: Config, best: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    write_json(folder / "best.json", best)
    write_json(folder / "trials.json", trials)
    with open(folder / "trials.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(trials)
    write_resolved_config(folder, cfg, SECTIONS)


def run_task(cfg: Config, task: str, params_file: str | Path = "params.yaml", *, model: str | None = None,
             out_base: Path | None = None, experiment: str | None = None,
             run_tags: dict[str, str] | None = None) -> StageResult:
    """Search one task. `out_base` (default: the project's data/) holds tune/<task>/; `run_tags`
    join the task run's tags (a study's variant; `finetune` finds the run by them too)."""
    from pubmedlm.finetune.search import fixed_search, run_search
    from pubmedlm.infra import cost
    from pubmedlm.infra.ray_runtime import init_ray, storage_path
    from pubmedlm.infra.tracking import stage_run, task_run_tags

    root = project_root()
    task = plan.check_task(task, cfg)
    gold = data_dir("blurb_data", root)
    out_dir = (out_base / STAGE / task) if out_base else data_dir(STAGE, root) / task
    mpath = ((out_base / "metrics" / STAGE / f"{task}.json") if out_base
             else metrics_path(f"{STAGE}/{task}", root))
    missing = plan.availability(gold, task, root)
    if missing:
        best = {"task": task, "status": "unavailable", "reason": missing}
        with atomic_dir(out_dir) as tmp:
            _write_outputs(tmp, cfg, best, [])
        write_json(mpath, {"status": "unavailable"})
        return StageResult(STAGE, {"best": out_dir / "best.json"}, best)
    encoder = resolve_encoder(model or cfg.finetune.model, root)
    settings = plan.settings(cfg, task, encoder, gold)
    label = model_label(model or cfg.finetune.model)
    fixed = cfg.tune.fixed_for(task)
    tags = {**task_run_tags(task, label), **(run_tags or {}), "pubmedlm.model_path": encoder,
            "pubmedlm.hparams": "search" if fixed is None else "fixed"}
    with stage_run(STAGE, cfg, SECTIONS, params_file, run_name=task, experiment=experiment,
                   tags=tags) as tracked:
        tracked.add_inputs([p for p in (Path("data/blurb_data"), Path("data/encoder"))
                            if (root / p).exists()])
        if fixed is not None:  # no search: no Ray, no trial
            search = fixed_search(fixed)
        else:
            init_ray(cfg)
            search = run_search(settings, cfg.tune.seed, cfg.tune, plan.resources(cfg),
                                storage_path(cfg, root), tracked.ref,
                                f"{content_id(encoder)}|{content_id(str(gold / task))}")
        best, metrics = outcome(task, label, search, plan.flags(cfg, gold, task))
        with atomic_dir(out_dir) as tmp:
            _write_outputs(tmp, cfg, best, search["trials"])
        spent = cost.entry(cfg.runtime, sum(t["time_total_s"] or 0.0 for t in search["trials"]),
                           sum(int(t["tokens"] or 0) for t in search["trials"]), search["wall_seconds"])
        write_json(mpath, {**metrics, cost.KEY: spent})
        tracked.log_metrics({f"tune/{k.replace(' ', '_')}": v for k, v in metrics.items() if k != "fixed"})
        tracked.log_cost(spent, f"{STAGE}/")
        tracked.set_tags({**{f"best.{k}": v for k, v in best["hparams"].items()},
                          **({"ray.tune_experiment": search["experiment"]} if search["experiment"] else {})})
        tracked.log_artifact(out_dir / "trials.csv", "tune")
        tracked.log_artifact(out_dir / "best.json", "tune")
    return StageResult(STAGE, {"best": out_dir / "best.json", "trials": out_dir / "trials.csv",
                               "metrics": mpath}, best, tracked.run_id)


def outcome(task: str, label: str, search: dict[str, Any],
            flags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """best.json and the metrics of a task's search (`run_search`) or fixed configuration
    (`fixed_search`: marked `"fixed": true`, no dev score, no trial)."""
    chosen, trials = search["best"], search["trials"]
    counts = {s: sum(r["status"] == s for r in trials) for s in ("completed", "stopped early", "failed")}
    best = {"task": task, "status": "ok", "model": label, "hparams": HParams.from_dict(chosen).as_dict(),
            "fixed": search["fixed"], "dev_score": chosen["dev_score"], "best_trial": chosen["trial"],
            "trials": len(trials), "trial_counts": counts, "trial_epochs": search["trial_epochs"],
            "wall_seconds": search["wall_seconds"], "flags": flags}
    metrics = {"fixed": search["fixed"],
               **({} if chosen["dev_score"] is None else {"best_dev_score": chosen["dev_score"]}),
               "trials": len(trials), **counts, "trial_epochs": search["trial_epochs"],
               "wall_seconds": search["wall_seconds"]}
    return best, metrics


def run(cfg: Config, params_file: str | Path = "params.yaml", task: str | None = None) -> StageResult:
    return run_task(cfg, plan.require_task(STAGE, task, cfg), params_file)


def summary(result: StageResult) -> str:
    best = result.metrics
    if best.get("status") != "ok":
        return f"{best['task']}: unavailable ({best.get('reason')})"
    if best.get("fixed"):
        return f"{best['task']}: fixed hyperparameters (tune.fixed, no search) {json.dumps(best['hparams'])}"
    return (f"{best['task']}: best dev {best['dev_score']:.2f} with {json.dumps(best['hparams'])} "
            f"({best['trials']} trials, {best['trial_epochs']} trial-epochs, {best['wall_seconds']:.0f} s)")
