"""The pipeline's stages run outside the DVC DAG: `pubmedlm blurb --model X` (score any HF encoder
on BLURB the paper's way) and one variant of a study (`pubmedlm study run`, `run_study_variant`).

For every dataset (default `finetune.datasets`): the `tune` stage (search on dev, or the fixed
configuration of `tune.fixed` with no search), then the `finetune` stage (N seeds, test mean),
then `evaluate` (the BLURB score beside the published models) — the same stage functions as the
pipeline, writing the same tree under `data/blurb/<model name>/` and tracking into the MLflow
experiment `blurb-<model name>`: one parent run per dataset holding its trials and seeds, and one
evaluate run.

Everything checkable is checked before any compute: the dataset ids, the model and its
tokenizer, the search space.

A study's variant (`studies.runner.VariantPlan`) runs the same tune and finetune stage functions
into `data/studies/<study>/<variant>/`, in the experiment `study-<study>` under the variant's parent
run, only for the datasets not done with its params (`studies.runner` owns the plan and that rule);
a variant that fine-tunes `pretrain` first packs and pretrains its own model (`pretrain_for_study`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pubmedlm.config import Config
from pubmedlm.finetune import plan
from pubmedlm.finetune.heads import load_checked_tokenizer
from pubmedlm.project import data_dir, output_lock, project_root
from pubmedlm.stages import StageResult
from pubmedlm.text.models import model_label, pretrained_model, resolve_encoder


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


def pretrain_for_study(plan: Any, root: Path, uri: str, progress: Callable[[str], None]) -> None:
    """The model a variant fine-tunes when it fine-tunes `pretrain`: the `pack` and `pretrain` stages
    with the variant's params, run in its own project (`plan.pretrain`, whose corpus and vocab are this
    project's), tracked in the study's experiment; nothing when that model is there (shared by every
    variant with the same pretraining recipe, one writer at a time)."""
    import os
    import subprocess
    import sys

    from pubmedlm.errors import UserError

    sub = plan.pretrain
    if sub is None or (pretrained_model(sub) / "config.json").is_file():
        return
    with output_lock(f"study-model-{sub.name}", root):
        if (pretrained_model(sub) / "config.json").is_file():
            return
        for stage in ("corpus", "vocab"):
            source, link = data_dir(stage, root), data_dir(stage, sub)
            if not source.is_dir():
                raise UserError(f"study {plan.study}, variant {plan.variant}: it pretrains its own model "
                                f"from this project's {stage} ({source}), which does not exist; run "
                                "`dvc repro vocab` (or `pubmedlm corpus` then `pubmedlm vocab`) first")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(source, target_is_directory=True)
        env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(sub), "MLFLOW_TRACKING_URI": uri}
        sets = [x for o in (*plan.pretrain_sets, f"runtime.mlflow_experiment={plan.experiment}")
                for x in ("--set", o)]
        for stage in ("pack", "pretrain"):
            progress(f"[{plan.study}/{plan.variant}] {stage} -> {sub}")
            cmd = [sys.executable, "-m", "pubmedlm.cli", stage, "--params", str(plan.params_file), *sets]
            if subprocess.run(cmd, cwd=sub, env=env, check=False).returncode != 0:
                raise UserError(f"study {plan.study}, variant {plan.variant}: `pubmedlm {stage}` failed in "
                                f"{sub} (its output is above); a rerun resumes it")


def run_study_variant(plan: Any, progress: Callable[[str], None]) -> None:
    """Tune (when not tuned with these params) and fine-tune every dataset not done, under the
    variant's MLflow parent run; one writer per variant folder. `plan`: a `studies.runner.VariantPlan`
    (not imported: the minilm-baseline stage runs this module and does not depend on the studies)."""
    import json

    from pubmedlm.infra.tracking import RunLogger, end_run, open_group_run
    from pubmedlm.infra.tracking_uri import tracking_uri
    from pubmedlm.project import interrupted_by, write_json
    from pubmedlm.stages import finetune, tune

    root, cfg = project_root(), plan.config()
    uri = tracking_uri(cfg, root)
    with output_lock(f"study-{plan.study}-{plan.variant}", root):
        todo = plan.pending(cfg)  # again, under the lock
        if not todo:
            return
        write_json(plan.folder / "variant.json",
                   {"study": plan.study, "variant": plan.variant, "overrides": list(plan.overrides),
                    "extra": list(plan.extra), "digest": plan.digest(cfg)})
        key = {"pubmedlm.kind": "variant", "pubmedlm.study": plan.study, "pubmedlm.variant": plan.variant,
               "pubmedlm.digest": plan.digest(cfg)}
        group = open_group_run(uri, plan.experiment, plan.variant, key,
                               {"pubmedlm.overrides": json.dumps(list(plan.overrides))}, plan.recipe(cfg))
        tags = {"pubmedlm.study": plan.study, "pubmedlm.variant": plan.variant,
                "mlflow.parentRunId": group.run_id}
        status = "FAILED"
        try:
            pretrain_for_study(plan, root, uri, progress)
            for d, state in todo.items():
                if state != "tuned":
                    progress(f"[{plan.study}/{plan.variant}] {d}: tune")
                    tune.run_task(cfg, d, plan.params_file, out_base=plan.folder, experiment=plan.experiment,
                                  run_tags=tags)
                progress(f"[{plan.study}/{plan.variant}] {d}: fine-tune {cfg.finetune.seeds_for(d)} seed(s)")
                finetune.run_task(cfg, d, plan.params_file, out_base=plan.folder, experiment=plan.experiment,
                                  run_tags=tags)
            status = "FINISHED"
        except BaseException as e:
            status = "KILLED" if interrupted_by(e) or isinstance(e, KeyboardInterrupt) else "FAILED"
            raise
        finally:
            logger = RunLogger(group.run_id, uri)
            logger.log_metrics(plan.metrics(), step=0)
            logger.flush(60)
            end_run(uri, group.run_id, status)


__all__ = ["pretrain_for_study", "run_blurb", "run_study_variant"]
