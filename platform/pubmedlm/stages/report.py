"""The `report` stage (`pubmedlm report`): the BLURB leaderboard and the plots, in one place.

Reads what the other stages wrote (`metrics/evaluate.json` with its sanity baselines, every `pubmedlm
blurb` run under `data/blurb/` (the `minilm-baseline` stage's among them), the tune trial tables,
`metrics/vocab.json`, `metrics/register.json`, the study reports of `pubmedlm study report` under
`reports/studies/`: both pages end with them), the pretraining run's metric history in MLflow; writes:

| file in `reports/report/` | what |
|---|---|
| `leaderboard.md` | what ran, our runs and the sanity baseline beside the published models (per dataset, \
type, BLURB; flags), the registry decisions, and what the score cost (the stages' cost ledger) |
| `index.html` | the same, plus the registry decisions and every plot, as one self-contained page |
| `scores.png` | per-dataset test scores (ours ± std over seeds) against the published models |
| `pretrain.png` | pretraining loss and MLM accuracy curves (train and held-out) |
| `hpo.png`, `hpo/<dataset>.png` | every trial's learning rate against its dev score |
| `fragmentation.png` | word pieces per word and input lengths, our vocab against the reference |

Each plot is also logged to the MLflow run it describes: leaderboard and scores to the evaluate run, curves
to the pretrain run, a dataset's trials to its tune run, fragmentation to the vocab run; all to the report run
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pubmedlm.config import Config
from pubmedlm.project import atomic_dir, data_dir, metrics_path, project_root, reports_dir
from pubmedlm.stages import StageResult

STAGE = "report"
SECTIONS = ("finetune",)


def _trials(root: Path, datasets: list[str], uri: str, experiment: str) -> dict[str, dict[str, Any]]:
    """{dataset: {"trials": [...], "task_run": run id or None}} for every dataset the tune stage searched
    (the task's run found on the tracking server by its tags)."""
    from pubmedlm.infra.tracking import find_task_run

    out = {}
    for task in datasets:
        folder = data_dir("tune", root) / task
        if (folder / "trials.json").is_file() and (folder / "best.json").is_file():
            trials = json.loads((folder / "trials.json").read_text())
            if trials:  # an unavailable dataset has an empty table
                ref = find_task_run(uri, experiment, task,
                                    json.loads((folder / "best.json").read_text())["model"])
                out[task] = {"trials": trials, "task_run": ref.run_id if ref else None}
    return out


def _stage_plots(cfg: Config, root: Path, out: Path, uri: str, figures: dict[str, Path],
                 attach: dict[str, str]) -> None:
    """The pretraining curves, the HPO trials and the vocab's fragmentation, each into `figures`
    (caption -> file) with the MLflow run it describes in `attach` (file -> run id)."""
    from pubmedlm.infra.tracking import latest_stage_run, training_history
    from pubmedlm.report import plots
    from pubmedlm.vocab.report import render_chart

    pretrain = latest_stage_run(uri, cfg.runtime.mlflow_experiment, "pretrain")
    if pretrain is not None:
        history = training_history(uri, pretrain, plots.PRETRAIN_METRICS)
        if history:
            plots.pretrain_curves(history, out / "pretrain.png",
                                  f"Pretraining (MLflow run {pretrain.info.run_id[:8]})")
            figures["Pretraining curves"] = out / "pretrain.png"
            attach["pretrain.png"] = pretrain.info.run_id
    trials = _trials(root, list(cfg.finetune.datasets), uri, cfg.runtime.mlflow_experiment)
    if trials:
        plots.hpo_trials({t: v["trials"] for t, v in trials.items()}, out / "hpo.png")
        figures["Hyperparameter search (learning rate against dev score)"] = out / "hpo.png"
        for task, v in trials.items():
            plots.hpo_trials({task: v["trials"]}, out / "hpo" / f"{task}.png")
            if v["task_run"]:
                attach[f"hpo/{task}.png"] = v["task_run"]
    vocab = metrics_path("vocab", root)
    if vocab.is_file():
        render_chart(json.loads(vocab.read_text()), out / "fragmentation.png")
        figures["Vocabulary fragmentation"] = out / "fragmentation.png"
        if (run := latest_stage_run(uri, cfg.runtime.mlflow_experiment, "vocab")) is not None:
            attach["fragmentation.png"] = run.info.run_id


def build(cfg: Config, root: Path, out: Path, uri: str,
          params_file: str | Path = "params.yaml") -> dict[str, Any]:
    """Write the report into `out`; returns {"plots": {caption: file}, "runs": {file: run_id}, ...}."""
    from pubmedlm.infra.cost import pipeline_cost
    from pubmedlm.report import leaderboard as reporting
    from pubmedlm.report import plots
    from pubmedlm.studies.render import report_sections

    ours = reporting.discover(root)
    evaluate = metrics_path("evaluate", root)
    evaluated = json.loads(evaluate.read_text()) if evaluate.is_file() else {}
    sanity = reporting.sanity_column(evaluated) if evaluated else None
    columns = ours + ([sanity] if sanity else []) + reporting.published_columns()
    datasets = [d for d in reporting.rows(columns) if d[0] == "dataset"]
    names = [label for _, label, _ in datasets]
    attach: dict[str, str] = {}  # file -> run it describes
    figures: dict[str, Path] = {}
    if ours:
        plots.blurb_scores(names,
                           {c.name: {d: (c.scores[d], c.std.get(d, 0.0)) for d in c.scores} for c in ours},
                           {c.name: c.scores for c in columns if not c.ours}, out / "scores.png")
        figures["Test scores against the published models"] = out / "scores.png"
    if evaluated.get("run_id"):
        attach.update({k: evaluated["run_id"] for k in ("scores.png", "leaderboard.md", "index.html")})
    _stage_plots(cfg, root, out, uri, figures, attach)
    register = metrics_path("register", root)
    decisions = json.loads(register.read_text())["models"] if register.is_file() else None
    intro = reporting.intro(reporting.facts(cfg, params_file))
    ledger = pipeline_cost(metrics_path("evaluate", root).parent, list(cfg.finetune.datasets),
                           pretrained=cfg.finetune.model == "pretrain")
    yours = evaluated.get("tasks", {})  # users' tasks: a block of their own, not BLURB rows
    study_md, study_html = report_sections(root)
    (out / "leaderboard.md").write_text(
        reporting.markdown(columns, {k: v.name for k, v in figures.items()}, decisions, intro, ledger, yours,
                           sections=study_md), encoding="utf-8")
    (out / "index.html").write_text(
        reporting.html_page(columns, figures, decisions, summary=intro, cost=ledger, yours=yours,
                            sections=study_html), encoding="utf-8")
    return {"ours": [c.name for c in ours], "plots": {k: v.name for k, v in figures.items()}, "runs": attach}


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.infra.tracking import log_artifact_to, stage_run
    from pubmedlm.infra.tracking_uri import tracking_uri

    root = project_root()
    uri = tracking_uri(cfg, root)
    final = reports_dir(STAGE, root)
    with atomic_dir(final) as tmp:
        info = build(cfg, root, tmp, uri, params_file)
    with stage_run(STAGE, cfg, SECTIONS, params_file) as tracked:
        tracked.log_artifact(final, "report")
        for rel, run_id in info["runs"].items():
            folder = Path("report") / Path(rel).parent
            log_artifact_to(uri, run_id, final / rel, folder.as_posix())
        tracked.set_tags({"report.html": "report/index.html", "report.models": ", ".join(info["ours"])})
    return StageResult(STAGE, {"html": final / "index.html", "markdown": final / "leaderboard.md"}, info,
                       tracked.run_id)


def summary(result: StageResult) -> str:
    return f"Open the report: {Path(result.outputs['html']).resolve().as_uri()}"


__all__ = ["build", "run", "summary"]
