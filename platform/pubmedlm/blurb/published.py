"""The paper's published BLURB test scores, as data, so any result can be shown beside them.

Owns the loader of `resources/published_blurb.tsv` (Gu et al. 2022 Table 6, journal version;
BioLinkBERT from LinkBERT's Table 7; percentages) and the side-by-side comparison table.
The table's `BLURB` row is what each paper prints; `blurb_score` over the per-dataset rows
reproduces it (tests check which models match to the printed two decimals).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pubmedlm.blurb.score import DATASETS, blurb_score, canonical

RESOURCE = "published_blurb.tsv"
BLURB_ROW = "BLURB"


@dataclass(frozen=True)
class PublishedTable:
    """Per-model scores: `scores[model][dataset]` (paper names) and the printed `blurb[model]`."""

    models: tuple[str, ...]
    scores: dict[str, dict[str, float]]
    blurb: dict[str, float]


@lru_cache(maxsize=1)
def published() -> PublishedTable:
    """The packaged table of published results (read once)."""
    text = resources.files("pubmedlm.resources").joinpath(RESOURCE).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    models = tuple(header[1:])
    scores: dict[str, dict[str, float]] = {m: {} for m in models}
    blurb: dict[str, float] = {}
    for name, *values in body:
        if len(values) != len(models):
            raise ValueError(f"{RESOURCE}: row {name!r} has {len(values)} values for {len(models)} models")
        for model, value in zip(models, values, strict=True):
            if name == BLURB_ROW:
                blurb[model] = float(value)
            else:
                scores[model][canonical(name)] = float(value)
    for model in models:
        if set(scores[model]) != set(DATASETS):
            raise ValueError(f"{RESOURCE}: {model} lacks {sorted(set(DATASETS) - set(scores[model]))}")
    return PublishedTable(models, scores, blurb)


def _cell(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


def comparison_table(results: Mapping[str, float], name: str = "ours", proxies: Iterable[str] = (),
                     models: Iterable[str] | None = None) -> str:
    """Markdown table: `results` (percent, any dataset naming) beside the published models.

    The BLURB row of `results` is aggregated with `blurb_score`; when it is partial, its label
    (which datasets are missing or proxies) is printed under the table and in the row name."""
    table = published()
    chosen = list(models) if models is not None else list(table.models)
    ours = {canonical(k): float(v) for k, v in results.items()}
    proxy_names = {canonical(p) for p in proxies}
    score = blurb_score(ours, proxy_names) if ours else None
    lines = ["| dataset | " + " | ".join([name, *chosen]) + " |", "|---" * (len(chosen) + 2) + "|"]
    for dataset in DATASETS:
        mark = " (proxy)" if dataset in proxy_names else ""
        cells = [_cell(ours.get(dataset)) + mark] + [_cell(table.scores[m][dataset]) for m in chosen]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    blurb_name = "BLURB (partial)" if score is not None and score.partial else "BLURB"
    cells = [_cell(score.value if score else None)] + [_cell(table.blurb[m]) for m in chosen]
    lines.append(f"| **{blurb_name}** | " + " | ".join(cells) + " |")
    if score is not None and score.partial:
        lines.append("")
        lines.append(f"{name}: {score.label}")
    return "\n".join(lines) + "\n"


__all__ = ["BLURB_ROW", "RESOURCE", "PublishedTable", "comparison_table", "published"]
