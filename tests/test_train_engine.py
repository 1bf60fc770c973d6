"""The training engine's GPU-readiness, checked on CPU (hermetic, tiny BERT from transformers):

- one host synchronisation per optimizer step: every call that makes the host wait for a device
  (`.item()`, `.tolist()`, `float()`/`int()`/`bool()` of a tensor, `.cpu()`, `.numpy()`, `nonzero`,
  a boolean index, whose size only the device knows) is counted while `train_steps` runs, from any
  caller (our code, transformers, torch.optim); a CUDA-free stand-in for
  `torch.cuda.set_sync_debug_mode`. It sees calls made through Python, which is where ours and the
  libraries' come from;
- the masked-LM loss over a fixed per-sequence target budget equals the loss over a boolean index of
  the targets (the reference, as the loss was computed before), and whole-word masking keeps to the
  budget with whole words;
- batches prepared ahead by loader threads train exactly as batches prepared on the training thread;
- `torch.compile` of the encoder gives the eager loss curve (integration tier: inductor compiles C++
  kernels, minutes on 2 cores).
"""

from __future__ import annotations

import collections
import traceback

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pubmedlm.train.loop import Hooks, compile_encoder, train_steps
from pubmedlm.train.mlm import IGNORE, MaskedLMLoss, PredictionBudget, whole_word_mask
from pubmedlm.train.optim import optimizer_and_schedule

BATCH, SEQ, VOCAB, STEPS = 4, 16, 97, 3
SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__", "cpu", "numpy", "nonzero")


BUDGET = PredictionBudget(0.25)


def _model(budget: PredictionBudget | None = BUDGET) -> MaskedLMLoss:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(7)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=SEQ, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=0)
    config._attn_implementation = "sdpa"
    return MaskedLMLoss(BertForMaskedLM(config), budget)


def _batch(step: int, micro: int, padded: bool = True) -> dict[str, torch.Tensor]:
    """Random ids, up to 4 targets a row (budget 0.25 x 16), a padded tail on one row when `padded`."""
    g = torch.Generator().manual_seed(100 * step + micro)
    ids = torch.randint(5, VOCAB, (BATCH, SEQ), generator=g)
    labels = torch.full((BATCH, SEQ), IGNORE)
    for row in range(BATCH):
        pos = torch.randperm(SEQ - 6, generator=g)[: 1 + row] + 1
        labels[row, pos] = ids[row, pos]
        ids[row, pos] = 4
    batch = {"input_ids": ids, "labels": labels}
    if padded:
        ids[2, 12:], labels[2, 12:] = 0, IGNORE
        batch["attention_mask"] = (ids != 0).long()
    return batch


def _train(net: MaskedLMLoss, steps: int = STEPS, accum: int = 2, workers: int = 0,
           padded: bool = True) -> list[dict[str, float]]:
    opt, sched = optimizer_and_schedule(net, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6,
                                        warmup_ratio=0.0, total_steps=steps)
    stats: list[dict[str, float]] = []
    train_steps(net, lambda s, m: _batch(s, m, padded), opt, sched, start_step=0, end_step=steps, accum=accum,
                max_grad_norm=1.0, device=torch.device("cpu"), precision="bf16",
                hooks=Hooks([lambda _s, st: stats.append(dict(st))]), loader_workers=workers)
    return stats


class SyncCounter:
    """Counts host-synchronising tensor calls (and boolean indexing) with their callers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: collections.Counter = collections.Counter()
        for name in SYNCS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))
        getitem = torch.Tensor.__getitem__

        def index(tensor, key):
            keys = key if isinstance(key, tuple) else (key,)
            if any(isinstance(k, torch.Tensor) and k.dtype == torch.bool for k in keys):
                self._count("boolean index")
            return getitem(tensor, key)

        monkeypatch.setattr(torch.Tensor, "__getitem__", index)

    def _count(self, name: str) -> None:
        caller = traceback.extract_stack(limit=4)[0]
        self.calls[(name, caller.filename.rsplit("site-packages/", 1)[-1], caller.lineno)] += 1

    def _wrap(self, name, method):
        def counted(tensor, *args, **kwargs):
            self._count(name)
            return method(tensor, *args, **kwargs)

        return counted

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.mark.parametrize("padded", [True, False])
def test_a_step_synchronises_with_the_host_once(monkeypatch: pytest.MonkeyPatch, padded: bool) -> None:
    net = _model()
    counter = SyncCounter(monkeypatch)
    stats = _train(net, padded=padded)
    monkeypatch.undo()
    assert counter.total == STEPS, f"{STEPS} steps of 2 micro-batches: {dict(counter.calls)}"
    ((name, where, _line),) = counter.calls
    assert (name, where.rsplit("/", 1)[-1]) == ("tolist", "loop.py")
    expected = sum(1 + r for r in range(BATCH))  # targets sit before the padded tail
    assert all(s["mlm_count"] == 2 * expected for s in stats), stats  # counters summed, as floats


def test_the_sync_counter_sees_the_calls_it_should(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the old loop did (a float() per statistic, a boolean index of the targets) is counted."""
    counter = SyncCounter(monkeypatch)
    x = torch.arange(6.0)
    float(x.sum())
    _ = x[x > 2]
    x.tolist()
    monkeypatch.undo()
    assert counter.total == 3, dict(counter.calls)


