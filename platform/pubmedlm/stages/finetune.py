"""The `finetune` stage, one per task: the tuned configuration trained with N seeds
(`finetune.seeds`; paper: 10 for BIOSSES, BioASQ, PubMedQA, 5 for the rest), each scored on dev
and test, test reported as mean ± std over the seeds, every seed's predictions kept, and the
best-dev seed's model saved in HF format for the tasks.

Seeds run as Ray tasks (`finetune.seeds`), each an MLflow child run of the task's parent run,
found on the configured tracking server by its tags (opened by `tune`; on a server that has none,
e.g. a project moved to a team server, a new parent run is opened). A seed's finished work is kept
under `runtime.storage_path`, so a rerun after a crash trains only the seeds still missing.

Outputs: `data/finetune/<task>/` (results.json, predictions/, model/, config.yaml) and
`metrics/finetune/<task>.json`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from pubmedlm.config import Config
from pubmedlm.finetune import plan
from pubmedlm.finetune.features import FinetuneError
from pubmedlm.finetune.fit import HParams
from pubmedlm.project import atomic_dir, data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult, write_resolved_config
from pubmedlm.text.models import model_label, resolve_encoder

STAGE = "finetune"
SECTIONS = ("finetune", "tune")


def _seed_base(cfg: Config, root: Path) -> Path:
    from pubmedlm.infra.ray_runtime import storage_path

    base = storage_path(cfg, root)
    # seeds write plain files; remote storage keeps them under the local cache instead
    return root / cfg.runtime.cache_dir / "finetune" if "://" in base else Path(base)


def _read_best(tune_dir: Path, task: str, label: str) -> dict[str, Any]:
    path = tune_dir / "best.json"
    if not path.is_file():
        raise FinetuneError(f"{task}: no tuned configuration ({path}); run `pubmedlm tune --task {task}`")
    best = json.loads(path.read_text())
    if best["status"] == "ok" and best["model"] != label:
        raise FinetuneError(f"{task}: {path} was searched for model {best['model']!r}, "
                            f"but the model is {label!r}; rerun `pubmedlm tune --task {task}`")
    return best


def _publish(out_dir: Path, cfg: Config, results: dict[str, Any], work: Path | None = None) -> None:
    """Write the task's output folder; with seeds, their predictions and the best-dev seed's model."""
    with atomic_dir(out_dir) as tmp:
        for r in results.get("seeds", []):
            shutil.copytree(work / f"seed-{r['index']}" / "predictions",
                            tmp / "predictions" / f"seed-{r['index']}")
        if work is not None:
            shutil.copytree(work / f"seed-{results['best_seed']}" / "model", tmp / "model")
        write_json(tmp / "results.json", results)
        write_resolved_config(tmp, cfg, SECTIONS)
    for r in results.get("seeds", []):  # only the best-dev seed's weights are kept (BERT-base: 440 MB a seed)
        if r["index"] != results["best_seed"]:
            shutil.rmtree(work / f"seed-{r['index']}" / "model", ignore_errors=True)


def run_task(cfg: Config, task: str, params_file: str | Path = "params.yaml", *, model: str | None = None,
             out_base: Path | None = None, experiment: str | None = None,
             run_tags: dict[str, str] | None = None) -> StageResult:
    """Fine-tune one task with its tuned configuration; model, out_base, experiment, run_tags as in tune."""
    from pubmedlm.blurb import tasks
    from pubmedlm.finetune.seeds import summarize, train_seeds, work_dir
    from pubmedlm.infra import cost
    from pubmedlm.infra.ray_runtime import init_ray
    from pubmedlm.infra.tracking import find_task_run, stage_run, task_run_tags
    from pubmedlm.infra.tracking_uri import tracking_uri

    started = time.perf_counter()
    root, task = project_root(), plan.check_task(task, cfg)
    out_dir = (base := out_base or root / "data") / STAGE / task
    mpath = ((out_base / "metrics" / STAGE / f"{task}.json") if out_base
             else metrics_path(f"{STAGE}/{task}", root))
    label = model_label(model or cfg.finetune.model)
    best = _read_best(base / "tune" / task, task, label)
    if best["status"] != "ok":
        results = {"task": task, "status": best["status"], "reason": best.get("reason", "")}
        _publish(out_dir, cfg, results)
        write_json(mpath, {"status": best["status"]})
        return StageResult(STAGE, {"results": out_dir / "results.json"}, results)
    gold = data_dir("blurb_data", root)
    settings = plan.settings(cfg, task, resolve_encoder(model or cfg.finetune.model, root), gold)
    hp = HParams.from_dict(best["hparams"])
    experiment = experiment or cfg.runtime.mlflow_experiment
    parent = find_task_run(tracking_uri(cfg, root), experiment, task, label, run_tags)
    opened = ({"run_name": task, "tags": {**task_run_tags(task, label), **(run_tags or {})}} if parent is None
              else {"resume_run_id": parent.run_id})
    with stage_run(STAGE, cfg, SECTIONS, params_file, experiment=experiment, **opened) as tracked:
        init_ray(cfg)
        work = work_dir(_seed_base(cfg, root), settings, hp, cfg.finetune.seed)
        seeds = train_seeds(settings, hp, cfg.finetune.seeds_for(task), cfg.finetune.seed, work, tracked.ref,
                            plan.resources(cfg))
        winner = max(seeds, key=lambda r: (r["dev_score"], -r["index"]))
        results = {
            "task": task, "paper_name": tasks.get(task).paper_name, "status": "ok", "model": label,
            "hparams": best["hparams"], "fixed": best.get("fixed", False),
            "seeds": [{k: v for k, v in r.items() if k != "run_id"} for r in seeds],
            "test": summarize([r["test_score"] for r in seeds]),
            "dev": summarize([r["dev_score"] for r in seeds]), "best_seed": winner["index"],
            "flags": plan.flags(cfg, gold, task), "metric": tasks.get(task).metric,
        }
        _publish(out_dir, cfg, results, work)
        metrics = {"test_mean": results["test"]["mean"], "test_std": results["test"]["std"],
                   "dev_mean": results["dev"]["mean"], "seeds": len(seeds)}
        # what the seeds cost, also those read back from an earlier run: the cost of this result
        spent = cost.entry(cfg.runtime, sum(r.get("worker_seconds", r["train_seconds"]) for r in seeds),
                           sum(r.get("tokens", 0) for r in seeds), time.perf_counter() - started)
        write_json(mpath, {**metrics, cost.KEY: spent})
        tracked.log_metrics({f"finetune/{k}": v for k, v in metrics.items()})
        tracked.log_cost(spent, f"{STAGE}/")
        tracked.set_tags({"finetune.best_seed": winner["index"],
                          "pubmedlm.hparams": "fixed" if results["fixed"] else "search",
                          "finetune.capped": results["flags"]["capped"],
                          "finetune.proxy": results["flags"]["proxy"]})
        tracked.log_artifact(out_dir / "results.json", "finetune")
    return StageResult(STAGE, {"results": out_dir / "results.json", "model": out_dir / "model",
                               "metrics": mpath}, results, tracked.run_id)


def run(cfg: Config, params_file: str | Path = "params.yaml", task: str | None = None) -> StageResult:
    return run_task(cfg, plan.require_task(STAGE, task, cfg), params_file)


def summary(result: StageResult) -> str:
    r = result.metrics
    if r.get("status") != "ok":
        return f"{r['task']}: {r['status']} ({r.get('reason', '')})"
    t = r["test"]
    note = f"  [{r['flags']['note']}]" if r["flags"]["note"] else ""
    fixed = ", fixed hyperparameters" if r.get("fixed") else ""
    return (f"{r['task']}: test {t['mean']:.2f} ± {t['std']:.2f} over {t['n']} seeds "
            f"(best-dev seed {r['best_seed']}{fixed}){note}")
