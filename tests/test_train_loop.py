"""The training loop's gradient accumulation, without Ray: one global batch split into 1 x 4, 2 x 2
or 4 x 1 micro-batches gives the same parameter update (tiny BERT from transformers, fp32).

Equal splits give equal updates when every micro-batch has the same number of loss targets (the
loss is a mean per micro-batch, divided by `accum`): here each row has exactly TARGETS masked
positions. Tolerance: fp32 sums in another order, through AdamW (which divides by sqrt(v), so a
gradient's relative error carries into the step): ATOL on parameters of size ~0.02-1 after
STEPS steps at lr 1e-3; the update itself is ~1e-3 per step, so ATOL is 1e-3 of it. Hermetic."""

from __future__ import annotations

import pytest
import torch

from pubmedlm.train.loop import Hooks, train_steps
from pubmedlm.train.mlm import IGNORE, MaskedLMLoss
from pubmedlm.train.optim import optimizer_and_schedule

GLOBAL, SEQ, VOCAB, TARGETS, STEPS = 4, 16, 97, 3, 3
ATOL = 1e-6


def _batches() -> list[dict[str, torch.Tensor]]:
    """STEPS global batches: random ids, a padded tail on some rows, TARGETS masked positions per row."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(STEPS):
        ids = torch.randint(5, VOCAB, (GLOBAL, SEQ), generator=g)
        mask = torch.ones(GLOBAL, SEQ, dtype=torch.long)
        mask[1, 12:] = 0  # padding inside the global batch
        mask[3, 9:] = 0
        ids[mask == 0] = 0
        labels = torch.full((GLOBAL, SEQ), IGNORE)
        for row in range(GLOBAL):
            real = int(mask[row].sum())
            pos = torch.randperm(real - 2, generator=g)[:TARGETS] + 1
            labels[row, pos] = ids[row, pos]
            ids[row, pos] = 4  # [MASK]
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def _model() -> MaskedLMLoss:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(42)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=SEQ, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=0)
    return MaskedLMLoss(BertForMaskedLM(config))


def _train(accum: int, rows: slice | None = None) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """Parameters after STEPS steps of `accum` micro-batches of GLOBAL / accum rows (or only `rows`)."""
    torch.manual_seed(0)
    net = _model()
    opt, sched = optimizer_and_schedule(net, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6,
                                        warmup_ratio=0.0, total_steps=STEPS)
    batches = _batches()
    micro = GLOBAL // accum

    def next_batch(step: int, m: int) -> dict[str, torch.Tensor]:
        part = rows if rows is not None else slice(m * micro, (m + 1) * micro)
        return {k: v[part] for k, v in batches[step].items()}

    stats: list[dict[str, float]] = []
    hooks = Hooks([lambda _s, st: stats.append(dict(st))])
    train_steps(net, next_batch, opt, sched, start_step=0, end_step=STEPS, accum=accum, max_grad_norm=1.0,
                device=torch.device("cpu"), precision="fp32", hooks=hooks)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, stats


@pytest.fixture(scope="module")
def whole() -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    return _train(1)


@pytest.mark.parametrize("accum", [2, 4])
def test_split_global_batch_gives_the_same_update(whole, accum: int) -> None:
    ref, ref_stats = whole
    got, stats = _train(accum)
    worst = max(float((ref[k] - got[k]).abs().max()) for k in ref)
    assert worst < ATOL, f"{accum} micro-batches: largest parameter difference {worst:.2e}"
    for a, b in zip(ref_stats, stats, strict=True):
        assert b["mlm_loss"] == pytest.approx(a["mlm_loss"], rel=1e-6)  # the global batch's mean loss
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
        assert b["mlm_count"] == a["mlm_count"] == GLOBAL * TARGETS  # counters summed over micro-batches
        assert b["lr"] == a["lr"]


def test_the_tolerance_can_fail(whole) -> None:
    """The update is far larger than ATOL, and half the batch gives a clearly different one."""
    ref, _ = whole
    start = _model().state_dict()
    moved = max(float((ref[k] - start[k]).abs().max()) for k in ref)
    assert moved > 1000 * ATOL
    half, _ = _train(1, rows=slice(0, 2))
    assert max(float((ref[k] - half[k]).abs().max()) for k in ref) > 100 * ATOL
