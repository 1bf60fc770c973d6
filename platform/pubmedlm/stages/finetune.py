"""The `finetune` stage, one per task: the tuned configuration trained with N seeds
(`finetune.seeds`; paper: 10 for BIOSSES, BioASQ, PubMedQA, 5 for the rest), each scored on dev
and test, test reported as mean ± std over the seeds, every seed's predictions kept, and the
best-dev seed's model saved in HF format for the tasks.

Seeds run as Ray tasks with one worker's resources (several at once when the machine has room),
each an MLflow child run of the task's parent run (opened by `tune`). A seed's finished work is
kept under `runtime.storage_path` (named by a digest of model, data, settings and
hyperparameters), so a rerun after a crash trains only the seeds still missing.

Outputs: `data/finetune/<task>/` (results.json, predictions/, model/, config.yaml) and
`metrics/finetune/<task>.json`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pubmedlm.config import Config
from pubmedlm.finetune import plan
from pubmedlm.finetune.features import FinetuneError
from pubmedlm.finetune.seeds import SEED_RESULT, seed_worker
from pubmedlm.project import atomic_dir, data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult, write_resolved_config

STAGE = "finetune"
SECTIONS = ("finetune", "tune")


def _work_dir(cfg: Config, root: Path, settings: dict[str, Any], best: dict[str, Any]) -> Path:
    from pubmedlm.infra.ray_runtime import storage_path

    gold = Path(settings["gold_dir"]) / best["task"]
    key = json.dumps({"settings": settings, "hparams": best["hparams"], "model": plan.content_id(best["model_path"]),
                      "data": plan.content_id(str(gold)),
                      "seed": cfg.finetune.seed}, sort_keys=True, default=str)
    base = storage_path(cfg, root)
    if "://" in base:  # seeds write plain files; remote storage keeps them under the local cache instead
        base = str(root / cfg.runtime.cache_dir / "finetune")
    return Path(base) / f"finetune-{best['task']}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _train_seeds(cfg: Config, root: Path, best: dict[str, Any], settings: dict[str, Any]) -> tuple[Path, list[dict]]:
    import ray

    from pubmedlm.infra.ray_runtime import init_ray

    work = _work_dir(cfg, root, settings, best)
    n = cfg.finetune.seeds_for(best["task"])
    tracking = {k: best[k] for k in ("experiment_id", "parent_run_id")} | {"uri": best["tracking_uri"]}
    done, pending = [], []
    init_ray(cfg)
    res = plan.resources(cfg)
    remote = ray.remote(seed_worker).options(num_cpus=res["cpu"], num_gpus=res.get("gpu", 0), max_retries=0)
    for k in range(n):
        folder = work / f"seed-{k}"
        if (folder / SEED_RESULT).is_file():
            done.append(json.loads((folder / SEED_RESULT).read_text()))
        else:
            pending.append(remote.remote(settings, best["hparams"], cfg.finetune.seed + k, k, str(folder), tracking))
    done += ray.get(pending)
    return work, sorted(done, key=lambda r: r["index"])


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def run_task(cfg: Config, task: str, params_file: str | Path = "params.yaml", *,
             out_base: Path | None = None) -> StageResult:
    """Fine-tune one task with its tuned configuration; `out_base` as in the tune stage."""
    from pubmedlm.blurb import tasks
    from pubmedlm.infra.tracking import stage_run

    root = project_root()
    task = plan.check_task(task)
    tune_dir = (out_base / "tune" / task) if out_base else data_dir("tune", root) / task
    out_dir = (out_base / STAGE / task) if out_base else data_dir(STAGE, root) / task
    mpath = (out_base / "metrics" / STAGE / f"{task}.json") if out_base else metrics_path(f"{STAGE}/{task}", root)
    if not (tune_dir / "best.json").is_file():
        raise FinetuneError(f"{task}: no tuned configuration ({tune_dir / 'best.json'}); run `pubmedlm tune --task {task}`")
    best = json.loads((tune_dir / "best.json").read_text())
    if best["status"] != "ok":
        results = {"task": task, "status": best["status"], "reason": best.get("reason", "")}
        with atomic_dir(out_dir) as tmp:
            write_json(tmp / "results.json", results)
            write_resolved_config(tmp, cfg, SECTIONS)
        write_json(mpath, {"status": best["status"]})
        return StageResult(STAGE, {"results": out_dir / "results.json"}, results)
    gold = data_dir("blurb_data", root)
    settings = asdict(plan.settings(cfg, task, best["model_path"], gold))
    with stage_run(STAGE, cfg, SECTIONS, params_file, resume_run_id=best["parent_run_id"]) as tracked:
        work, seeds = _train_seeds(cfg, root, best, settings)
        winner = max(seeds, key=lambda r: (r["dev_score"], -r["index"]))
        results = {
            "task": task, "paper_name": tasks.get(task).paper_name, "status": "ok", "model": best["model"],
            "model_path": best["model_path"], "hparams": best["hparams"], "seeds": seeds,
            "test": _summary([r["test_score"] for r in seeds]), "dev": _summary([r["dev_score"] for r in seeds]),
            "best_seed": winner["index"], "flags": plan.flags(cfg, gold, task), "parent_run_id": best["parent_run_id"],
            "metric": tasks.get(task).metric,
        }
        with atomic_dir(out_dir) as tmp:
            for r in seeds:
                shutil.copytree(work / f"seed-{r['index']}" / "predictions", tmp / "predictions" / f"seed-{r['index']}")
            shutil.copytree(work / f"seed-{winner['index']}" / "model", tmp / "model")
            write_json(tmp / "results.json", results)
            write_resolved_config(tmp, cfg, SECTIONS)
        for r in seeds:  # only the best-dev seed's weights are kept (BERT-base: 440 MB a seed)
            if r["index"] != winner["index"]:
                shutil.rmtree(work / f"seed-{r['index']}" / "model", ignore_errors=True)
        metrics = {"test_mean": results["test"]["mean"], "test_std": results["test"]["std"],
                   "dev_mean": results["dev"]["mean"], "seeds": len(seeds)}
        write_json(mpath, metrics)
        tracked.log_metrics({f"finetune/{k}": v for k, v in metrics.items()})
        tracked.set_tags({"finetune.best_seed": winner["index"], "finetune.capped": results["flags"]["capped"],
                          "finetune.proxy": results["flags"]["proxy"]})
        tracked.log_artifact(out_dir / "results.json", "finetune")
    return StageResult(STAGE, {"results": out_dir / "results.json", "model": out_dir / "model", "metrics": mpath},
                       results, tracked.run_id)


def run(cfg: Config, params_file: str | Path = "params.yaml", task: str | None = None) -> StageResult:
    return run_task(cfg, plan.require_task(STAGE, task), params_file)


def summary(result: StageResult) -> str:
    r = result.metrics
    if r.get("status") != "ok":
        return f"{r['task']}: {r['status']} ({r.get('reason', '')})"
    t = r["test"]
    note = f"  [{r['flags']['note']}]" if r["flags"]["note"] else ""
    return f"{r['task']}: test {t['mean']:.2f} ± {t['std']:.2f} over {t['n']} seeds (best-dev seed {r['best_seed']}){note}"
