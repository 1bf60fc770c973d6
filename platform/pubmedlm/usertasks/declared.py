"""The declared user tasks as rows of the task lookup (`blurb.tasks.get`), and the check of the
dataset lists that name them.

`activate(cfg)` reads `tasks.files` (`schema.load_task_files`), builds each task's registry row
(`to_task`: the one prepared in `data/blurb_data/<id>/meta.json` when blurb-data has run, which
carries the label set read from the data; else the row from the task file alone) and hands them to
`blurb.tasks.use_user_tasks`. It then checks `finetune.datasets` and `finetune.seeds`: an id that
is neither BLURB's nor declared is an error naming the task files. (The config only lets such ids
through when `tasks.files` is set: reading task files there would make every stage's code depend
on this package.) The stages that read tasks by id (blurb-data, tune, finetune, evaluate,
register, `pubmedlm blurb`) call it first, before any compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pubmedlm.blurb import tasks
from pubmedlm.blurb.tasks import SPLITS, UNITS, Task
from pubmedlm.usertasks.schema import FileRef, TaskFileError, UserTaskSpec, load_task_files

if TYPE_CHECKING:
    from pubmedlm.config import Config


def split_file(spec: UserTaskSpec, split: str) -> FileRef:
    """A split's declared file (or the one `hf_disk` folder)."""
    return spec.files if isinstance(spec.files, FileRef) else spec.files[split]


def task_labels(spec: UserTaskSpec, names: list[str]) -> tuple[str, ...]:
    """The registry's label set: NER `B-<type>`, `I-<type>` per type then `O` (untyped: B, I, O);
    classes as declared (or inferred, sorted); none for regression."""
    if spec.target != "tags":
        return tuple(names)
    return (*(f"{p}-{t}" if t else p for t in names for p in "BI"), "O")


def to_task(spec: UserTaskSpec, labels: tuple[str, ...]) -> Task:
    """The registry row of a user task (what tune, finetune and scoring read)."""
    layout = spec.input.model_dump(exclude_defaults=True)
    if spec.target == "tags":
        layout["tags"] = "BIO"  # the readers write IOB2 whatever the files' scheme
    return Task(
        id=spec.id, paper_name=spec.id, folder=spec.id, task_type=spec.task_type, head=spec.head,
        format=spec.format, files={s: (split_file(spec, s).label(),) for s in SPLITS}, labels=labels,
        metric=spec.metric, metric_args=dict(spec.metric_args), max_length=spec.max_length, input=layout,
        unit=UNITS[spec.task_type], paper_counts={}, notes=" ".join(spec.notes.split()),
    )


def activate(cfg: Config, root: Path | None = None) -> dict[str, Task]:
    """Declare `cfg.tasks.files`' tasks to `blurb.tasks.get` (replacing earlier ones) and check the
    dataset lists against them; returns the user tasks' rows by id."""
    from pubmedlm.project import data_dir, project_root

    root = root or project_root()
    specs = load_task_files(cfg.tasks.files, root)
    gold = data_dir("blurb_data", root)
    rows = {}
    for spec in specs:
        declared = [] if spec.labels == "infer" else list(spec.labels)
        rows[spec.id] = tasks.prepared_user_task(gold, spec.id) or to_task(spec, task_labels(spec, declared))
    tasks.use_user_tasks(rows)
    named = {"finetune.datasets": list(cfg.finetune.datasets),
             "finetune.seeds": [k for k in cfg.finetune.seeds if k != "default"]}
    for param, ids in named.items():
        unknown = [d for d in ids if not tasks.is_blurb(d) and d not in rows]
        if unknown:
            files = ", ".join(cfg.tasks.files) or "none"
            yours = ", ".join(f"{s.id} ({s.task_file})" for s in specs) or "none"
            raise TaskFileError(f"{param}: {', '.join(unknown)} is neither a BLURB dataset nor a task of "
                                f"the task files (tasks.files: {files}; their tasks: {yours})")
    return rows


__all__ = ["activate", "split_file", "task_labels", "to_task"]
