"""Users' tasks in the results: what evaluate adds to a user task's line (its metric, and the
metric's breakdown: typed NER per type and micro) and the "Your tasks" table that the evaluate
page and the report show apart from BLURB's (a user task is never part of the BLURB score)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TITLE = "Your tasks (tasks.files; not BLURB, not in the BLURB score)"


def extras(task_id: str, best_seed: int, gold_dir: Path, finetune_dir: Path) -> dict[str, Any]:
    """A user task's metric and its breakdown on the best-dev seed's test predictions (None when the
    metric has none)."""
    from pubmedlm.blurb import predictions, tasks

    task = tasks.get(task_id, gold_dir)
    path = finetune_dir / task_id / "predictions" / f"seed-{best_seed}" / "test" / f"{task_id}.jsonl"
    return {"metric": task.metric, "task_type": task.task_type, "best_seed": best_seed,
            "per_type": predictions.breakdown(gold_dir, task, path, "test")}


def table(yours: dict[str, Any], level: str = "##") -> list[str]:
    """Markdown lines of the users' tasks (test mean ± std over seeds, per-type F1), or none."""
    if not yours:
        return []
    lines = ["", f"{level} {TITLE}", "",
             "| task | metric | test mean ± std | seeds | dev mean | per type F1 (best-dev seed, test) |",
             "|---|---|---|---|---|---|"]
    for task_id, e in yours.items():
        per = ", ".join(f"{k} {100 * v['f1']:.2f}" for k, v in (e.get("per_type") or {}).items()) or "–"
        lines.append(f"| {task_id} | {e['metric']} | {e['mean']:.2f} ± {e['std']:.2f} | {e['seeds']} | "
                     f"{e['dev_mean']:.2f} | {per} |")
    return lines


__all__ = ["TITLE", "extras", "table"]
