"""The `blurb-data` stage: every BLURB dataset whose sources are available, verified, read and
written as normalized train/dev/test splits, counted in the paper's units beside the paper's counts.

Reads the task registry (`resources/blurb_tasks.yaml`) and each dataset's sources, under the
policy of `blurb/assemble.py` (declared sources verified by sha256; undeclared files found at the
registry path in the mirror used and flagged unverified; ChemProt/DDI splits the mirror lacks
rebuilt by the converters; EBM PICO train from `pico_train`, or a proxy from dev). Writes:

* `data/blurb_data/<id>/{train,dev,test}.jsonl`: the normalized rows (schema in `blurb/normalized.py`);
* `data/blurb_data/<id>/meta.json`: the registry row, counts per split beside the paper's,
  deviations with reasons, how each split was built, source sha256s, checks and the proxy flag;
* `data/blurb_data/README.md` (schema and counts table) and `config.yaml` (the `blurb_data` params);
* `metrics/blurb_data.json`: per dataset its status (`ok`, `proxy`, `missing`, `excluded`), counts
  and paper counts, deviations, missing reason, unverified sources.

A dataset whose sources are missing is reported as missing, by name, never skipped. Every source's
sha256 goes to the MLflow run as a `source.<path>.sha256` tag.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pubmedlm.blurb import tasks
from pubmedlm.blurb.assemble import Prepared, SourceFinder, prepare
from pubmedlm.blurb.flags import PROXY_NOTE
from pubmedlm.blurb.normalized import write_jsonl
from pubmedlm.config import Config
from pubmedlm.infra.sources import Catalog
from pubmedlm.project import atomic_dir, clear_stale, data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult, write_resolved_config

STAGE = "blurb_data"
SECTIONS = ("blurb_data",)
SPLITS = tasks.SPLITS

SCHEMA = """\
Each `<id>/<split>.jsonl` holds one JSON object per line (UTF-8, keys in this order):

| task type | datasets | row |
|---|---|---|
| ner | BC5-chem, BC5-disease, NCBI-disease, BC2GM, JNLPBA | `{"id", "doc_id", "tokens": [...], "tags": [B/I/O, ...]}` |
| pico | EBM-PICO | `{"id", "doc_id", "tokens": [...], "tags": [I-PAR/I-INT/I-OUT/O, ...]}` |
| re | ChemProt, DDI, GAD | `{"id", "text" (entities as dummy tokens), "label"}` |
| similarity | BIOSSES | `{"id", "text_a", "text_b", "score" (0-4)}` |
| doc_classification | HoC | `{"id": "<PMID>_s<n>", "doc_id": "<PMID>", "text", "labels": [hallmark indices]}` |
| qa | PubMedQA, BioASQ | `{"id", "question", "context", "label"}` |

NER/PICO ids are `<source split>-<sentence number>`; `doc_id` is the `-DOCSTART-` id (or null).
HoC rows are sentences; BLURB scores them per abstract (`doc_id`). `<id>/meta.json` holds the task
definition (labels, metric, max length, input layout), counts per split in the paper's units beside
the paper's, deviations with reasons, how each split was built, source sha256s and the proxy flag.
"""


def _entry(p: Prepared) -> dict[str, Any]:
    """One dataset's record in metrics/blurb_data.json (and the core of its meta.json)."""
    task = p.task
    entry: dict[str, Any] = {
        "status": p.status, "task_type": task.task_type, "unit": task.unit, "paper": dict(task.paper_counts),
        "counts": p.counts(), "rows": {s: len(r) for s, r in p.rows.items()}, "deviations": p.deviations(),
        "built_from": dict(p.built_from), "checks": dict(sorted(p.checks.items())),
        "sources": {path: {"sha256": s.sha256, "verified": s.verified} for path, s in sorted(p.sources.items())},
        "verified": p.verified if not p.missing else None, "proxy": p.proxy, "missing_reason": p.missing,
    }
    if p.proxy:
        entry["comparable"] = f"no: {PROXY_NOTE}"
    return entry


def _excluded(task: tasks.Task) -> dict[str, Any]:
    return {"status": "excluded", "task_type": task.task_type, "unit": task.unit,
            "paper": dict(task.paper_counts), "counts": {}, "deviations": [],
            "missing_reason": "not in blurb_data.datasets"}


