"""The benchmarks under pipelines/bench run end to end at tiny sizes and print their SUMMARY line
(their figures are measured by running them in full, not here; this keeps them runnable as the
package changes under them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "pipelines" / "bench"

RUNS = {
    "finetune_throughput": ["--tasks", "NCBI-disease", "--max-train", "32", "--max-eval", "16",
                            "--epochs", "1"],
    "pretrain_throughput": ["--models", "small", "--rounds", "1", "--steps", "small=1", "--warmup", "1",
                            "--batch", "small=4", "--peak-size", "256"],
    "bootstrap": ["--datasets", "NCBI-disease", "--samples", "5"],
    "corpus_ingest": ["--repeat", "1", "--base-mb", "0.5"],
    "pack_throughput": ["--copies", "1", "--repeats", "1"],
    "hpo_efficiency": ["--tasks", "NCBI-disease", "--epochs", "1", "--samples", "2", "--startup", "1",
                       "--max-train", "32", "--max-eval", "16"],
}


pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", list(RUNS))
def test_benchmark_runs_and_summarises(name: str, tmp_path: Path, mirror: Path) -> None:
    own_workdir = name in ("finetune_throughput", "bootstrap", "hpo_efficiency")
    args = [*RUNS[name]] + (["--workdir", str(tmp_path / "w")] if own_workdir else [])
    env = {**os.environ, "PUBMEDLM_DATA_MIRROR": str(mirror)}
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith(f"SUMMARY {name}: ")]
    assert len(summary) == 1, proc.stdout[-3000:]
