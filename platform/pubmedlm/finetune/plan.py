"""What the tune, finetune and evaluate stages share: which encoder, which tasks are available,
the run settings built from params, and where each task's outputs live.

Output layout (the DVC pipeline; `pubmedlm blurb --model X` writes the same tree under
`data/blurb/<model name>/`):

| path | what |
|---|---|
| `tune/<task>/best.json` | the chosen configuration, its dev score, the task's MLflow parent run, flags |
| `tune/<task>/trials.csv`, `trials.json` | every trial: status, configuration, epochs run, dev scores, error |
| `finetune/<task>/results.json` | per-seed dev and test scores, mean and std, flags |
| `finetune/<task>/predictions/seed-<k>/{dev,test}/<task>.jsonl` | each seed's predictions (`blurb.predictions` format) |
| `finetune/<task>/model/` | the best-dev seed's model in HF format, with its tokenizer |
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pubmedlm.blurb import tasks
from pubmedlm.blurb.flags import NOT_COMPARABLE
from pubmedlm.config import Config
from pubmedlm.finetune.features import CodecOptions, FinetuneError
from pubmedlm.finetune.fit import Settings
from pubmedlm.project import data_dir, metrics_path
from pubmedlm.text.models import resolve_model

PRETRAIN = "pretrain"


def resolve_encoder(cfg: Config, root: Path, model: str | None = None) -> str:
    """The encoder to fine-tune: `model`, else `finetune.model` (`pretrain` = this pipeline's model)."""
    name = model or cfg.finetune.model
    if name == PRETRAIN:
        path = data_dir("pretrain", root) / "model"
        if not (path / "config.json").is_file():
            raise FinetuneError(f"finetune.model: pretrain, but {path} holds no model; run `pubmedlm pretrain` "
                                "or set finetune.model to `minilm`, a local HF folder or a hub id")
        return str(path)
    return resolve_model(name)


def model_label(model: str) -> str:
    """A short, file-safe name for a model (MLflow experiment and folder names)."""
    if model == "minilm":
        return "minilm"
    name = Path(model.rstrip("/")).name if Path(model).exists() else model
    if name == "model" and Path(model).exists():
        name = Path(model.rstrip("/")).parent.name + "-model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def content_id(path: str) -> str:
    """What identifies a model or dataset folder: its DVC hash (md5 of the files); a hub id stays its name."""
    from pubmedlm.infra.lineage import dvc_hash

    return dvc_hash(Path(path)) if Path(path).is_dir() else path


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
    f, rt = cfg.finetune, cfg.runtime
    tasks.get(task_id)  # unknown ids fail here, by name
    return Settings(
        model=model, task=task_id, gold_dir=str(gold_dir),
        codec=CodecOptions(tagging=f.tagging, re_entity=f.re_entity, re_pooling=f.re_pooling, max_length=f.max_length),
        precision=f.precision, max_grad_norm=f.max_grad_norm, adam_betas=tuple(f.adam_betas), adam_eps=f.adam_eps,
        max_train_examples=f.max_train_examples, max_eval_examples=f.max_eval_examples,
        attention_dropout=f.attention_dropout, micro_batch=rt.micro_batch_size, eval_batch=2 * rt.micro_batch_size,
        threads=rt.cpus_per_worker, device=rt.device,
    )


def resources(cfg: Config) -> dict[str, float]:
    """Ray resources of one trial or seed: a worker's CPUs, and its GPU when there is one."""
    rt = cfg.runtime
    return {"cpu": rt.cpus_per_worker, **({"gpu": rt.gpus_per_worker} if rt.gpus_per_worker else {})}


def flags(cfg: Config, gold_dir: Path, task_id: str) -> dict[str, Any]:
    """Why a task's score may not be comparable with the paper's."""
    f = cfg.finetune
    caps = {k: getattr(f, k) for k in ("max_train_examples", "max_eval_examples", "max_length") if getattr(f, k)}
    return {"proxy": is_proxy(gold_dir, task_id), "capped": bool(caps), "caps": caps,
            "note": f"{NOT_COMPARABLE}: capped run ({', '.join(f'{k}={v}' for k, v in caps.items())})" if caps else ""}


def require_task(stage: str, task: str | None) -> str:
    """A stage run per dataset needs one named (`--task ID`); returns its registry id."""
    if task is None:
        raise FinetuneError(f"{stage}: name the task (--task ID); DVC runs one {stage} stage per dataset")
    return check_task(task)


def check_task(task_id: str) -> str:
    """The registry id of a task name, or a FinetuneError naming the known ids."""
    try:
        return tasks.get(task_id).id
    except KeyError as e:
        raise FinetuneError(str(e.args[0])) from None


__all__ = ["PRETRAIN", "availability", "check_task", "content_id", "flags", "is_proxy",
           "model_label", "require_task", "resolve_encoder", "resources", "settings"]
