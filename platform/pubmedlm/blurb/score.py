"""The BLURB score: the mean over BLURB's six task types of the mean over each type's datasets.

Owns the aggregation and the rule that a score with any dataset missing or replaced by a proxy is
"partial" and says so wherever it is shown (`str()`, `as_dict()`, `label`). The dataset ->
task-type grouping and the names (the paper's; dataset ids and data folders' names accepted as
aliases) come from the task table (`tasks.type_groups`, `tasks.name_aliases`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pubmedlm.blurb.tasks import name_aliases, type_groups

# The paper's six task types and their datasets (paper names), in the paper's table order: from
# the task table (resources/blurb_tasks.yaml), the one place that names them.
TASK_TYPES: dict[str, tuple[str, ...]] = type_groups()
DATASETS: tuple[str, ...] = tuple(d for group in TASK_TYPES.values() for d in group)
TASK_TYPE_OF = {d: t for t, group in TASK_TYPES.items() for d in group}

# Registry ids and data-folder names (`blurb/<name>/` in the mirror) -> the paper's names; the
# task table (resources/blurb_tasks.yaml) is the one place that lists them.
ALIASES = name_aliases()
_BY_LOWER = {name.lower(): name for name in DATASETS} | {a.lower(): d for a, d in ALIASES.items()}


def canonical(name: str) -> str:
    """The paper's name of a BLURB dataset, from either naming (case-insensitive)."""
    try:
        return _BY_LOWER[name.lower()]
    except KeyError:
        raise KeyError(f"unknown BLURB dataset {name!r}; known: {', '.join(DATASETS)}") from None


@dataclass(frozen=True)
class BlurbScore:
    """A BLURB score and what it was computed from.

    `value` is on the scale of the inputs (the paper's tables use percentages). `per_type` holds
    the mean of each task type that had at least one dataset; `used` the datasets averaged,
    `missing` the BLURB datasets without a result, `proxies` those scored on a stand-in."""

    value: float
    per_type: dict[str, float]
    used: tuple[str, ...]
    missing: tuple[str, ...]
    proxies: tuple[str, ...]

    @property
    def partial(self) -> bool:
        return bool(self.missing or self.proxies)

    @property
    def label(self) -> str:
        """`BLURB` or `BLURB (partial: ...)`: the name to print beside the value."""
        if not self.partial:
            return "BLURB"
        notes = []
        if self.missing:
            notes.append(f"missing {', '.join(self.missing)}")
        if self.proxies:
            notes.append(f"proxy {', '.join(self.proxies)}")
        return f"BLURB (partial: {'; '.join(notes)})"

    def __str__(self) -> str:
        return f"{self.label}: {self.value:.2f}"

    def as_dict(self) -> dict:
        """JSON-ready form for metrics files and MLflow; `partial` and its reasons always present."""
        return {
            "blurb": self.value, "partial": self.partial, "label": self.label,
            "per_type": dict(self.per_type), "used": list(self.used),
            "missing": list(self.missing), "proxies": list(self.proxies),
        }


def blurb_score(results: Mapping[str, float], proxies: Iterable[str] = ()) -> BlurbScore:
    """Aggregate per-dataset test scores into the BLURB score.

    Each task type's score is the unweighted mean of its datasets present in `results`; the
    BLURB score is the unweighted mean of the task types with at least one dataset. A missing
    dataset, a missing task type, or any name in `proxies` makes the score partial."""
    scores = {canonical(name): float(v) for name, v in results.items()}
    if len(scores) != len(results):
        raise ValueError(f"results name a dataset twice under two names: {sorted(results)}")
    proxy_set = {canonical(p) for p in proxies}
    if proxy_set - scores.keys():
        raise ValueError(f"proxies without a result: {sorted(proxy_set - scores.keys())}")
    if not scores:
        raise ValueError("no dataset results to aggregate")
    per_type = {}
    for task_type, datasets in TASK_TYPES.items():
        present = [scores[d] for d in datasets if d in scores]
        if present:
            per_type[task_type] = math.fsum(present) / len(present)
    return BlurbScore(
        value=math.fsum(per_type.values()) / len(per_type),
        per_type=per_type,
        used=tuple(d for d in DATASETS if d in scores),
        missing=tuple(d for d in DATASETS if d not in scores),
        proxies=tuple(d for d in DATASETS if d in proxy_set),
    )


__all__ = ["ALIASES", "DATASETS", "TASK_TYPES", "TASK_TYPE_OF", "BlurbScore", "blurb_score", "canonical"]
