"""The `evaluate` stage: the run's BLURB score from the fine-tuned tasks' test means, beside the
published models (docs/BLURB.md), with every flag carried through: "partial" (a dataset
missing), "proxy" (EBM PICO train carved from dev) and "not comparable" (capped runs), and each
dataset's sanity baseline (`blurb.baselines`: a constant prediction) on the very dev and test rows
the fine-tuned models were scored on (the ids of the best-dev seed's prediction files).

Users' tasks (`tasks.files`) are listed under `tasks` with their metric and per-type breakdown
(`usertasks.results`), in a table of their own: never in the BLURB score.

Outputs: `metrics/evaluate.json` (per-dataset mean ± std, seeds, flags, sanity baseline, the BLURB
score and its per-type averages) and `reports/evaluate/blurb.md` (the comparison table and the notes).
(`pubmedlm evaluate --predictions DIR` scores external prediction files instead.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pubmedlm.blurb import tasks
from pubmedlm.blurb.flags import NOT_COMPARABLE
from pubmedlm.blurb.published import comparison_table
from pubmedlm.blurb.score import blurb_score
from pubmedlm.config import Config
from pubmedlm.project import data_dir, metrics_path, project_root, reports_dir, write_json
from pubmedlm.stages import StageResult
from pubmedlm.usertasks.results import extras, table

STAGE = "evaluate"
SECTIONS = ("finetune", "tune")
REPORT = "blurb"  # reports/evaluate/blurb.md; `evaluate --predictions --name` may not take it


def _scored_ids(finetune_dir: Path, task_id: str, seed: int, split: str) -> list[str]:
    """The gold ids a seed predicted on a split (its prediction file): the rows the task was scored on."""
    from pubmedlm.blurb.formats import json_lines

    path = finetune_dir / task_id / "predictions" / f"seed-{seed}" / split / f"{task_id}.jsonl"
    return [row["id"] for _, row in json_lines(path)]


def sanity(gold_dir: Path, finetune_dir: Path, task_id: str, best_seed: int) -> dict[str, Any]:
    """The task's sanity baseline on the dev and test rows its seeds were scored on."""
    from pubmedlm.blurb import baselines

    return baselines.from_gold(gold_dir, tasks.get(task_id, gold_dir),
                               {s: _scored_ids(finetune_dir, task_id, best_seed, s) for s in ("dev", "test")})


def _entry(r: dict[str, Any], gold_dir: Path, finetune_dir: Path, task_id: str) -> dict[str, Any]:
    """A dataset's line of the summary (a user task's adds its metric and per-type breakdown)."""
    e = {"paper_name": r["paper_name"], "mean": r["test"]["mean"], "std": r["test"]["std"],
         "seeds": r["test"]["n"], "dev_mean": r["dev"]["mean"], "proxy": r["flags"]["proxy"],
         "capped": r["flags"]["capped"], "hparams": r["hparams"],
         "sanity": sanity(gold_dir, finetune_dir, task_id, r["best_seed"])}
    return e if tasks.is_blurb(task_id) else e | extras(task_id, r["best_seed"], gold_dir, finetune_dir)


def collect(finetune_dir: Path, datasets: list[str], gold_dir: Path) -> dict[str, Any]:
    """Per-dataset results of the finetune stage, their sanity baselines, and the BLURB score; users'
    tasks (`tasks.files`) under `tasks`, beside the BLURB datasets and never in their score."""
    per: dict[str, Any] = {}
    yours: dict[str, Any] = {}
    not_scored: dict[str, str] = {}
    for task_id in datasets:
        path = finetune_dir / task_id / "results.json"
        if not path.is_file():
            not_scored[task_id] = f"no fine-tuning results ({path})"
            continue
        r = json.loads(path.read_text())
        if r["status"] != "ok":
            not_scored[task_id] = f"{r['status']}: {r.get('reason', '')}"
            continue
        (per if tasks.is_blurb(task_id) else yours)[task_id] = _entry(r, gold_dir, finetune_dir, task_id)
    results = {e["paper_name"]: e["mean"] for e in per.values()}
    proxies = [e["paper_name"] for e in per.values() if e["proxy"]]
    score = blurb_score(results, proxies) if results else None
    capped = sorted(d for d, e in per.items() if e["capped"])
    return {"datasets": per, "tasks": yours, "not_scored": not_scored, "results": results, "proxies": proxies,
            "blurb": score.as_dict() if score else None, "not_comparable": bool(capped), "capped": capped}


