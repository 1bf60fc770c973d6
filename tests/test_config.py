"""Typed params: unknown keys and bad types are errors naming the key and the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from pubmedlm.blurb import tasks
from pubmedlm.config import ConfigError, describe, load_config


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_repo_params_is_the_tiny_profile_of_the_paper_recipe() -> None:
    tiny = load_config(REPO / "params.yaml")
    paper = load_config(REPO / "pipelines" / "profiles" / "paper.yaml")
    # CPU-only, and every stage's work a small fraction of the paper's ...
    assert tiny.runtime.gpus_per_worker == 0 and tiny.runtime.device in ("auto", "cpu")
    assert tiny.vocab.vocab_size < paper.vocab.vocab_size
    assert tiny.pretrain.model.hidden_size < paper.pretrain.model.hidden_size
    assert tiny.pretrain.model.num_layers < paper.pretrain.model.num_layers

    def tokens(cfg) -> int:
        return sum(p.steps * p.global_batch * p.seq_len for p in cfg.pretrain.phases)

    assert tokens(tiny) * 10_000 < tokens(paper)
    assert tiny.tune.num_samples < paper.tune.num_samples
    # ... and capped (its scores flagged not comparable), where the paper profile is not ...
    assert tiny.finetune.max_train_examples and tiny.finetune.max_eval_examples and tiny.finetune.max_length
    f = paper.finetune
    assert (f.max_train_examples, f.max_eval_examples, f.max_length) == (None, None, None)
    assert tiny.blurb_data.pico_proxy_from_dev and not paper.blurb_data.pico_proxy_from_dev
    # ... through the same code path: the same stages, phases and prepared datasets; the tiny
    # profile fine-tunes one dataset of each of BLURB's six task types (the demo's time budget).
    assert [p.seq_len for p in tiny.pretrain.phases] == [p.seq_len for p in paper.pretrain.phases]
    assert paper.finetune.datasets == paper.blurb_data.datasets == tiny.blurb_data.datasets
    assert set(tiny.finetune.datasets) <= set(tiny.blurb_data.datasets)
    types = [tasks.get(name).type_name for name in tiny.finetune.datasets]
    assert sorted(types) == sorted(set(types)) == sorted({t.type_name for t in tasks.all_tasks().values()})


def test_paper_profile_validates_and_matches_the_recipe() -> None:
    cfg = load_config(REPO / "pipelines" / "profiles" / "paper.yaml")
    assert cfg.vocab.vocab_size == 30522
    assert cfg.vocab.lowercase is True
    assert cfg.corpus.min_words == 128
    assert cfg.runtime.gpus_per_worker == 1 and cfg.runtime.num_workers == 16


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["vocab"]["vocab_sise"] = 100
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "unknown key 'vocab.vocab_sise'" in str(err.value)
    assert str(path) in str(err.value)


def test_bad_type_names_key_and_file(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["corpus"]["min_words"] = "many"
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=r"bad value for 'corpus.min_words'") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["pretrian"] = {"steps": 1}
    with pytest.raises(ConfigError, match="unknown key 'pretrian'"):
        load_config(_write(tmp_path, data))


def test_overrides_are_typed_and_checked() -> None:
    cfg = load_config(REPO / "params.yaml", ["vocab.vocab_size=8000", "runtime.progress=false"])
    assert cfg.vocab.vocab_size == 8000 and cfg.runtime.progress is False
    with pytest.raises(ConfigError, match=r"--set vocab.nope.*unknown key 'vocab.nope'"):
        load_config(REPO / "params.yaml", ["vocab.nope=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(REPO / "params.yaml", ["vocab.vocab_size"])


def test_every_field_is_documented() -> None:
    undocumented = [key for key, _kind, text in describe() if not text.strip()]
    assert undocumented == []


def test_cli_reports_bad_key_with_exit_code_2(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pubmedlm.cli", "params", "--params", str(REPO / "params.yaml"),
         "--set", "corpus.min_wrods=3"],
        capture_output=True, text=True,
    )
    assert out.returncode == 2
    assert "unknown key 'corpus.min_wrods'" in out.stderr and "params.yaml" in out.stderr