def test_budget_loss_equals_the_boolean_index_reference() -> None:
    net = _model()
    net.eval()
    batch = _batch(0, 0)
    with torch.no_grad():
        out = net(**batch)
        hidden = net.bert(input_ids=batch["input_ids"],
                          attention_mask=batch["attention_mask"]).last_hidden_state
        target = batch["labels"] != IGNORE
        logits = net.mlm_head(hidden[target]).float()
        gold = batch["labels"][target]
    assert float(out["mlm_loss"]) == pytest.approx(float(F.cross_entropy(logits, gold)), rel=1e-5)
    assert int(out["mlm_count"]) == int(target.sum())
    assert int(out["mlm_correct"]) == int((logits.argmax(-1) == gold).sum())
    # A budget below a row's targets would drop targets: the check above can fail.
    small = _model(PredictionBudget(0.25, cap=2))
    small.eval()
    with torch.no_grad():
        assert int(small(**batch)["mlm_count"]) < int(target.sum())


def test_whole_word_masking_keeps_to_the_budget_with_whole_words() -> None:
    from pubmedlm.text.models import load_tokenizer
    from pubmedlm.train.mlm import vocab_info

    tok = load_tokenizer("minilm")
    info = vocab_info(tok)
    text = ("hyperlipoproteinemia and nephrolithiasis in pseudohypoparathyroidism patients treated with "
            "methylprednisolone ") * 6
    enc = tok([text] * 8, max_length=128, truncation=True, padding="max_length", return_tensors="pt")
    free = whole_word_mask(enc["input_ids"], info, 0.15, torch.Generator().manual_seed(3))[1]
    for budget in (20, 6):
        labels = whole_word_mask(enc["input_ids"], info, 0.15, torch.Generator().manual_seed(3),
                                 max_predictions=budget)[1]
        counts = (labels != IGNORE).sum(1)
        assert int(counts.max()) <= budget and int(counts.min()) > 0
        for row in range(8):
            words = enc.word_ids(row)
            targets = {i for i in range(128) if labels[row, i] != IGNORE}
            chosen = {words[i] for i in targets}
            assert targets == {i for i, w in enumerate(words) if w in chosen}, "whole words only"
            assert targets <= {i for i in range(128) if free[row, i] != IGNORE}, "a subset of the free choice"
    assert int((free != IGNORE).sum(1).max()) > 6, "the small budget binds"


def test_loader_threads_train_exactly_as_the_training_thread() -> None:
    ref = _train(_model(), steps=4)
    ahead = _train(_model(), steps=4, workers=2)
    assert [s["loss"] for s in ahead] == [s["loss"] for s in ref]
    assert [s["grad_norm"] for s in ahead] == [s["grad_norm"] for s in ref]


# Compiled and eager fp32 forward/backward differ only by the order of float sums (inductor fuses
# kernels): ~1e-6 relative on a loss of ~4.6 per step, compounding through AdamW over the steps.
# The curve itself moves by > 0.05 over these steps, 100x the tolerance.
COMPILE_ATOL = 5e-4


@pytest.mark.integration
def test_compiled_encoder_gives_the_eager_loss_curve() -> None:
    def curve(compiled: bool) -> list[float]:
        torch.manual_seed(0)
        net = _model()
        if compiled:
            compile_encoder(net.bert)
        opt, sched = optimizer_and_schedule(net, lr=3e-3, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6,
                                            warmup_ratio=0.0, total_steps=6)
        losses: list[float] = []
        train_steps(net, lambda s, m: _batch(0, m), opt, sched, start_step=0, end_step=6, accum=1,
                    max_grad_norm=1.0, device=torch.device("cpu"), precision="fp32",
                    hooks=Hooks([lambda _s, st: losses.append(st["loss"])]))
        return losses

    eager, compiled = curve(False), curve(True)
    assert np.allclose(compiled, eager, rtol=0, atol=COMPILE_ATOL), (eager, compiled)
    assert eager[0] - eager[-1] > 100 * COMPILE_ATOL, eager
