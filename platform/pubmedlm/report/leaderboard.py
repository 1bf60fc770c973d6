"""The BLURB leaderboard: our evaluated runs beside the published models, as Markdown and as one
self-contained HTML page (styles inline, plots embedded as base64 PNG).

Rows are the 13 datasets grouped by task type, each group followed by its task-type average,
then the BLURB score; columns are models. Our runs show mean ± std over seeds; the flags stay
visible: a column header says "partial" (datasets missing: its BLURB averages what there is),
"not comparable" (capped runs) and each proxy-scored cell says "proxy".
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pubmedlm.blurb.flags import NOT_COMPARABLE
from pubmedlm.blurb.published import published
from pubmedlm.blurb.score import TASK_TYPES, blurb_score, canonical


@dataclass
class Column:
    """One model of the leaderboard."""

    name: str
    ours: bool
    scores: dict[str, float]  # paper dataset name -> test score (%)
    std: dict[str, float] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    proxies: set[str] = field(default_factory=set)
    per_type: dict[str, float] = field(default_factory=dict)
    blurb: float | None = None
    partial: bool = False
    capped: bool = False
    label: str = ""
    source: str = ""

    @property
    def flags(self) -> list[str]:
        out = []
        if self.partial:
            out.append("partial")
        if self.proxies:
            out.append("proxy")
        if self.capped:
            out.append(NOT_COMPARABLE)
        return out


def ours_column(summary: dict[str, Any], name: str, source: str) -> Column:
    """A column from an evaluate stage summary (`metrics/evaluate.json`)."""
    scores, std, seeds = {}, {}, {}
    for entry in summary["datasets"].values():
        d = canonical(entry["paper_name"])
        scores[d], std[d], seeds[d] = entry["mean"], entry["std"], entry["seeds"]
    proxies = {canonical(p) for p in summary.get("proxies", [])}
    b = summary.get("blurb") or {}
    return Column(name, True, scores, std, seeds, proxies, b.get("per_type", {}), b.get("blurb"),
                  bool(b.get("partial", True)), bool(summary.get("not_comparable")), b.get("label", ""),
                  source)


def published_columns(models: list[str] | None = None) -> list[Column]:
    table = published()
    out = []
    for m in models or table.models:
        score = blurb_score(table.scores[m])
        out.append(Column(m, False, dict(table.scores[m]), per_type=score.per_type, blurb=table.blurb[m]))
    return out


def discover(root: Path) -> list[Column]:
    """Our evaluated runs: the pipeline's (`metrics/evaluate.json`) and every `pubmedlm blurb`
    run (`data/blurb/<model>/metrics/evaluate.json`)."""
    found = []
    pipeline = root / "metrics" / "evaluate.json"
    if pipeline.is_file():
        s = json.loads(pipeline.read_text())
        found.append(ours_column(s, f"{s.get('model', 'ours')} (pipeline)", "metrics/evaluate.json"))
    for path in sorted((root / "data" / "blurb").glob("*/metrics/evaluate.json")):
        s = json.loads(path.read_text())
        found.append(ours_column(s, s.get("model") or path.parent.parent.name,
                                 path.relative_to(root).as_posix()))
    return found


def _num(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _cell(col: Column, dataset: str) -> str:
    if dataset not in col.scores:
        return "–"
    text = _num(col.scores[dataset])
    if col.ours and col.seeds.get(dataset, 0) > 1:
        text += f" ± {col.std[dataset]:.2f}"
    return text + (" (proxy)" if dataset in col.proxies else "")


def _header(col: Column) -> str:
    return col.name + (f" [{', '.join(col.flags)}]" if col.flags else "")


def rows(columns: list[Column]) -> list[tuple[str, str, list[str]]]:
    """(kind, label, cells) for every table row: `dataset`, `type` (task-type average), `blurb`."""
    out = []
    for task_type, group in TASK_TYPES.items():
        for d in group:
            out.append(("dataset", d, [_cell(c, d) for c in columns]))
        if len(group) > 1:
            out.append(("type", f"{task_type} (average)", [_num(c.per_type.get(task_type)) for c in columns]))
    out.append(("blurb", "BLURB", [_num(c.blurb) + (" (partial)" if c.partial and c.blurb is not None else "")
                                   for c in columns]))
    return out


def _notes(columns: list[Column]) -> list[str]:
    notes = []
    for c in columns:
        if c.ours and c.label and c.partial:
            notes.append(f"{c.name}: {c.label}")
        if c.ours and c.capped:
            notes.append(f"{c.name}: {NOT_COMPARABLE}: capped fine-tuning (tiny profile); "
                         "the published numbers come from full runs")
    return notes


def markdown(columns: list[Column], plots: dict[str, str],
             registry: list[dict[str, Any]] | None = None) -> str:
    lines = ["# BLURB leaderboard", "",
             "Test scores (%), our runs (mean ± std over seeds) beside the published models (Gu et al. 2022; "
             "BioLinkBERT: Yasunaga et al. 2022).", ""]
    lines.append("| dataset | " + " | ".join(_header(c) for c in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for kind, label, cells in rows(columns):
        if kind == "dataset":
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        else:
            lines.append(f"| **{label}** | " + " | ".join(f"**{x}**" for x in cells) + " |")
    notes = _notes(columns)
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    if registry:
        lines += ["", "## Model registry", "", "| model | version | alias | score | gate |",
                  "|---|---|---|---|---|"]
        for d in registry:
            lines.append(f"| {d['name']} | {d['version']} | {'champion' if d['promoted'] else 'candidate'} | "
                         f"{d['score']:.2f} | {d['reason']} |")
    for title, file in plots.items():
        lines += ["", f"## {title}", "", f"![{title}]({file})"]
    return "\n".join(lines) + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #1f2328; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f6f8fa; vertical-align: bottom; }
th.ours, td.ours { background: #ddf4ff; }
tr.type td { font-weight: 600; background: #f6f8fa; } tr.type td.ours { background: #c8e6f8; }
tr.blurb td { font-weight: 700; border-top: 2px solid #1f2328; }
.flag { display: inline-block; font-size: 0.75em; padding: 0 5px; margin: 1px; border-radius: 8px; \
color: #fff; }
.flag.partial { background: #bf8700; } .flag.proxy { background: #8250df; } \
.flag.notcomparable { background: #d1242f; }
.missing { color: #8c959f; } .proxycell { color: #8250df; }
img { max-width: 100%; border: 1px solid #d0d7de; margin-top: 0.5em; }
ul.notes { font-size: 0.9em; color: #57606a; }
#registry td { text-align: left; }
"""


