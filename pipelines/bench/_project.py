"""Shared by the fine-tuning benchmarks: a throw-away project with some BLURB datasets prepared."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MIRROR = Path(os.environ.get("PUBMEDLM_DATA_MIRROR") or REPO.parent / "shared" / "data").resolve()


def make_project(datasets: list[str], extra: dict, workdir: str | None = None) -> Path:
    """A project root (params.yaml + data/blurb_data for `datasets`); env vars point the package at it."""
    from pubmedlm.config import load_config
    from pubmedlm.stages import blurb_data

    root = Path(workdir or tempfile.mkdtemp(prefix="pubmedlm-bench-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({
        "corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]},
        "blurb_data": {"datasets": datasets}, **extra}), encoding="utf-8")
    os.environ.update({"PUBMEDLM_PROJECT_ROOT": str(root), "PUBMEDLM_DATA_MIRROR": str(MIRROR),
                       "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    os.chdir(root)
    if not all((root / "data/blurb_data" / d / "meta.json").is_file() for d in datasets):
        result = blurb_data.run(load_config(params), params_file=params)
        status = json.loads(result.outputs["metrics"].read_text(encoding="utf-8"))["datasets"]
        missing = {d: status[d]["missing_reason"] for d in datasets if status[d]["status"] == "missing"}
        if missing:
            raise SystemExit("benchmark datasets not prepared: "
                             + "; ".join(f"{d}: {why[:300]}" for d, why in missing.items()))
    return root
