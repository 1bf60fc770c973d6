"""Pretraining: masking on real text and bad input before compute (hermetic: the committed
abstracts), and real Ray Train runs on the mirror's corpus sample (loss falls and beats the unigram
baseline; 2-worker DDP equals 1 worker accumulating; SIGKILL of a worker resumes from the last
checkpoint to the same final weights)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from conftest import build_packed_project, fixture_abstracts, ohsumed_docs, pack_project
from pubmedlm.config import load_config
from pubmedlm.text.models import load_tokenizer
from pubmedlm.train.mlm import IGNORE, vocab_info, whole_word_mask
from pubmedlm.train.pretraining import PretrainError

TINY = {
    "init": "scratch",
    "model": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
              "max_position_embeddings": 128, "dropout": 0.1},
    "phases": [{"seq_len": 64, "steps": 12, "global_batch": 16}],
    "peak_lr": 2e-3, "eval_every": 6, "eval_batches": 2, "checkpoint_every": 4, "log_every": 1,
    "max_failures": 2,
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Path:
    """A project with a real corpus sample, an in-domain vocab and packed 64-token sequences."""
    return build_packed_project(tmp_path_factory.mktemp("pretrain"), mirror, TINY)


@pytest.fixture
def small_packed(tmp_path: Path) -> Path:
    """`packed` in small and hermetic: the 200 committed abstracts (20 held out), a 2000-entry vocab."""
    return pack_project(tmp_path / "small", fixture_abstracts(200), TINY, heldout=20)


def _run_stage(root: Path, mirror: Path, *overrides: str, wait: bool = True,
               tracking: str | None = None) -> subprocess.Popen | dict:
    """`pubmedlm pretrain` in its own process, as DVC runs it."""
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "PUBMEDLM_DATA_MIRROR": str(mirror),
           "MLFLOW_TRACKING_URI": tracking or f"sqlite:///{root / 'mlflow.db'}", "RAY_DEDUP_LOGS": "0",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    args = [sys.executable, "-m", "pubmedlm.cli", "pretrain", "--params", str(root / "params.yaml")]
    for o in overrides:
        args += ["--set", o]
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    return json.loads((root / "metrics" / "pretrain.json").read_text())


def _weights(root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(root / "data" / "pretrain" / "model" / "model.safetensors")


def _loss_history(root: Path, run_name: str = "pretrain") -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pubmedlm")
    run = client.search_runs([exp.experiment_id], f"attributes.run_name = '{run_name}'",
                             order_by=["start_time DESC"])[0]
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/mlm_loss"))


# ---- masking: pure, on real text ---------------------------------------------------------------


def test_whole_word_masking_masks_whole_words_only() -> None:
    tok = load_tokenizer("minilm")
    info = vocab_info(tok)
    texts = [" ".join(d.split()[:60]) for d in fixture_abstracts(16)]
    enc = tok(texts, padding="max_length", max_length=96, truncation=True, return_tensors="pt")
    for seed in range(5):
        masked, labels = whole_word_mask(enc["input_ids"], info, 0.15, torch.Generator().manual_seed(seed))
        for row in range(len(texts)):
            words = enc.word_ids(row)  # the tokenizer's own word grouping: the reference
            target = {i for i in range(96) if labels[row, i] != IGNORE}
            chosen = {words[i] for i in target}
            assert None not in chosen, "special tokens and padding are never targets"
            expected = {i for i, w in enumerate(words) if w in chosen}
            assert target == expected, "every piece of a chosen word, and nothing else"
            n_words = len({w for w in words if w is not None})
            assert len(chosen) == max(1, round(n_words * 0.15))
            assert (labels[row][labels[row] != IGNORE] == enc["input_ids"][row][labels[row] != IGNORE]).all()
        replaced = (masked != enc["input_ids"]) & (labels == IGNORE)
        assert not replaced.any(), "nothing outside the targets changes"
    share_mask = (masked[labels != IGNORE] == tok.mask_token_id).float().mean()
    assert 0.6 < share_mask < 0.95


# ---- bad input, before any compute ---------------------------------------------------------------


def _cfg(root: Path, *overrides: str):
    return load_config(root / "params.yaml", list(overrides))


def test_bad_input_is_refused_before_compute(small_packed: Path, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    from pubmedlm.stages.pretrain import validate

    packed = small_packed
    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(packed))
    validate(_cfg(packed), packed)  # the fixture's config is fine
    with pytest.raises(PretrainError,
                       match=r"global_batch 16 is not divisible by workers × micro-batch = 1 × 6"):
        validate(_cfg(packed, "runtime.micro_batch_size=6"), packed)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PretrainError, match="holds no model"):
        validate(_cfg(packed, f"pretrain.init={empty}", "pack.tokenizer=minilm"), packed)
    with pytest.raises(PretrainError,
                       match=r"vocab mismatch: data/pack was tokenized with a 2000-entry vocab"):
        validate(_cfg(packed, "pretrain.init=minilm"), packed)
    with pytest.raises(PretrainError, match="no packed data for seq_len 128"):
        validate(_cfg(packed, "pretrain.phases=[{seq_len: 128, steps: 1, global_batch: 8}]"), packed)
    meta = packed / "data/pack/len64/heldout/meta.json"
    saved = meta.read_text()
    try:
        meta.write_text(json.dumps({**json.loads(saved), "sequences": 0}))
        with pytest.raises(PretrainError, match="packed split is empty"):
            validate(_cfg(packed), packed)
    finally:
        meta.write_text(saved)


# ---- real Ray Train runs ---------------------------------------------------------------------------


@pytest.mark.integration
def test_loss_falls_and_beats_unigram_baseline(packed: Path, mirror: Path) -> None:
    # Settings found to leave the unigram plateau within a CPU-minute: no dropout, beta2 0.98.
    metrics = _run_stage(packed, mirror, "pretrain.phases=[{seq_len: 64, steps: 200, global_batch: 32}]",
                         "pretrain.model.hidden_size=128", "pretrain.model.intermediate_size=256",
                         "pretrain.model.dropout=0.0", "pretrain.adam_betas=[0.9, 0.98]",
                         "pretrain.warmup_ratio=0.06", "runtime.micro_batch_size=32",
                         "pretrain.eval_every=100", "pretrain.checkpoint_every=100",
                         "pretrain.eval_batches=4", "runtime.storage_path=data/ckpt-learn")
    losses = [v for _s, v in _loss_history(packed)]
    assert len(losses) == 200
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 1.0
    assert metrics["heldout/mlm_accuracy"] > metrics["unigram_baseline_accuracy"] + 0.02, metrics
    spent = metrics["cost"]  # the cost ledger: every token trained on, the workers' reserved seconds
    assert spent["tokens"] == metrics["tokens_seen"] > 0 and spent["device"] == "cpu"
    assert spent["device_seconds"] >= spent["wall_seconds"] > 0
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(packed / "data/pretrain/model")
    assert model.config.hidden_size == 128


@pytest.mark.integration
def test_two_ddp_workers_match_one_worker_accumulating(packed: Path, mirror: Path) -> None:
    _run_stage(packed, mirror, "runtime.num_workers=1", "runtime.micro_batch_size=8",
               "runtime.storage_path=data/ckpt-one")
    one, one_loss = _weights(packed), _loss_history(packed)
    _run_stage(packed, mirror, "runtime.num_workers=2", "runtime.cpus_per_worker=1",
               "runtime.micro_batch_size=8", "runtime.storage_path=data/ckpt-two")
    two, two_loss = _weights(packed), _loss_history(packed)
    assert [s for s, _ in one_loss] == [s for s, _ in two_loss]
    np.testing.assert_allclose([v for _, v in one_loss], [v for _, v in two_loss], rtol=2e-3)
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst < 2e-3, f"largest weight difference {worst}"


def _ray_workers(stage: subprocess.Popen) -> list[psutil.Process]:
    """The stage's Ray Train workers (its local Ray runs under it; another Ray's are left alone)."""
    found = []
    for p in psutil.Process(stage.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("RayTrainWorker" in c for c in p.cmdline()):
                found.append(p)
    return found


@pytest.mark.integration
def test_sigkill_worker_resumes_to_the_same_weights(packed: Path, mirror: Path) -> None:
    _run_stage(packed, mirror, "runtime.storage_path=data/ckpt-clean")
    clean = _weights(packed)
    storage = packed / "data/ckpt-kill"
    proc = _run_stage(packed, mirror, f"runtime.storage_path={storage}", wait=False)
    deadline = time.time() + 600
    while not list(storage.rglob("checkpoint_*/state.pt")):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    workers = _ray_workers(proc)
    assert workers, "no Ray Train worker process found"
    for w in workers:
        os.kill(w.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    resumed = _weights(packed)
    history = _loss_history(packed)
    steps = [s for s, _ in history]
    assert max(steps) == TINY["phases"][0]["steps"], "ran to the planned step count"
    assert len(steps) > len(set(steps)), (
        "steps after the checkpoint ran twice: the run was killed and resumed")
    for key in clean:
        assert torch.equal(clean[key], resumed[key]), f"{key} differs from the uninterrupted run"


@pytest.mark.integration
def test_continued_from_minilm_learns_far_faster_than_scratch(mirror: Path) -> None:
    """Same data, shape, LR and steps: continuing from the general-domain MiniLM reaches a far lower
    MLM loss than a fresh BERT of the same shape. (The MiniLM checkpoint ships without its MLM head,
    a sentence-transformers export, so step 1 is no better: the encoder's knowledge shows within
    a few steps, once the new head is fitted.)"""
    from transformers import AutoConfig

    from pubmedlm.text.models import resolve_model
    from pubmedlm.train.loop import Hooks, train_steps
    from pubmedlm.train.mlm import MaskedLMLoss
    from pubmedlm.train.optim import optimizer_and_schedule
    from pubmedlm.train.packing import SpecialIds, StreamPacker
    from pubmedlm.train.pretraining import build_model, make_batch, seeded

    torch.set_num_threads(2)
    tok = load_tokenizer("minilm")
    info = vocab_info(tok)
    packer = StreamPacker(64, SpecialIds(tok.cls_token_id, tok.sep_token_id, tok.pad_token_id))
    rows = [r for d in ohsumed_docs(mirror, 120)
            for r in packer.feed(tok(d, add_special_tokens=False)["input_ids"])]

    class Rows:  # the slice of PackedSet that make_batch reads
        input_ids = np.array(rows[:160], dtype=np.int64)
        token_type_ids = None

    mc = AutoConfig.from_pretrained(resolve_model("minilm"))
    shape = {"hidden_size": mc.hidden_size, "num_layers": mc.num_hidden_layers,
             "num_heads": mc.num_attention_heads, "intermediate_size": mc.intermediate_size,
             "max_position_embeddings": 512, "dropout": 0.1}
    steps, batch = 16, 8
    curves = {}
    for init in ("minilm", "scratch"):
        net = MaskedLMLoss(build_model(resolve_model(init) if init != "scratch" else init, shape, len(tok),
                                       False, info.pad_id, 42))
        opt, sched = optimizer_and_schedule(net, lr=1e-4, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6,
                                            warmup_ratio=0.1, total_steps=steps)
        losses: list[float] = []
        train_steps(net, lambda s, m: make_batch(Rows, np.arange(s * batch, (s + 1) * batch), info, 0.15,
                                                 True, seeded(42, s, m)),
                    opt, sched, start_step=0, end_step=steps, accum=1, max_grad_norm=1.0,
                    device=torch.device("cpu"), precision="bf16",
                    hooks=Hooks([lambda _s, st, out=losses: out.append(st["mlm_loss"])]))
        curves[init] = losses
    late = {k: float(np.mean(v[8:])) for k, v in curves.items()}
    assert late["minilm"] < late["scratch"] - 1.0, curves


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.mark.integration
@pytest.mark.server
def test_tracking_server_down_mid_run_training_goes_on(packed: Path, mirror: Path, tmp_path: Path) -> None:
    """The MLflow server stops after the first checkpoint: training goes on (more checkpoints are
    written while it is away), and once it is back every step's metrics arrive and the run ends
    FINISHED with its final metrics."""
    from mlflow import MlflowClient

    from conftest import free_port, start_mlflow_server

    steps = 160
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    storage = packed / "data/ckpt-outage"
    uri = f"http://127.0.0.1:{port}"
    proc = _run_stage(packed, mirror, f"runtime.storage_path={storage}", "pretrain.log_every=1",
                      "pretrain.checkpoint_every=10", "pretrain.eval_every=80",
                      f"pretrain.phases=[{{seq_len: 64, steps: {steps}, global_batch: 16}}]", wait=False,
                      tracking=uri)
    try:
        deadline = time.time() + 600
        while not list(storage.rglob("checkpoint_*/state.pt")):
            assert proc.poll() is None and time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.1)
        _stop(server)
        seen = {c.name for c in storage.rglob("checkpoint_*")}
        # training goes on: new checkpoints appear while the server is away (Ray keeps the last 2)
        while len({c.name for c in storage.rglob("checkpoint_*")} - seen) < 2 and proc.poll() is None:
            assert time.time() < deadline, "training stalled while the server was away"
            time.sleep(0.2)
        assert proc.poll() is None or proc.returncode == 0
        time.sleep(3)
        server = start_mlflow_server(tmp_path, port)
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-4000:]
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("pubmedlm")
        run = client.search_runs([exp.experiment_id], "attributes.run_name = 'pretrain'")[0]
        assert run.info.status == "FINISHED"
        logged = {m.step for m in client.get_metric_history(run.info.run_id, "train/mlm_loss")}
        assert logged == set(range(1, steps + 1)), (
            f"missing steps: {sorted(set(range(1, steps + 1)) - logged)[:10]}")
        assert run.data.metrics["final/step"] == steps
    finally:
        if proc.poll() is None:
            proc.kill()
        _stop(server)