def _flag_html(flag: str) -> str:
    return f'<span class="flag {flag.replace(" ", "")}">{html.escape(flag)}</span>'


def html_page(columns: list[Column], plots: dict[str, Path], registry: list[dict[str, Any]] | None = None,
              title: str = "pubmedlm: BLURB leaderboard") -> str:
    """One self-contained page: the leaderboard, the registry decisions, the plots inline."""
    e = html.escape
    head = "".join(f'<th class="{"ours" if c.ours else "published"}">{e(c.name)}'
                   + ("<br>" + "".join(_flag_html(f) for f in c.flags) if c.flags else "") + "</th>"
                   for c in columns)
    body = []
    for kind, label, cells in rows(columns):
        tds = []
        for c, text in zip(columns, cells, strict=True):
            cls = ["ours" if c.ours else "published"]
            if text == "–":
                cls.append("missing")
            if "(proxy)" in text:
                cls.append("proxycell")
            tds.append(f'<td class="{" ".join(cls)}">{e(text)}</td>')
        body.append(f'<tr class="{kind}"><td>{e(label)}</td>{"".join(tds)}</tr>')
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             "<p>Test scores (%): our runs (blue, mean ± std over seeds) beside the published models "
             "(Gu et al. 2022; BioLinkBERT: Yasunaga et al. 2022). BLURB is the macro average over "
             "task types of the average over each type's datasets.</p>",
             f'<table id="leaderboard"><thead><tr><th>dataset</th>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table>']
    notes = _notes(columns)
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    if registry:
        parts.append('<h2>Model registry</h2><table id="registry"><thead><tr><th>model</th><th>version</th>'
                     "<th>alias</th><th>score</th><th>gate</th></tr></thead><tbody>")
        for d in registry:
            parts.append(f"<tr><td>{e(d['name'])}</td><td>{e(str(d['version']))}</td>"
                         f"<td>{'champion' if d['promoted'] else 'candidate'}</td><td>{d['score']:.2f}</td>"
                         f"<td>{e(d['reason'])}</td></tr>")
        parts.append("</tbody></table>")
    for caption, path in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(f"<h2>{e(caption)}</h2><img alt='{e(caption)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["Column", "discover", "html_page", "markdown", "ours_column", "published_columns", "rows"]
