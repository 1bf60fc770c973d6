"""What the tune, finetune and evaluate stages share: which tasks are available, the run settings
built from params, the flags of a capped or proxy run, a trial's or seed's Ray resources, and
where each task's outputs live. (The encoder is resolved by `text.models.resolve_encoder`.)

Output layout (the DVC pipeline; `pubmedlm blurb --model X` writes the same tree under
`data/blurb/<model name>/`). The outputs hold the recipe's results only, no tracking URI or run
id: a task's MLflow run is found on the configured server by its tags (`infra.tracking`).

| path | what |
|---|---|
| `tune/<task>/best.json` | the chosen configuration, its dev score, the encoder's label, flags |
| `tune/<task>/trials.csv`, `trials.json` | \
every trial: status, configuration, epochs run, dev scores, error |
| `finetune/<task>/results.json` | per-seed dev and test scores, mean and std, flags |
| `finetune/<task>/predictions/seed-<k>/{dev,test}/<task>.jsonl` | \
each seed's predictions (`blurb.predictions` format) |
| `finetune/<task>/model/` | the best-dev seed's model in HF format, with its tokenizer |
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pubmedlm.blurb import tasks
from pubmedlm.blurb.flags import NOT_COMPARABLE
from pubmedlm.config import Config
from pubmedlm.finetune.features import FinetuneError
from pubmedlm.finetune.fit import Settings
from pubmedlm.project import metrics_path, project_root


def availability(gold_dir: Path, task_id: str, root: Path) -> str | None:
    """None when blurb-data prepared the task; else why not (from metrics/blurb_data.json)."""
    if (gold_dir / task_id / "meta.json").is_file() and (gold_dir / task_id / "train.jsonl").is_file():
        return None
    report = metrics_path("blurb_data", root)
    if report.is_file():
        entry = json.loads(report.read_text()).get("datasets", {}).get(task_id, {})
        if entry.get("missing_reason"):
            return str(entry["missing_reason"])
    return f"not prepared in {gold_dir} (run `pubmedlm blurb-data` with {task_id} in blurb_data.datasets)"


def is_proxy(gold_dir: Path, task_id: str) -> bool:
    meta = gold_dir / task_id / "meta.json"
    return meta.is_file() and json.loads(meta.read_text()).get("status") == "proxy"


def settings(cfg: Config, task_id: str, model: str, gold_dir: Path) -> Settings:
    """A task's run settings; the dataset id and the stabilizers' layer counts checked against the
    task table and the model's config (a `FinetuneError` naming the param, before any compute)."""
    from pubmedlm.finetune.stabilizers import check_layers

    tasks.get(task_id, gold_dir)  # unknown ids fail here, by name
    check_layers(cfg.finetune, model)
    return Settings(model=model, task=task_id, gold_dir=str(gold_dir), finetune=cfg.finetune,
                    runtime=cfg.runtime,
                    features_dir=str(project_root() / cfg.runtime.cache_dir / "features"))


def resources(cfg: Config) -> dict[str, float]:
    """Ray resources of one trial or seed: a worker's CPUs, and its GPU when there is one."""
    rt = cfg.runtime
    return {"cpu": rt.cpus_per_worker, **({"gpu": rt.gpus_per_worker} if rt.gpus_per_worker else {})}


def flags(cfg: Config, gold_dir: Path, task_id: str) -> dict[str, Any]:
    """Why a task's score may not be comparable with the paper's."""
    f = cfg.finetune
    caps = {k: getattr(f, k) for k in ("max_train_examples", "max_eval_examples", "max_length")
            if getattr(f, k)}
    return {"proxy": is_proxy(gold_dir, task_id), "capped": bool(caps), "caps": caps,
            "note": (f"{NOT_COMPARABLE}: capped run ({', '.join(f'{k}={v}' for k, v in caps.items())})"
                     if caps else "")}


def require_task(stage: str, task: str | None, cfg: Config) -> str:
    """A stage run per dataset needs one named (`--task ID`); returns its dataset id."""
    if task is None:
        raise FinetuneError(f"{stage}: name the task (--task ID); DVC runs one {stage} stage per dataset")
    return check_task(task, cfg)


def check_task(task_id: str, cfg: Config) -> str:
    """The dataset id of a task name (BLURB's, or one of the task files in `tasks.files`, which are
    declared to the task lookup here), or a FinetuneError naming the known ids."""
    from pubmedlm.usertasks.declared import activate

    activate(cfg)
    try:
        return tasks.get(task_id).id
    except KeyError as e:
        raise FinetuneError(str(e.args[0])) from None


__all__ = ["availability", "check_task", "flags", "is_proxy", "require_task", "resources", "settings"]
