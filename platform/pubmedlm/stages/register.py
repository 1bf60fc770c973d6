"""The `register` stage: the encoder and each dataset's fine-tuned model into the MLflow Model
Registry, with their lineage, and promoted by the gate (`registry.gate.gate`).

| registered model | flavour | gate score |
|---|---|---|
| `<prefix>-encoder` | transformers (fill-mask), the encoder that was fine-tuned | BLURB score of the evaluate stage |
| `<prefix>-<dataset>` | pyfunc (`serving.BlurbTaskModel`: raw text or rows in, predictions out) | test mean over seeds |

Every version carries tags and a description: scores (BLURB, per dataset with the seeds' spread),
`git.commit`, the DVC hashes of corpus, vocab, pretrained model, BLURB data and params file, the
sources' sha256 (read from the corpus and blurb-data stage runs) and the cost of training
(device-hours, tokens seen). Each version is aliased `candidate`; `champion` only when the gate
passes, otherwise `gate.reason` says why.

Outputs: `metrics/register.json` (one decision per registered model), the register run's tags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pubmedlm.config import Config
from pubmedlm.finetune import plan
from pubmedlm.finetune.features import FinetuneError
from pubmedlm.infra.lineage import lineage_tags
from pubmedlm.project import data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult

STAGE = "register"
SECTIONS = ("register", "finetune")
LINEAGE_PATHS = ("data/corpus", "data/vocab", "data/pretrain", "data/blurb_data")


def stage_tags(uri: str, experiment: str, stage: str, prefix: str = "source.") -> dict[str, str]:
    """Tags starting with `prefix` of the latest finished run of a stage (e.g. its sources' sha256)."""
    from pubmedlm.infra.tracking import latest_stage_run

    run = latest_stage_run(uri, experiment, stage)
    return {k: v for k, v in run.data.tags.items() if k.startswith(prefix)} if run else {}


def _score_line(r: dict[str, Any]) -> str:
    t = r["test"]
    return f"{t['mean']:.2f} ± {t['std']:.2f} ({t['n']} seeds)"


def _encoder_standing(summary: dict[str, Any]):
    from pubmedlm.registry.gate import Standing

    b = summary["blurb"]
    return Standing(b["blurb"], tuple(sorted(summary["datasets"])), partial=b["partial"], proxy=bool(b["proxies"]),
                    capped=summary["not_comparable"])


def _pretrain_cost(root: Path) -> dict[str, Any]:
    path = metrics_path("pretrain", root)
    if not path.is_file():
        return {}
    m = json.loads(path.read_text())
    return {"cost.pretrain_device_hours": round(m.get("worker_hours", 0.0), 6), "cost.tokens_seen": m.get("tokens_seen", 0)}


def _task_cost(root: Path, task: str, results: dict[str, Any]) -> dict[str, Any]:
    seeds_h = sum(s["train_seconds"] for s in results["seeds"]) / 3600
    tune_path = metrics_path(f"tune/{task}", root)
    tune_h = json.loads(tune_path.read_text()).get("wall_seconds", 0.0) / 3600 if tune_path.is_file() else 0.0
    return {"cost.finetune_device_hours": round(seeds_h, 6), "cost.tune_device_hours": round(tune_h, 6),
            "cost.train_examples_seen": sum(s["steps"] for s in results["seeds"]) * results["hparams"]["batch_size"]}


def _description(title: str, lines: list[str], note: str) -> str:
    return "\n".join([f"**{title}**", "", *lines, "", note]).strip() + "\n"


def _log_encoder(path: str) -> Any:
    """The encoder as an MLflow transformers model (a fill-mask pipeline), in the active run.
    Loaded in memory: MLflow's path-only logging breaks on transformers 5's task table."""
    import mlflow
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    from pubmedlm.text.models import load_tokenizer

    hf_logging.set_verbosity_error()
    model = AutoModelForMaskedLM.from_pretrained(path)
    return mlflow.transformers.log_model({"model": model, "tokenizer": load_tokenizer(path)}, name="encoder",
                                         task="fill-mask", pip_requirements=["transformers", "torch"])


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:

    from pubmedlm.blurb import tasks
    from pubmedlm.infra.tracking import stage_run, tracking_uri
    from pubmedlm.registry.gate import Standing, register_version
    from pubmedlm.registry.serving import log_task_model

    root = project_root()
    eval_path = metrics_path("evaluate", root)
    if not eval_path.is_file():
        raise FinetuneError(f"register: no BLURB evaluation ({eval_path}); run `pubmedlm evaluate` first")
    summary = json.loads(eval_path.read_text())
    finetune_dir = data_dir("finetune", root)
    by_task = {}
    for task in summary["datasets"]:
        r = json.loads((finetune_dir / task / "results.json").read_text())
        if not (finetune_dir / task / "model" / "pubmedlm_task.json").is_file():
            raise FinetuneError(f"register: {finetune_dir / task / 'model'} has no pubmedlm_task.json; "
                                f"rerun `pubmedlm finetune --task {task}`")
        by_task[task] = r
    encoder = plan.resolve_encoder(cfg, root)
    label = summary.get("model") or plan.model_label(cfg.finetune.model)
    uri = tracking_uri(cfg, root)
    sources = stage_tags(uri, cfg.runtime.mlflow_experiment, "corpus")
    blurb_sources = stage_tags(uri, cfg.runtime.mlflow_experiment, "blurb_data")
    lineage = lineage_tags(root, LINEAGE_PATHS, params_file)
    prefix = cfg.register_.prefix
    decisions: list[dict[str, Any]] = []
    with stage_run(STAGE, cfg, SECTIONS, params_file) as tracked:
        per_task = {f"score.{t}": _score_line(r) for t, r in by_task.items()}
        b = summary.get("blurb")
        if cfg.register_.encoder and b:
            info = _log_encoder(encoder)
            standing = _encoder_standing(summary)
            tags = {"pubmedlm.kind": "encoder", "pubmedlm.model": label, "pubmedlm.encoder_path": Path(encoder).name,
                    "blurb.score": f"{b['blurb']:.2f}", "blurb.label": b["label"],
                    "pubmedlm.not_comparable": str(summary["not_comparable"]).lower(),
                    **per_task, **lineage, **sources, **_pretrain_cost(root), "pubmedlm.evaluate_run": summary.get("run_id", "")}
            desc = _description(f"{label}: {b['label']} {b['blurb']:.2f}",
                                [f"- {t}: {line}" for t, line in per_task.items()],
                                "Capped (tiny profile) run: not comparable with the paper." if summary["not_comparable"] else "")
            decisions.append(register_version(info.model_uri, f"{prefix}-encoder", standing, tags=tags, description=desc))
        if cfg.register_.tasks:
            for task, r in by_task.items():
                info = log_task_model(finetune_dir / task / "model", task)
                standing = Standing(r["test"]["mean"], (task,), proxy=r["flags"]["proxy"], capped=r["flags"]["capped"])
                tags = {"pubmedlm.kind": "task", "pubmedlm.task": task, "pubmedlm.metric": r["metric"],
                        "pubmedlm.encoder": label, "score.test": _score_line(r), "score.dev_mean": f"{r['dev']['mean']:.2f}",
                        "hparams": json.dumps(r["hparams"], sort_keys=True), "pubmedlm.task_run": r["parent_run_id"],
                        **({"blurb.score": f"{b['blurb']:.2f}", "blurb.label": b["label"]} if b else {}),
                        **lineage, **{k: v for k, v in blurb_sources.items()
                                      if k.startswith(f"source.blurb/{tasks.get(task).folder}/")},
                        **_task_cost(root, task, r)}
                desc = _description(f"{task} ({r['paper_name']}), {r['metric']}: test {_score_line(r)}",
                                    [f"- encoder: {label}", f"- hyperparameters: {json.dumps(r['hparams'], sort_keys=True)}",
                                     f"- flags: {r['flags'].get('note') or 'none'}"],
                                    "Input: a `text` column (raw text) for NER/PICO, else the task's fields.")
                decisions.append(register_version(info.model_uri, f"{prefix}-{task}", standing, tags=tags,
                                                  description=desc))
        tracked.set_tags({f"register.{d['name']}": f"v{d['version']} "
                          f"{'champion' if d['promoted'] else 'candidate'}: {d['reason']}" for d in decisions})
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
