"""`pubmedlm blurb --model X`: score any HF encoder on BLURB the paper's way, outside the DVC DAG.

For every dataset (default `finetune.datasets`): the `tune` stage (search on dev, or the fixed
configuration of `tune.fixed` with no search), then the `finetune` stage (N seeds, test mean),
then `evaluate` (the BLURB score beside the published models) — the same stage functions as the
pipeline, writing the same tree under `data/blurb/<model name>/` and tracking into the MLflow
experiment `blurb-<model name>`: one parent run per dataset holding its trials and seeds, and one
evaluate run.

Everything checkable is checked before any compute: the dataset ids, the model and its
tokenizer, the search space.
"""

from __future__ import annotations

from pathlib import Path

from pubmedlm.config import Config
from pubmedlm.finetune import plan
from pubmedlm.finetune.heads import load_checked_tokenizer
from pubmedlm.project import data_dir, output_lock, project_root
from pubmedlm.stages import StageResult
from pubmedlm.text.models import model_label, resolve_encoder


def run_blurb(cfg: Config, model: str, datasets: list[str] | None = None,
              params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.stages import evaluate, finetune, tune

    root = project_root()
    cfg = cfg.model_copy(deep=True)
    ids = [plan.check_task(d, cfg) for d in (datasets or cfg.finetune.datasets)]
    cfg.finetune.datasets = ids
    encoder = resolve_encoder(model, root)
    load_checked_tokenizer(encoder)
    label = model_label(model)
    out_base = data_dir("blurb", root) / label
    experiment = f"blurb-{label}"
    with output_lock(f"blurb-{label}", root):  # two `pubmedlm blurb` of one model: the second is refused
        for task in ids:
            tune.run_task(cfg, task, params_file, model=model, out_base=out_base, experiment=experiment)
            finetune.run_task(cfg, task, params_file, model=model, out_base=out_base, experiment=experiment)
        result = evaluate.run_eval(cfg, params_file, out_base=out_base, name=label, experiment=experiment)
    result.metrics["experiment"] = experiment
    return result


__all__ = ["run_blurb"]
