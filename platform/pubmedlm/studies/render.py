"""A study's analysis (`analysis.analyse`) as Markdown, JSON and a dot-and-whisker PNG, with the
paper's numbers beside ours."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pubmedlm.studies.spec import BLURB

OURS, PAPER = "#1f6feb", "#6e7781"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def _iv(interval: Mapping[str, Any] | None) -> str:
    return "–" if not interval or interval.get("low") is None else \
        f"[{interval['low']:+.2f}, {interval['high']:+.2f}]"


def _score(cell: Mapping[str, Any]) -> str:
    if cell.get("missing"):
        return "not run"
    if "std" not in cell:
        return _num(cell["mean"])
    return f"{cell['mean']:.2f} ± {cell['std']:.2f} (n={cell['n']})"


def _label(place: str, result: Mapping[str, Any]) -> str:
    """`BLURB*` when the study's datasets are not all 13 (the BLURB weighting over them only)."""
    from pubmedlm.blurb.tasks import all_tasks

    return f"{BLURB}*" if place == BLURB and set(result["datasets"]) != set(all_tasks()) else place


def _places(result: Mapping[str, Any]) -> list[str]:
    first = result["table"][0]["cells"] if result["table"] else {}
    return [d for d in [*result["datasets"], BLURB] if d in first]


def _setup(result: Mapping[str, Any]) -> list[str]:
    common = ", ".join(f"`{o}`" for o in result["overrides"]) or "none"
    lines = [f"Baseline: `{result['baseline']}`. Every variant: {common}; then (`--set` overrides):", ""]
    lines += [f"- `{v}`: {', '.join(f'`{o}`' for o in sets) or '(nothing more)'}"
              for v, sets in result["variants"].items()]
    if result["hparams"] == "fixed":
        values = ", ".join(f"{k}={v}" for k, v in result["fixed"].items())
        per_dataset = "; ".join(f"{d}: " + ", ".join(f"{k}={v}" for k, v in changes.items())
                                for d, changes in result.get("fixed_per_dataset", {}).items())
        lines += ["", f"Hyperparameters held fixed for every variant ({values}"
                  + (f"; per dataset, {per_dataset}" if per_dataset else "") + "), so that only the studied "
                  "variable moves; the paper searched them per model, so our absolute numbers are not its."]
    else:
        lines += ["", "Hyperparameters searched per variant on dev (the paper's protocol)."]
    if result["missing"]:
        lines += ["", f"**Not run yet:** {', '.join(result['missing'])}."]
    if result.get("notes"):  # what the runs left out or changed (`studies.results.collect`)
        lines += ["", "**Notes on the runs:**", "", *[f"- {n}" for n in result["notes"]]]
    return lines


