"""One fine-tuning seed as a Ray task: train with the tuned configuration, score dev and test,
write the predictions (`blurb.predictions` format), the model (HF format with its task file) and
`result.json` into the seed's folder, and record it as an MLflow child run of the task's run.

A seed whose folder holds `result.json` is done; the `finetune` stage skips it on a rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pubmedlm.project import write_json

SEED_RESULT = "result.json"


def seed_worker(settings_dict: dict[str, Any], hparams: dict[str, Any], seed: int, index: int, out: str,
                tracking: dict[str, str]) -> dict[str, Any]:
    """Train and score one seed (runs as a Ray task); writes predictions, model and result.json to `out`."""
    import torch

    from pubmedlm.blurb.predictions import write_predictions
    from pubmedlm.finetune.fit import HParams, Settings, device_for, fit, load_task, predict, score
    from pubmedlm.infra.tracking import ChildRun
    from pubmedlm.registry.serving import write_task_file

    settings = Settings.from_dict(settings_dict)
    hp = HParams.from_dict(hparams)
    run = ChildRun(tracking["uri"], tracking["experiment_id"], tracking["parent_run_id"], f"seed {index}",
                   params={**hp.as_dict(), "seed": seed},
                   tags={"pubmedlm.kind": "seed", "pubmedlm.task": settings.task})
    try:
        data = load_task(settings)

        def on_epoch(epoch: int, dev: float, stats: dict[str, float]) -> None:
            run.log_metrics({"dev_score": dev, **stats}, step=epoch)
            print(f"{settings.task} seed {index}: epoch {epoch}/{hp.epochs} dev {dev:.2f} "
                  f"train loss {stats['train_loss']:.4f}", flush=True)

        fitted = fit(data, hp, seed, settings, on_epoch)
        device = device_for(settings)
        folder = Path(out)
        scores = {}
        for split in ("dev", "test"):
            preds = predict(fitted.model, data, split, settings, device)
            scores[split] = score(data, split, preds)
            write_predictions(folder / "predictions" / split / f"{settings.task}.jsonl", data.splits[split].rows, preds)
        fitted.model.save(folder / "model", data.codec.tokenizer)
        write_task_file(folder / "model", settings.task, settings.codec, settings.precision)
        result = {"index": index, "seed": seed, "dev_score": scores["dev"], "test_score": scores["test"],
                  "dev_curve": fitted.dev_scores, "train_seconds": fitted.train_seconds, "steps": fitted.steps,
                  "truncated_words": {s: e.truncated_words for s, e in data.splits.items()}, "run_id": run.run_id,
                  "device": str(device), "torch_threads": torch.get_num_threads()}
        write_json(folder / SEED_RESULT, result)
        run.log_metrics({"test_score": scores["test"], "final_dev_score": scores["dev"]}, step=hp.epochs)
    except Exception as e:
        run.set_tags({"error": f"{type(e).__name__}: {e}"[:5000]})
        run.end("FAILED")
        raise
    run.end("FINISHED")
    return result


__all__ = ["SEED_RESULT", "seed_worker"]
