"""DVC cannot report stale fine-tuning results as up to date, and does not rerun them for nothing.

In a temporary git + DVC repository with the repo's own code and dvc.yaml: the fine-tuning stages'
lock entries are recorded over placeholder outputs (`dvc commit`: what is checked here is DVC's
view of the dependencies, not the training), then
- editing the optimizer (`train/optim.py`) makes `dvc status` report every `tune@*` and
  `finetune@*` stage changed;
- with `finetune.model: minilm`, a new pipeline model (`data/pretrain`) reruns the `encoder` stage,
  which writes the same pin, so the fine-tuning stages stay up to date;
- with `finetune.model: pretrain`, the same change makes them stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import make_dvc_repo
from conftest import sh as _sh

pytestmark = [pytest.mark.dvc]

DATASETS = ["NCBI-disease", "GAD"]
STAGES = [f"{s}@{d}" for s in ("tune", "finetune") for d in DATASETS]


def _placeholders(root: Path) -> None:
    """Outputs for the stages DVC is asked to commit (their content is irrelevant here)."""
    for rel in ("data/blurb_data/NCBI-disease/meta.json",):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}\n")
    model = root / "data/pretrain/model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "bert", "revision": 1}) + "\n")
    for stage in ("tune", "finetune"):
        for d in DATASETS:
            (root / f"data/{stage}/{d}").mkdir(parents=True)
            (root / f"data/{stage}/{d}/result.json").write_text("{}\n")
            (root / f"metrics/{stage}").mkdir(parents=True, exist_ok=True)
            (root / f"metrics/{stage}/{d}.json").write_text("{}\n")


def _stale(root: Path, env: dict[str, str]) -> set[str]:
    out = _sh([sys.executable, "-m", "dvc", "status", "--json", *STAGES], root, env)
    return set(json.loads(out[out.index("{"):]) if "{" in out else {})


def _new_pretrained_model(root: Path, env: dict[str, str], revision: int) -> None:
    (root / "data/pretrain/model/config.json").write_text(
        json.dumps({"model_type": "bert", "revision": revision}))
    _sh([sys.executable, "-m", "dvc", "repro", "-q", "--single-item", "encoder"], root, env)


@pytest.mark.parametrize("model", ["minilm", "pretrain"])
def test_code_and_encoder_changes_reach_the_finetuning_stages(tmp_path: Path, model: str) -> None:
    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["finetune"].update(datasets=DATASETS, model=model)
    params["runtime"]["progress"] = False
    root, env = make_dvc_repo(tmp_path, tmp_path / "no-mirror", params)
    dvc = [sys.executable, "-m", "dvc"]
    _placeholders(root)
    _sh([*dvc, "repro", "-q", "--single-item", "encoder"], root, env)
    pinned = json.loads((root / "data/encoder/encoder.json").read_text())
    assert pinned["model"] == model and pinned["content_id"]
    _sh([*dvc, "commit", "-f", "-q", *STAGES], root, env)
    assert _stale(root, env) == set()

    _new_pretrained_model(root, env, revision=2)
    stale = _stale(root, env)
    assert stale == (set(STAGES) if model == "pretrain" else set()), stale

    if model == "minilm":
        optim = root / "platform/pubmedlm/train/optim.py"
        optim.write_text(optim.read_text() + "\n# a change to the optimizer\n")
        assert _stale(root, env) == set(STAGES)