def markdown(summary: dict[str, Any], name: str) -> str:
    lines = [f"# BLURB test scores: {name}", "",
             "Mean over seeds of each dataset's test score (percent), beside the published models.", ""]
    if summary["results"]:
        shown = f"{name} ({NOT_COMPARABLE})" if summary["not_comparable"] else name
        lines.append(comparison_table(summary["results"], name=shown, proxies=summary["proxies"]))
    lines += ["", "| dataset | mean ± std | seeds | dev mean | sanity baseline dev / test | flags |",
              "|---|---|---|---|---|---|"]
    for task_id, e in summary["datasets"].items():
        flags = ", ".join(f for f, on in (("proxy", e["proxy"]), (NOT_COMPARABLE, e["capped"])) if on) or "–"
        s = e["sanity"]
        lines.append(f"| {task_id} | {e['mean']:.2f} ± {e['std']:.2f} | {e['seeds']} | "
                     f"{e['dev_mean']:.2f} | {s['dev']:.2f} / {s['test']:.2f} ({s['rule']}) | {flags} |")
    lines += table(summary["tasks"])
    notes = [f"- {d}: not scored ({why})" for d, why in summary["not_scored"].items()]
    if summary["not_comparable"]:
        notes.append(f"- {NOT_COMPARABLE}: capped fine-tuning runs ({', '.join(summary['capped'])}); "
                     "the published numbers come from full runs")
    if summary["blurb"] and summary["blurb"]["partial"]:
        notes.append(f"- BLURB: {summary['blurb']['label']}")
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def run_eval(cfg: Config, params_file: str | Path = "params.yaml", *, out_base: Path | None = None,
             name: str | None = None, experiment: str | None = None) -> StageResult:
    from pubmedlm.infra.tracking import find_task_run, stage_run
    from pubmedlm.text.models import model_label
    from pubmedlm.usertasks.declared import activate

    root = project_root()
    activate(cfg, root)  # the task files' tasks, before anything is read
    finetune_dir = (out_base / "finetune") if out_base else data_dir("finetune", root)
    label = name or model_label(cfg.finetune.model)
    summary = collect(finetune_dir, list(cfg.finetune.datasets), data_dir("blurb_data", root))
    mpath = (out_base / "metrics" / f"{STAGE}.json") if out_base else metrics_path(STAGE, root)
    report = (out_base / "reports" if out_base else reports_dir(STAGE, root)) / f"{REPORT}.md"
    with stage_run(STAGE, cfg, SECTIONS, params_file, experiment=experiment,
                   tags={"pubmedlm.model": label,
                         "pubmedlm.not_comparable": summary["not_comparable"]}) as tracked:
        write_json(mpath, {"model": label, "run_id": tracked.run_id, **summary})
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(markdown(summary, label), encoding="utf-8")
        flat = {f"test/{d}": e["mean"] for d, e in {**summary["datasets"], **summary["tasks"]}.items()}
        if summary["blurb"]:
            flat["blurb"] = summary["blurb"]["blurb"]
            flat.update({f"blurb_type/{t}": v for t, v in summary["blurb"]["per_type"].items()})
            tracked.set_tags({"blurb.label": summary["blurb"]["label"],
                              "blurb.partial": summary["blurb"]["partial"]})
        tracked.log_metrics(flat)
        task_runs = {d: find_task_run(tracked.uri, experiment or cfg.runtime.mlflow_experiment, d, label)
                     for d in summary["datasets"]}
        tracked.set_tags({f"task_run.{d}": ref.run_id for d, ref in task_runs.items() if ref})
        tracked.log_artifact(mpath)
        tracked.log_artifact(report)
    return StageResult(STAGE, {"metrics": mpath, "report": report}, summary, tracked.run_id)


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    return run_eval(cfg, params_file)


def summary(result: StageResult) -> str:
    return Path(result.outputs["report"]).read_text(encoding="utf-8")


__all__ = ["collect", "markdown", "run", "run_eval"]
