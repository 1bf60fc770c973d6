"""The `register` stage: the encoder and each dataset's fine-tuned model into the MLflow Model
Registry, with their lineage, and promoted by the gate (`registry.gate.gate`).

| registered model | flavour | gate score |
|---|---|---|
| `<prefix>-encoder` | transformers (fill-mask), the encoder that was fine-tuned | \
BLURB score of the evaluate stage |
| `<prefix>-<dataset>` | pyfunc (`serving.BlurbTaskModel`: raw text or rows in, predictions out) | \
test mean over seeds |

Every version carries tags and a description: scores (BLURB, per dataset with the seeds' spread),
`git.commit`, the DVC hashes of corpus, vocab, pretrained model, BLURB data and params file, the
sources' sha256 (read from the corpus and blurb-data stage runs) and the cost of training
(device-hours, tokens seen). Each version is aliased `candidate`; `champion` only when the gate
passes (never at or below its task's sanity baseline on dev, read from `metrics/evaluate.json`),
otherwise `gate.reason` says why (tags and descriptions: `registry.versions`).

Outputs: `metrics/register.json` (one decision per registered model), the register run's tags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pubmedlm.config import Config
from pubmedlm.finetune.features import FinetuneError
from pubmedlm.infra.lineage import lineage_tags
from pubmedlm.project import data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult
from pubmedlm.text.models import model_label, resolve_encoder

STAGE = "register"
SECTIONS = ("register", "finetune")
LINEAGE_PATHS = ("data/corpus", "data/vocab", "data/pretrain", "data/encoder", "data/blurb_data")


def stage_tags(uri: str, experiment: str, stage: str, prefix: str = "source.") -> dict[str, str]:
    """Tags starting with `prefix` of the latest finished run of a stage (e.g. its sources' sha256)."""
    from pubmedlm.infra.tracking import latest_stage_run

    run = latest_stage_run(uri, experiment, stage)
    return {k: v for k, v in run.data.tags.items() if k.startswith(prefix)} if run else {}


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _inputs(root: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The evaluate summary and each evaluated dataset's fine-tuning results, checked."""
    summary = _json(metrics_path("evaluate", root))
    if summary is None:
        raise FinetuneError(f"register: no BLURB evaluation ({metrics_path('evaluate', root)}); "
                            "run `pubmedlm evaluate` first")
    finetune_dir = data_dir("finetune", root)
    for task in _evaluated(summary):
        if not (finetune_dir / task / "model" / "pubmedlm_task.json").is_file():
            raise FinetuneError(f"register: {finetune_dir / task / 'model'} has no pubmedlm_task.json; "
                                f"rerun `pubmedlm finetune --task {task}`")
    return summary, {t: json.loads((finetune_dir / t / "results.json").read_text())
                     for t in _evaluated(summary)}


def _evaluated(summary: dict[str, Any]) -> dict[str, Any]:
    """The evaluated BLURB datasets, then the users' tasks (`tasks`), by id."""
    return {**summary["datasets"], **summary.get("tasks", {})}


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.blurb import tasks
    from pubmedlm.infra.cost import pipeline_cost
    from pubmedlm.infra.tracking import find_task_run, stage_run
    from pubmedlm.infra.tracking_uri import tracking_uri
    from pubmedlm.registry import versions
    from pubmedlm.registry.gate import register_version
    from pubmedlm.registry.serving import log_task_model
    from pubmedlm.usertasks.declared import activate

    root = project_root()
    activate(cfg, root)  # users' tasks by id, as evaluate listed them
    summary, by_task = _inputs(root)
    encoder = resolve_encoder(cfg.finetune.model, root)
    label = summary.get("model") or model_label(cfg.finetune.model)
    uri, experiment = tracking_uri(cfg, root), cfg.runtime.mlflow_experiment
    lineage = lineage_tags(root, LINEAGE_PATHS, params_file)
    blurb_sources = stage_tags(uri, experiment, "blurb_data")
    prefix, b = cfg.register_.prefix, summary.get("blurb")
    decisions: list[dict[str, Any]] = []
    ledger = pipeline_cost(metrics_path("evaluate", root).parent, list(by_task),
                           pretrained=cfg.finetune.model == "pretrain")
    with stage_run(STAGE, cfg, SECTIONS, params_file) as tracked:
        if cfg.register_.encoder and b:
            common = {**lineage, **stage_tags(uri, experiment, "corpus")}
            cost = versions.encoder_cost(ledger)
            standing, tags, desc = versions.encoder_version(summary, label, Path(encoder).name, common, cost)
            info = versions.log_encoder(encoder)
            decisions.append(register_version(info.model_uri, f"{prefix}-encoder", standing, tags=tags,
                                              description=desc))
        for task, r in by_task.items() if cfg.register_.tasks else ():
            folder = tasks.get(task).folder
            common = {**lineage, **{k: v for k, v in blurb_sources.items()
                                    if k.startswith(f"source.blurb/{folder}/")}}
            cost = versions.task_cost(ledger, task)
            ref = find_task_run(uri, experiment, task, label)
            standing, tags, desc = versions.task_version(task, r, label, b, common, cost,
                                                         ref.run_id if ref else None,
                                                         versions.sanity_dev(_evaluated(summary)[task]))
            info = log_task_model(data_dir("finetune", root) / task / "model", task)
            decisions.append(register_version(info.model_uri, f"{prefix}-{task}", standing, tags=tags,
                                              description=desc))
        tracked.set_tags({f"register.{d['name']}": f"v{d['version']} "
                          f"{'champion' if d['promoted'] else 'candidate'}: {d['reason']}"
                          for d in decisions})
        tracked.log_metrics({"registered": len(decisions), "promoted": sum(d["promoted"] for d in decisions)})
        mpath = metrics_path(STAGE, root)
        write_json(mpath, {"models": decisions})
        tracked.log_artifact(mpath)
    return StageResult(STAGE, {"metrics": mpath}, {"models": decisions}, tracked.run_id)


def summary(result: StageResult) -> str:
    lines = []
    for d in result.metrics["models"]:
        alias = "champion" if d["promoted"] else "candidate"
        lines.append(f"{d['name']} v{d['version']} @{alias} (score {d['score']:.2f}): {d['reason']}")
    return "\n".join(lines)


__all__ = ["run", "stage_tags", "summary"]