def _table_md(result: Mapping[str, Any]) -> list[str]:
    places = _places(result)
    head = ["variant", *[f"{_label(p, result)} ours" for p in places],
            *[f"{_label(p, result)} paper" for p in places]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["table"]:
        cells = row["cells"]
        lines.append("| " + " | ".join([row["variant"], *[_score(cells[p]) for p in places],
                                        *[_num(cells[p].get("paper")) for p in places]]) + " |")
    return lines


def _diffs_md(result: Mapping[str, Any]) -> list[str]:
    lines = ["| variant − baseline | dataset | ours | Welch 95% (seeds) | bootstrap 95% (best-dev seeds) "
             "| verdict | paper |", "|---|---|---|---|---|---|---|"]
    for d in result["differences"]:
        lines.append(f"| {d['variant']} | {_label(d['dataset'], result)} | {_signed(d['diff'])} | "
                     f"{_iv(d['welch'])} | "
                     f"{_iv(d['bootstrap'])} | {d['verdict']} | {_signed(d['paper_diff'])} |")
    return lines


def _claim_md(claim: Mapping[str, Any]) -> list[str]:
    lines = [f"> {claim['text'].strip()}", "", f"**On our runs the claim {claim['outcome']}.**", ""]
    for r in claim["rules"]:
        rule = ", ".join(f"{k}={v}" for k, v in r["rule"].items() if k != "kind")
        counts = {o: sum(c["outcome"] == o for c in r["cells"]) for o in ("holds", "inconclusive", "fails",
                                                                         "missing")}
        lines.append(f"- `{r['rule']['kind']}` ({rule}): **{r['outcome']}** ("
                     + ", ".join(f"{n} {o}" for o, n in counts.items() if n) + ")")
    return lines


def markdown(result: Mapping[str, Any], plot: str | None = None) -> str:
    """The study's page: setup, the paper-style table, the differences with intervals and
    verdicts, the claim's outcome (and the plot, when its file name is given)."""
    source = f" (paper: {result['paper_source']})" if result.get("paper_source") else ""
    lines = [f"# Study `{result['study']}`", ""]
    if result.get("description"):
        lines += [result["description"].strip(), ""]
    lines += _setup(result)
    lines += ["", f"## Test scores: mean ± sample std over seeds{source}", "", *_table_md(result)]
    lines += ["", "## Differences to the baseline", "",
              "A verdict is *better* / *worse* when the 95% interval (Welch over seeds; the bootstrap with "
              "one seed) excludes 0, else *same*. `paper`: the paper's variant minus its baseline.", ""]
    lines += _diffs_md(result)
    if any(_label(p, result) != p for p in _places(result)):
        lines += ["", f"{BLURB}*: the BLURB weighting (task types equal, datasets equal within a type) "
                  "over the study's datasets only: not the 13-dataset BLURB score, nor comparable with "
                  "the paper's."]
    lines += ["", "## The claim", "", *_claim_md(result["claim"])]
    if plot:
        lines += ["", f"![differences to the baseline]({plot})"]
    return "\n".join(lines) + "\n"


def plot(result: Mapping[str, Any], path: Path) -> Path:
    """Dot-and-whisker: one panel per dataset, a row per variant, our difference to the baseline
    with its Welch whisker (and the bootstrap's, thinner), the paper's difference as an x."""
    from pubmedlm.report.plots import pyplot, save_figure

    diffs = result["differences"]
    places = [p for p in [*result["datasets"], BLURB] if any(d["dataset"] == p for d in diffs)] or ["-"]
    variants = list(dict.fromkeys(d["variant"] for d in diffs))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(places), figsize=(3.6 * len(places) + 1.5, 0.6 * len(variants) + 1.8),
                             squeeze=False, sharey=True)
    for ax, place in zip(axes[0], places, strict=True):
        for y, variant in enumerate(variants):
            d = next((x for x in diffs if x["variant"] == variant and x["dataset"] == place), None)
            if d is None:
                continue
            for iv, offset, width in ((d["welch"], 0.0, 2.0), (d["bootstrap"], -0.18, 1.0)):
                if iv and iv.get("low") is not None:
                    ax.plot([iv["low"], iv["high"]], [y + offset] * 2, color=OURS, lw=width)
            ax.plot([d["diff"]], [y], "o", color=OURS, label="ours" if y == 0 else None)
            if d["paper_diff"] is not None:
                ax.plot([d["paper_diff"]], [y], "x", color=PAPER, ms=8, label="paper")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(_label(place, result))
        ax.set_xlabel(f"− {result['baseline']}")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(variants)), variants)
    axes[0][0].set_ylim(-0.7, len(variants) - 0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(dict(zip(labels, handles, strict=True)).values(),
                          dict(zip(labels, handles, strict=True)).keys(), fontsize=8)
    fig.suptitle(f"Study {result['study']}: difference to the baseline (95% intervals)")
    return save_figure(fig, path)


STUDIES_NOTE = ("The paper's controlled comparisons, run by `pubmedlm study run` and `pubmedlm study report` "
                "outside the DAG: these are the study reports under reports/studies/ when this page was "
                "written (`pubmedlm report` writes it again).")


def report_sections(root: Path) -> tuple[list[str], list[str]]:
    """The studies section of the `report` stage's pages, as (Markdown lines, HTML fragments); empty
    when no study report has been written."""
    import html

    studies = saved(root)
    if not studies:
        return [], []
    md = ["", "## Studies", "", STUDIES_NOTE, ""]
    md += [f"- [`{r['study']}`](../studies/{r['study']}/{r['study']}.md): the claim {r['claim']['outcome']}"
           for r, _ in studies]
    return md, [f"<h2>Studies</h2><p>{html.escape(STUDIES_NOTE)}</p>",
                *[html_section(r, png) for r, png in studies]]


def saved(root: Path) -> list[tuple[dict[str, Any], Path]]:
    """Every study report written under `reports/studies/` (`study report`): its analysis (the JSON)
    and its plot, by study name. Read by the `report` stage for the studies section of its page."""
    import json

    from pubmedlm.project import reports_dir

    found = sorted(reports_dir("studies", root).glob("*/*.json"))
    return [(json.loads(path.read_text(encoding="utf-8")), path.with_suffix(".png"))
            for path in found if path.stem == path.parent.name]


def html_section(result: Mapping[str, Any], png: Path | None = None) -> str:
    """The study as a section of the HTML report (`pubmedlm report`): the claim and its outcome on our
    runs, the paper-style table, the differences with their intervals and verdicts, the plot."""
    import html

    from pubmedlm.report.leaderboard import png_html, table_html

    e, name, claim = html.escape, result["study"], result["claim"]
    parts = [f'<h3 id="study-{e(name)}">Study <code>{e(name)}</code></h3>',
             f"<p>{e(' '.join(claim['text'].split()))} <b>On our runs the claim {e(claim['outcome'])}.</b> "
             f"Baseline: <code>{e(result['baseline'])}</code>; "
             + ("hyperparameters fixed for every variant." if result["hparams"] == "fixed"
                else "hyperparameters searched per variant on dev.") + "</p>",
             table_html(_table_md(result), f"study-{name}-scores"),
             table_html(_diffs_md(result), f"study-{name}-diffs")]
    notes = [*([f"Not run yet: {', '.join(result['missing'])}."] if result["missing"] else []),
             *result.get("notes", [])]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    if png is not None and png.is_file():
        parts.append(png_html(png, f"study {name}: differences to the baseline"))
    return "\n".join(parts)


def write(result: Mapping[str, Any], folder: Path, stem: str = "study") -> dict[str, Path]:
    """`<stem>.json`, `<stem>.md` and `<stem>.png` (the differences) under `folder`."""
    from pubmedlm.project import write_json

    folder.mkdir(parents=True, exist_ok=True)
    png = plot(result, folder / f"{stem}.png")
    write_json(folder / f"{stem}.json", result)
    md = folder / f"{stem}.md"
    md.write_text(markdown(result, png.name), encoding="utf-8")
    return {"json": folder / f"{stem}.json", "markdown": md, "plot": png}


__all__ = ["html_section", "markdown", "plot", "report_sections", "saved", "write"]
