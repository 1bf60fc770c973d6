"""Pipeline stages: one module per stage, each exposing `run(cfg, params_file) -> StageResult`.

The stage name is the module, the CLI subcommand, the DVC stage, the MLflow run name and the
output folder (`data/<stage>/`, `metrics/<stage>.json`, `reports/<stage>/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pubmedlm.config import Config
from pubmedlm.project import write_yaml

RESOLVED_CONFIG = "config.yaml"


@dataclass
class StageResult:
    """What a stage produced: its outputs, its headline metrics and its MLflow run."""

    stage: str
    outputs: dict[str, Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None


def write_resolved_config(folder: Path, cfg: Config, sections: tuple[str, ...]) -> Path:
    """Write the sections a stage depends on beside its output (recipe only: no runtime, so the
    output's bytes, and its DVC hash, depend on nothing but the recipe and the inputs)."""
    path = folder / RESOLVED_CONFIG
    write_yaml(path, {name: cfg.section(name) for name in sections})
    return path
