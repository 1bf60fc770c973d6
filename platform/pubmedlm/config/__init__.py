"""Typed, validated configuration: the one reader of ``params.yaml``.

Every number of the recipe lives in ``params.yaml`` (one section per stage) and is parsed here
into pydantic models that reject unknown keys. The ``runtime`` section holds what changes speed or
placement but never results (device, workers, MLflow URI, Ray address); DVC stages do not depend
on it, so moving from a laptop to a cluster keeps the DVC cache valid.

``load_config(path, overrides)`` applies ``a.b=c`` overrides (values parsed as YAML) and turns any
validation failure into a ``ConfigError`` that names the offending key and the file.
"""

from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from pubmedlm.config.base import ConfigError, StrictModel, format_errors, read_yaml
from pubmedlm.config.blurb import (
    BlurbDataConfig,
    FinetuneConfig,
    FloatRange,
    HParams,
    RegisterConfig,
    SearchSpace,
    TasksConfig,
    TuneConfig,
    blurb_dataset_ids,
)
from pubmedlm.config.pretraining import (
    CorpusConfig,
    ModelShape,
    PackConfig,
    PhaseConfig,
    PretrainConfig,
    RuntimeConfig,
    SourceSpec,
    VocabConfig,
)


class Config(StrictModel):
    """The whole recipe plus runtime, as read from one params file."""

    runtime: RuntimeConfig = RuntimeConfig()
    """Speed and placement (not a DVC dependency)."""
    corpus: CorpusConfig
    """The `corpus` stage."""
    vocab: VocabConfig = VocabConfig()
    """The `vocab` stage."""
    pack: PackConfig = PackConfig()
    """The `pack` stage."""
    blurb_data: BlurbDataConfig = BlurbDataConfig()
    """The `blurb-data` stage."""
    tasks: TasksConfig = TasksConfig()
    """Users' own tasks declared in task files: prepared by blurb-data, fine-tuned and scored beside
    BLURB's datasets (never inside the BLURB score)."""
    pretrain: PretrainConfig | None = None
    """The `pretrain` stage (required to run it)."""
    finetune: FinetuneConfig = FinetuneConfig()
    """Fine-tuning on BLURB (the `tune`, `finetune` stages and `pubmedlm blurb`)."""
    tune: TuneConfig = TuneConfig()
    """The `tune` stage's hyperparameter search."""
    register_: RegisterConfig = Field(default_factory=RegisterConfig, alias="register")
    """The `register` stage (MLflow Model Registry); `register` in params files (the Python name
    has a trailing underscore: `register` is a method of every pydantic model's metaclass)."""

    def section(self, name: str) -> dict[str, Any]:
        """One section as plain data (what is written beside a stage's output)."""
        field = next((f for f, info in type(self).model_fields.items() if (info.alias or f) == name), name)
        return getattr(self, field).model_dump(mode="json")


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = data
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: cannot set '{dotted}': "
                              f"'{'.'.join(keys[: i + 1])}' is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=c` -> ("a.b", yaml-parsed c)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. vocab.vocab_size=8000")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    return key, yaml.safe_load(raw) if raw.strip() else None


def _is_text_field(keys: list[str]) -> bool:
    """Whether the param at this dotted path takes text only (so `--set` keeps the raw value)."""
    model: Any = Config
    for i, key in enumerate(keys):
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        if key not in fields:
            return False
        ann = fields[key].annotation
        union = typing.get_origin(ann) in (typing.Union, types.UnionType)
        args = set(typing.get_args(ann)) - {type(None)} if union else {ann}
        if i < len(keys) - 1:
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(models) != 1:
                return False
            model = models[0]
        else:
            return args == {str}
    return False


def load_config(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Config:
    """Read, override and validate a params file; errors name the key and the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    data = copy.deepcopy(data)
    source = str(path)
    for text in overrides or []:
        key, value = parse_override(text)
        if _is_text_field(key.split(".")):  # `--set register.prefix=0123` is text, not octal 83
            value = text.split("=", 1)[1].strip()
        _set_dotted(data, key, value, f"{path} (--set {key})")
        source = f"{path} with --set {', '.join(overrides or [])}"
    tasks = data.get("tasks")
    declared = isinstance(tasks, dict) and bool(tasks.get("files"))  # ids checked by usertasks.declared
    try:
        return Config.model_validate(data, context={"user_tasks": declared})
    except ValidationError as e:
        raise ConfigError(format_errors(e, source)) from None


def describe(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, type, description) for every field: the reference behind `pubmedlm params`."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.append((key, "section", field.description or ""))
            rows.extend(describe(ann, key + "."))
        else:
            rows.append((key, str(ann).replace("typing.", ""), field.description or ""))
    return rows


__all__ = ["BlurbDataConfig", "Config", "ConfigError", "CorpusConfig", "FinetuneConfig", "FloatRange",
           "HParams", "ModelShape", "PackConfig", "PhaseConfig", "PretrainConfig", "RegisterConfig",
           "RuntimeConfig", "SearchSpace", "SourceSpec", "StrictModel", "TasksConfig", "TuneConfig",
           "VocabConfig",
           "blurb_dataset_ids", "describe", "load_config", "parse_override"]
