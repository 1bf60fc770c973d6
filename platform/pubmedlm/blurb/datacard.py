"""The blurb-data stage's account of what it prepared: records, meta files and the README.

Owns each dataset's entry in metrics/blurb_data.json (also the core of its `<id>/meta.json`), the
summary lists beside them, and data/blurb_data/README.md: the normalized schema, the layout of
`exports/` (from `exports.LAYOUT`) and the counts table (ours / paper, `*` marks a deviation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pubmedlm.blurb.assemble import Prepared
from pubmedlm.blurb.exports import LAYOUT
from pubmedlm.blurb.flags import PROXY_NOTE
from pubmedlm.blurb.normalized import write_jsonl
from pubmedlm.blurb.tasks import SPLITS, Task, all_tasks
from pubmedlm.project import write_json

# The row of each task type (the datasets of each type come from the task table).
ROWS = {
    "ner": '`{"id", "doc_id", "tokens": [...], "tags": [B/I/O, ...]}`',
    "pico": '`{"id", "doc_id", "tokens": [...], "tags": [I-PAR/I-INT/I-OUT/O, ...]}`',
    "re": '`{"id", "text" (entities as dummy tokens), "label"}`',
    "similarity": '`{"id", "text_a", "text_b", "score" (0-4)}`',
    "doc_classification": '`{"id": "<PMID>_s<n>", "doc_id": "<PMID>", "text", "labels": [hallmark indices]}`',
    "qa": '`{"id", "question", "context", "label"}`',
}
NOTES = """\
NER/PICO ids are `<source split>-<sentence number>`; `doc_id` is the `-DOCSTART-` id (or null).
HoC rows are sentences; BLURB scores them per abstract (`doc_id`). `<id>/meta.json` holds the task
definition (labels, metric, max length, input layout), counts per split in the paper's units beside
the paper's, deviations with reasons, how each split was built, source sha256s and the proxy flag.
"""


def schema_text() -> str:
    """The README's schema section: the row of each task type and the datasets of that type."""
    table = all_tasks().values()
    rows = [f"| {kind} | {', '.join(t.id for t in table if t.task_type == kind)} | {row} |"
            for kind, row in ROWS.items()]
    head = "Each `<id>/<split>.jsonl` holds one JSON object per line (UTF-8, keys in this order):"
    return "\n".join([head, "", "| task type | datasets | row |", "|---|---|---|", *rows, "", NOTES])


def entry(p: Prepared) -> dict[str, Any]:
    """One dataset's record in metrics/blurb_data.json (and the core of its meta.json)."""
    task = p.task
    entry: dict[str, Any] = {
        "status": p.status, "task_type": task.task_type, "unit": task.unit, "paper": dict(task.paper_counts),
        "counts": p.counts(), "rows": {s: len(r) for s, r in p.rows.items()}, "deviations": p.deviations(),
        "built_from": dict(p.built_from), "checks": dict(sorted(p.checks.items())),
        "sources": {path: {"sha256": s.sha256, "verified": s.verified}
                    for path, s in sorted(p.sources.items())},
        "verified": p.verified if not p.missing else None, "proxy": p.proxy, "missing_reason": p.missing,
    }
    if p.proxy:
        entry["comparable"] = f"no: {PROXY_NOTE}"
    return entry


def excluded(task: Task) -> dict[str, Any]:
    """The record of a dataset left out of `blurb_data.datasets`."""
    return {"status": "excluded", "task_type": task.task_type, "unit": task.unit,
            "paper": dict(task.paper_counts), "counts": {}, "deviations": [],
            "missing_reason": "not in blurb_data.datasets"}


def cell(entry: dict[str, Any], split: str) -> str:
    """`ours / paper` of one split, `*` marking a deviation (README table, the CLI's table)."""
    ours = entry["counts"].get(split)
    paper = entry["paper"][split]
    if ours is None:
        return f"– / {paper:,}"
    mark = "" if ours == paper else " *"
    return f"{ours:,} / {paper:,}{mark}"


def note(entry: dict[str, Any]) -> str:
    """Why a dataset is missing, or its deviations and unverified sources, on one line."""
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
    """data/blurb_data/README.md: the schema, the exports' layout and the counts table (ours / paper)."""
    lines = ["# BLURB datasets, normalized (`pubmedlm blurb-data`)", "", schema_text(),
             "## Exports for the corpus and vocab stages", "", LAYOUT,
             "## Counts (ours / paper, in the paper's units; * marks a deviation)", "",
             "| dataset | status | unit | train | dev | test | notes |", "|---|---|---|---|---|---|---|"]
    for name, e in datasets.items():
        cells = " | ".join(cell(e, s) for s in SPLITS)
        lines.append(f"| {name} | {e['status']} | {e['unit']} | {cells} | {note(e)} |")
    return "\n".join(lines) + "\n"


def user_tasks_text(records: dict[str, dict[str, Any]]) -> str:
    """The README's section on the users' own tasks (`tasks.files`): counts, and NER mentions per type."""
    if not records:
        return ""
    lines = ["", "## Your tasks (tasks.files; not BLURB, never in the BLURB score)", "",
             "| task | task type | task file | unit | train | dev | test | "
             "mentions per type (train / dev / test) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, e in records.items():
        mentions = e.get("mentions") or {}
        kinds = sorted({k for split in mentions.values() for k in split})
        per_type = "; ".join(f"{k} {' / '.join(str(mentions[s].get(k, 0)) for s in SPLITS)}" for k in kinds)
        counts = " | ".join(f"{e['counts'][s]:,}" for s in SPLITS)
        lines.append(f"| {name} | {e['task_type']} | {e['task_file']} | {e['unit']} | {counts} | "
                     f"{per_type or '–'} |")
    return "\n".join(lines) + "\n"


def write_dataset(folder: Path, p: Prepared, entry: dict[str, Any]) -> None:
    """`<id>/{train,dev,test}.jsonl` and `<id>/meta.json` of one prepared dataset."""
    for split in SPLITS:
        write_jsonl(p.rows[split], folder / f"{split}.jsonl")
    write_json(folder / "meta.json", {"task": p.task.as_dict(), **entry})


def summary_metrics(datasets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The lists at the top of metrics/blurb_data.json: prepared, missing, proxy, ... datasets."""

    def names(status: str) -> list[str]:
        return [n for n, e in datasets.items() if e["status"] == status]

    prepared = [n for n, e in datasets.items() if e["status"] in ("ok", "proxy")]
    undocumented = [f"{n} {d['split']}" for n, e in datasets.items()
                    for d in e["deviations"] if not d["documented"]]
    return {
        "prepared": prepared, "missing": names("missing"), "proxy": names("proxy"),
        "excluded": names("excluded"),
        "unverified": [n for n in prepared if datasets[n]["verified"] is False],
        "undocumented_deviations": undocumented, "matches_paper": not undocumented,
    }


__all__ = [
    "ROWS", "cell", "entry", "excluded", "note", "readme_text", "schema_text", "summary_metrics",
    "user_tasks_text", "write_dataset",
]
