"""The `blurb-data` stage: every BLURB dataset whose sources are available, verified, read and
written as normalized train/dev/test splits, counted in the paper's units beside the paper's counts.

The one reader of BLURB sources. Reads the task table (`resources/blurb_tasks.yaml`) and each
dataset's sources, under the policy of `blurb/assemble.py` (declared sources verified by sha256;
undeclared files found at the task table path in the mirror used and flagged unverified; ChemProt/DDI
splits the mirror lacks rebuilt by the converters; EBM PICO train from `pico_train`, or a proxy
from dev). Writes:

* `data/blurb_data/<id>/{train,dev,test}.jsonl`: the normalized rows (schema in `blurb/normalized.py`);
* `data/blurb_data/<id>/meta.json`: the task table row, counts per split beside the paper's,
  deviations with reasons, how each split was built, source sha256s, checks and the proxy flag;
* `data/blurb_data/exports/`: what the corpus and vocab stages read (test documents, NER mentions,
  model inputs; layout in `blurb/exports.py`, rules in `blurb/derive.py`);
* `data/blurb_data/README.md` (schema, exports, counts table) and `config.yaml` (the `blurb_data` params);
* `metrics/blurb_data.json`: per dataset its status (`ok`, `proxy`, `missing`, `excluded`), counts
  and paper counts, deviations, missing reason, unverified sources; under `tasks`, the users' own
  tasks (`tasks.files`), prepared the same way into `data/blurb_data/<id>/` by `usertasks.prepare`,
  with counts and, for NER, mentions per type and split.

User tasks are read first (before any BLURB source), so a bad data file stops the stage at once.

A dataset whose sources are missing is reported as missing, by name, never skipped. Every source's
sha256 goes to the MLflow run as a `source.<path>.sha256` tag. The records and the README are
`blurb/datacard.py`'s; this module wires them, tracking and the atomic output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pubmedlm.blurb import datacard, tasks
from pubmedlm.blurb.assemble import SourceFinder, prepare
from pubmedlm.blurb.derive import Exporter
from pubmedlm.config import Config
from pubmedlm.infra.sources import Catalog
from pubmedlm.project import data_dir, metrics_path, project_root, publication
from pubmedlm.stages import StageResult, write_resolved_config
from pubmedlm.usertasks.prepare import prepare as prepare_user
from pubmedlm.usertasks.schema import load_task_files

STAGE = "blurb_data"
SECTIONS = ("blurb_data", "tasks")
SPLITS = tasks.SPLITS


def _prepare_all(cfg: Config, finder: SourceFinder, out: Path) -> dict[str, dict[str, Any]]:
    """Prepare and write every dataset of `blurb_data.datasets` into `out`, and the exports; returns
    each task table dataset's record (in the paper's order)."""
    opts = cfg.blurb_data
    exporter = Exporter(out)
    datasets: dict[str, dict[str, Any]] = {}
    for task in tasks.all_tasks().values():
        if task.id not in opts.datasets:
            datasets[task.id] = datacard.excluded(task)
            continue
        prepared = prepare(task, finder, opts)
        datasets[task.id] = datacard.entry(prepared)
        if not prepared.missing:
            datacard.write_dataset(out / task.id, prepared, datasets[task.id])
            exporter.add(prepared)
    exporter.close()
    return datasets


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.infra.tracking import stage_run

    root = project_root()
    out_dir, mpath = data_dir(STAGE, root), metrics_path(STAGE, root)
    # Catalogs read and the mirror folder checked before the run starts or any output is touched.
    finder = SourceFinder(Catalog(cfg.blurb_data.catalogs), root / cfg.runtime.cache_dir,
                          cfg.runtime.progress)
    user = [prepare_user(spec, root / cfg.runtime.cache_dir, cfg.runtime.progress)
            for spec in load_task_files(cfg.tasks.files, root)]
    with stage_run(STAGE, cfg, SECTIONS, params_file) as run_:
        started = time.perf_counter()
        with publication(out_dir) as staged:
            tmp = staged.dirs[0]
            datasets = _prepare_all(cfg, finder, tmp)
            yours = {p.task.id: p.record() for p in user}
            for p in user:
                p.write(tmp / p.task.id)
            readme = datacard.readme_text(datasets) + datacard.user_tasks_text(yours)
            (tmp / "README.md").write_text(readme, encoding="utf-8")
            write_resolved_config(tmp, cfg, SECTIONS)
            metrics = {"datasets": datasets, **datacard.summary_metrics(datasets), "tasks": yours}
            staged.write_json(mpath, metrics)
        seconds = round(time.perf_counter() - started, 2)
        _track(run_, datasets, metrics)
        _track_user(run_, yours)
        run_.log_metrics({"seconds": seconds})
        run_.log_artifact(mpath)
        run_.log_artifact(out_dir / "README.md")
    headline = {k: metrics[k] for k in ("prepared", "missing", "proxy", "unverified", "matches_paper")}
    return StageResult(STAGE, {"blurb_data": out_dir, "metrics": mpath, "readme": out_dir / "README.md"},
                       headline | {"seconds": seconds}, run_.run_id)


def _track(run_: Any, datasets: dict[str, dict[str, Any]], metrics: dict[str, Any]) -> None:
    """Source sha256s as lineage tags; counts as MLflow metrics; statuses as tags."""
    shas = {path: s["sha256"] for e in datasets.values() for path, s in e.get("sources", {}).items()}
    run_.add_sources(shas)
    unverified = sorted({p for e in datasets.values() for p, s in e.get("sources", {}).items()
                         if not s["verified"]})
    run_.set_tags({f"blurb_data.status.{name}": e["status"] for name, e in datasets.items()}
                  | {"blurb_data.unverified_sources": ",".join(unverified) or "none"})
    run_.log_metrics({f"{name}.{split}": n for name, e in datasets.items()
                      for split, n in e["counts"].items()})
    run_.log_metrics({"prepared": len(metrics["prepared"]), "missing": len(metrics["missing"])})


def _track_user(run_: Any, yours: dict[str, dict[str, Any]]) -> None:
    """User tasks' source sha256s (by split: task files may name paths outside the project), counts
    and mentions per type."""
    run_.add_sources({f"tasks/{t}/{split}": s["sha256"] for t, e in yours.items()
                      for split, s in e["sources"].items() if s["sha256"]})
    run_.log_metrics({f"{t}.{split}": n for t, e in yours.items() for split, n in e["counts"].items()})
    run_.log_metrics({f"{t}.{split}.{kind}": n for t, e in yours.items()
                      for split, kinds in (e["mentions"] or {}).items() for kind, n in kinds.items()})


def summary(result: StageResult):
    """A rich table of counts against the paper, printed by `pubmedlm blurb-data`."""
    import json

    from rich.table import Table

    metrics = json.loads(Path(result.outputs["metrics"]).read_text(encoding="utf-8"))
    table = Table("dataset", "status", "unit", "train", "dev", "test", "notes",
                  title="BLURB data: ours / paper (* deviation)", show_lines=False)
    style = {"ok": "green", "proxy": "yellow", "missing": "red", "excluded": "dim"}
    for name in tasks.all_tasks():  # the paper's order (the metrics file's keys are sorted)
        e = metrics["datasets"][name]
        status = f"[{style[e['status']]}]{e['status']}[/]"
        table.add_row(name, status, e["unit"], *(datacard.cell(e, s) for s in SPLITS), datacard.note(e))
    for name, e in metrics.get("tasks", {}).items():  # users' tasks: no paper counts
        table.add_row(name, "[cyan]yours[/]", e["unit"], *(f"{e['counts'][s]:,}" for s in SPLITS),
                      f"task file {e['task_file']}")
    return table


__all__ = ["STAGE", "run", "summary"]
