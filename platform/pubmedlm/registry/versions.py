"""What a registered model version says about itself: its standing for the gate, its tags
(scores, lineage, sources, cost) and its description, for the encoder and for each task model.
Plain functions of the stage's inputs (evaluate summary, fine-tuning results, stage metrics), so
the `register` stage is glue and the tags can be checked without a registry.
"""

from __future__ import annotations

import json
from typing import Any

from pubmedlm.blurb.score import blurb_score
from pubmedlm.registry.gate import Standing


def score_line(r: dict[str, Any]) -> str:
    t = r["test"]
    return f"{t['mean']:.2f} ± {t['std']:.2f} ({t['n']} seeds)"


def description(title: str, lines: list[str], note: str) -> str:
    return "\n".join([f"**{title}**", "", *lines, "", note]).strip() + "\n"


def encoder_cost(ledger: dict[str, Any]) -> dict[str, Any]:
    """What the encoder's BLURB score cost (`infra.cost.pipeline_cost`): pretraining (when the pipeline
    pretrained) and the fine-tuning of every dataset, in device-hours, and the tokens pretrained on."""
    tags = {"cost.blurb_finetune_device_hours": round(ledger["finetune_device_hours"], 6),
            "cost.device": ",".join(ledger["devices"])}
    if "pretrain" not in ledger["missing"]:
        tags |= {"cost.pretrain_device_hours": round(ledger["pretrain_device_hours"], 6),
                 "cost.tokens_seen": ledger["pretrain_tokens"] or 0}
    return tags


def task_cost(ledger: dict[str, Any], task: str) -> dict[str, Any]:
    """Device-hours of the task's search and seeds, and the tokens they trained on."""
    row = ledger["datasets"].get(task)
    if row is None:
        return {}
    return {"cost.finetune_device_hours": round(row["finetune_device_hours"] or 0.0, 6),
            "cost.tune_device_hours": round(row["tune_device_hours"] or 0.0, 6),
            "cost.tokens_trained": row["tokens"]}


def sanity_dev(entry: dict[str, Any]) -> float | None:
    """A dataset's sanity baseline on dev (metrics/evaluate.json), None when it was not computed."""
    return (entry.get("sanity") or {}).get("dev")


def dev_against_sanity(summary: dict[str, Any]) -> dict[str, float | None]:
    """The encoder's dev BLURB score (from the datasets' dev means) and the sanity baselines' on
    the same datasets; both None unless every dataset has its sanity baseline."""
    entries = summary["datasets"].values()
    if not entries or any(sanity_dev(e) is None for e in entries):
        return {"dev": None, "sanity": None}
    return {"dev": blurb_score({e["paper_name"]: e["dev_mean"] for e in entries}).value,
            "sanity": blurb_score({e["paper_name"]: sanity_dev(e) for e in entries}).value}


def encoder_version(summary: dict[str, Any], label: str, encoder_name: str, common: dict[str, str],
                    cost: dict[str, Any]) -> tuple[Standing, dict[str, Any], str]:
    """(standing, tags, description) of the encoder: judged by the run's BLURB score."""
    b = summary["blurb"]
    standing = Standing(b["blurb"], tuple(sorted(summary["datasets"])), partial=b["partial"],
                        proxy=bool(b["proxies"]), capped=summary["not_comparable"],
                        **dev_against_sanity(summary))
    per_task = {f"score.{t}": f"{e['mean']:.2f} ± {e['std']:.2f} ({e['seeds']} seeds)"
                for t, e in summary["datasets"].items()}
    tags = {"pubmedlm.kind": "encoder", "pubmedlm.model": label, "pubmedlm.encoder_path": encoder_name,
            "blurb.score": f"{b['blurb']:.2f}", "blurb.label": b["label"],
            "pubmedlm.not_comparable": str(summary["not_comparable"]).lower(), **per_task, **common, **cost,
            "pubmedlm.evaluate_run": summary.get("run_id", "")}
    note = "Capped (tiny profile) run: not comparable with the paper." if summary["not_comparable"] else ""
    desc = description(f"{label}: {b['label']} {b['blurb']:.2f}",
                       [f"- {t}: {line}" for t, line in per_task.items()], note)
    return standing, tags, desc


def task_version(task: str, r: dict[str, Any], label: str, blurb: dict[str, Any] | None,
                 common: dict[str, str], cost: dict[str, Any], task_run: str | None,
                 sanity: float | None = None) -> tuple[Standing, dict[str, Any], str]:
    """(standing, tags, description) of one dataset's model: judged by its test mean over seeds,
    once its dev mean beats `sanity` (its sanity baseline on the same dev rows)."""
    standing = Standing(r["test"]["mean"], (task,), proxy=r["flags"]["proxy"], capped=r["flags"]["capped"],
                        dev=r["dev"]["mean"], sanity=sanity)
    hparams = json.dumps(r["hparams"], sort_keys=True)
    tags = {"pubmedlm.kind": "task", "pubmedlm.task": task, "pubmedlm.metric": r["metric"],
            "pubmedlm.encoder": label, "score.test": score_line(r),
            "score.dev_mean": f"{r['dev']['mean']:.2f}", "hparams": hparams,
            **({"pubmedlm.task_run": task_run} if task_run else {}),
            **({"blurb.score": f"{blurb['blurb']:.2f}", "blurb.label": blurb["label"]} if blurb else {}),
            **common, **cost}
    desc = description(f"{task} ({r['paper_name']}), {r['metric']}: test {score_line(r)}",
                       [f"- encoder: {label}", f"- hyperparameters: {hparams}",
                        f"- flags: {r['flags'].get('note') or 'none'}"],
                       "Input: a `text` column (raw text) for NER/PICO, else the task's fields.")
    return standing, tags, desc


def log_encoder(path: str) -> Any:
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


__all__ = [
    "description",
    "dev_against_sanity",
    "encoder_cost",
    "encoder_version",
    "log_encoder",
    "sanity_dev",
    "score_line",
    "task_cost",
    "task_version",
]
