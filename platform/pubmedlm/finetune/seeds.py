"""Fine-tuning seeds as Ray tasks: each trains with the tuned configuration, scores dev and test,
writes its predictions (`blurb.predictions` format), its model (HF format with its task file) and
`result.json` into its folder, and is recorded as an MLflow child run of the task's run.

Seeds run with one worker's resources, several at once when the machine has room. Their folders
live in a work directory named by a digest of encoder, data, settings and hyperparameters
(`work_dir`); a seed whose folder holds `result.json` is done, so a rerun after a crash trains
only the seeds still missing.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pubmedlm.project import write_json

if TYPE_CHECKING:
    from pubmedlm.finetune.fit import HParams, Settings
    from pubmedlm.infra.tracking import RunRef

SEED_RESULT = "result.json"


def seed_worker(settings: Settings, hp: HParams, seed: int, index: int, out: str,
                parent: RunRef) -> dict[str, Any]:
    """Train and score one seed (runs as a Ray task); writes predictions, model and result.json to `out`.
    The result carries its cost (training seconds, tokens) and overhead: seconds from the task's start
    to its first optimizer step, and from its last step to its result (scoring, files, model)."""
    import time

    import torch

    from pubmedlm.blurb.predictions import write_predictions
    from pubmedlm.finetune.fit import device_for, fit, load_task, predict, score
    from pubmedlm.finetune.heads import write_task_file
    from pubmedlm.infra.tracking import ChildRun

    started = time.perf_counter()
    run = ChildRun(parent.uri, parent.experiment_id, parent.run_id, f"seed {index}",
                   params={**hp.as_dict(), "seed": seed},
                   tags={"pubmedlm.kind": "seed", "pubmedlm.task": settings.task})
    try:
        data = load_task(settings)

        def on_epoch(epoch: int, dev: float, stats: dict[str, float]) -> None:
            run.log_metrics({"dev_score": dev, **stats}, step=epoch)
            print(f"{settings.task} seed {index}: epoch {epoch}/{hp.epochs} dev {dev:.2f} "
                  f"train loss {stats['train_loss']:.4f}", flush=True)

        fitted = fit(data, hp, seed, settings, on_epoch, started=started)
        device = device_for(settings)
        folder = Path(out)
        scores = {}
        for split in ("dev", "test"):
            preds = predict(fitted.model, data, split, settings, device)
            scores[split] = score(data, split, preds)
            write_predictions(folder / "predictions" / split / f"{settings.task}.jsonl",
                              data.splits[split].rows, preds)
        fitted.model.save(folder / "model", data.codec.tokenizer)
        write_task_file(folder / "model", data.codec.task, settings.codec, settings.finetune.precision)
        result = {"index": index, "seed": seed, "dev_score": scores["dev"],
                  "test_score": scores["test"], "dev_curve": fitted.dev_scores,
                  "train_seconds": fitted.train_seconds, "steps": fitted.steps,
                  "tokens": fitted.tokens, "padded_tokens": fitted.padded_tokens,
                  "overhead_start_s": fitted.first_step_at - started,
                  "truncated_words": {s: e.truncated_words for s, e in data.splits.items()},
                  "run_id": run.run_id, "parent_run_id": parent.run_id, "device": str(device),
                  "torch_threads": torch.get_num_threads()}
        result["overhead_end_s"] = time.perf_counter() - fitted.last_step_at
        result["worker_seconds"] = time.perf_counter() - started  # the cost ledger's share of this seed
        write_json(folder / SEED_RESULT, result)
        run.log_metrics({"test_score": scores["test"], "final_dev_score": scores["dev"],
                         "overhead_start_s": result["overhead_start_s"],
                         "overhead_end_s": result["overhead_end_s"]}, step=hp.epochs)
    except Exception as e:
        run.set_tags({"error": f"{type(e).__name__}: {e}"[:5000]})
        run.end("FAILED")
        raise
    run.end("FINISHED")
    return result


def work_dir(base: Path, settings: Settings, hp: HParams, first_seed: int) -> Path:
    """The seeds' folder under `base`: same encoder, data, settings and configuration, same folder."""
    from pubmedlm.infra.lineage import content_id

    key = json.dumps({"settings": settings.identity(), "hparams": hp.as_dict(),
                      "model": content_id(settings.model),
                      "data": content_id(str(Path(settings.gold_dir) / settings.task)), "seed": first_seed},
                     sort_keys=True, default=str)
    return base / f"finetune-{settings.task}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def train_seeds(settings: Settings, hp: HParams, n: int, first_seed: int, work: Path, parent: RunRef,
                resources: dict[str, float]) -> list[dict[str, Any]]:
    """Seeds first_seed .. first_seed + n - 1 (indices 0 .. n-1): finished ones read back, the rest
    trained as Ray tasks (Ray must be initialised); results in index order."""
    import ray

    remote = ray.remote(seed_worker).options(num_cpus=resources["cpu"], num_gpus=resources.get("gpu", 0),
                                             max_retries=0)
    done, pending = [], []
    for k in range(n):
        folder = work / f"seed-{k}"
        if (folder / SEED_RESULT).is_file():
            done.append(json.loads((folder / SEED_RESULT).read_text()))
            if done[-1].get("parent_run_id") != parent.run_id:
                _record_reused(done[-1], settings, hp, parent)
        else:
            pending.append(remote.remote(settings, hp, first_seed + k, k, str(folder), parent))
    done += ray.get(pending) if pending else []
    return sorted(done, key=lambda r: r["index"])


def _record_reused(result: dict[str, Any], settings: Settings, hp: HParams, parent: RunRef) -> None:
    """A seed finished under another run (same encoder, data, settings and hyperparameters) is read
    back, not retrained; it still gets its child run under this parent, with its scores and the run it
    was trained in (`pubmedlm.reused_from`), so every task run lists all its seeds."""
    from pubmedlm.infra.tracking import ChildRun

    run = ChildRun(parent.uri, parent.experiment_id, parent.run_id, f"seed {result['index']}",
                   params={**hp.as_dict(), "seed": result["seed"]},
                   tags={"pubmedlm.kind": "seed", "pubmedlm.task": settings.task,
                         "pubmedlm.reused_from": result.get("run_id", "")})
    run.log_metrics({"test_score": result["test_score"], "final_dev_score": result["dev_score"]},
                    step=len(result.get("dev_curve") or []))
    run.end("FINISHED")


def summarize(values: list[float]) -> dict[str, float]:
    """Mean, sample std (0 for one seed), min, max and count of the seeds' scores."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


__all__ = ["SEED_RESULT", "seed_worker", "summarize", "train_seeds", "work_dir"]