def _cell(entry: dict[str, Any], split: str) -> str:
    ours = entry["counts"].get(split)
    paper = entry["paper"][split]
    if ours is None:
        return f"– / {paper:,}"
    mark = "" if ours == paper else " *"
    return f"{ours:,} / {paper:,}{mark}"


def _note(entry: dict[str, Any]) -> str:
    if entry["status"] in ("missing", "excluded"):
        return entry["missing_reason"]
    by_reason: dict[str, list[str]] = {}
    for d in entry["deviations"]:
        by_reason.setdefault(d["reason"], []).append(d["split"])
    notes = [f"{', '.join(splits)}: {reason}" for reason, splits in by_reason.items()]
    if entry.get("verified") is False:
        unverified = [p for p, s in entry["sources"].items() if not s["verified"]]
        notes.append(f"unverified (not declared in a catalog): {', '.join(unverified)}")
    return "; ".join(notes)


def readme_text(datasets: dict[str, dict[str, Any]]) -> str:
    """data/blurb_data/README.md: the schema and the counts table (ours / paper, * = deviation)."""
    lines = ["# BLURB datasets, normalized (`pubmedlm blurb-data`)", "", SCHEMA,
             "## Counts (ours / paper, in the paper's units; * marks a deviation)", "",
             "| dataset | status | unit | train | dev | test | notes |", "|---|---|---|---|---|---|---|"]
    for name, e in datasets.items():
        cells = " | ".join(_cell(e, s) for s in SPLITS)
        lines.append(f"| {name} | {e['status']} | {e['unit']} | {cells} | {_note(e)} |")
    return "\n".join(lines) + "\n"


def _write_dataset(folder: Path, p: Prepared, entry: dict[str, Any]) -> None:
    for split in SPLITS:
        write_jsonl(p.rows[split], folder / f"{split}.jsonl")
    write_json(folder / "meta.json", {"task": p.task.as_dict(), **entry})


def _summary_metrics(datasets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def names(status: str) -> list[str]:
        return [n for n, e in datasets.items() if e["status"] == status]

    prepared = [n for n, e in datasets.items() if e["status"] in ("ok", "proxy")]
    undocumented = [f"{n} {d['split']}" for n, e in datasets.items() for d in e["deviations"] if not d["documented"]]
    return {
        "prepared": prepared, "missing": names("missing"), "proxy": names("proxy"), "excluded": names("excluded"),
        "unverified": [n for n in prepared if datasets[n]["verified"] is False],
        "undocumented_deviations": undocumented, "matches_paper": not undocumented,
    }


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.infra.tracking import stage_run

    root = project_root()
    out_dir, mpath = data_dir(STAGE, root), metrics_path(STAGE, root)
    for stale in (out_dir, mpath):
        clear_stale(stale)
    opts = cfg.blurb_data
    with stage_run(STAGE, cfg, SECTIONS, params_file) as run_:
        started = time.perf_counter()
        finder = SourceFinder(Catalog(opts.catalogs), root / cfg.runtime.cache_dir, cfg.runtime.progress)
        datasets: dict[str, dict[str, Any]] = {}
        with atomic_dir(out_dir) as tmp:
            for task in tasks.all_tasks().values():
                if task.id not in opts.datasets:
                    datasets[task.id] = _excluded(task)
                    continue
                prepared = prepare(task, finder, opts)
                datasets[task.id] = _entry(prepared)
                if not prepared.missing:
                    _write_dataset(tmp / task.id, prepared, datasets[task.id])
            (tmp / "README.md").write_text(readme_text(datasets), encoding="utf-8")
            write_resolved_config(tmp, cfg, SECTIONS)
        metrics = {"datasets": datasets, **_summary_metrics(datasets)}
        write_json(mpath, metrics)
        seconds = round(time.perf_counter() - started, 2)
        _track(run_, datasets, metrics)
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
    unverified = sorted({p for e in datasets.values() for p, s in e.get("sources", {}).items() if not s["verified"]})
    run_.set_tags({f"blurb_data.status.{name}": e["status"] for name, e in datasets.items()}
                  | {"blurb_data.unverified_sources": ",".join(unverified) or "none"})
    run_.log_metrics({f"{name}.{split}": n for name, e in datasets.items() for split, n in e["counts"].items()})
    run_.log_metrics({"prepared": len(metrics["prepared"]), "missing": len(metrics["missing"])})


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
        table.add_row(name, status, e["unit"], *(_cell(e, s) for s in SPLITS), _note(e))
    return table


__all__ = ["SCHEMA", "STAGE", "readme_text", "run", "summary"]
