"""Masked language modelling: whole-word masking and a loss computed only at masked positions.

Whole-word masking (the paper's best setting): a word is a piece without the `##` continuation
prefix followed by its `##` pieces; 15% of the words of each sequence (rounded, at least one) are
chosen and every piece of a chosen word is a prediction target. Each target is replaced by
[MASK] 80% of the time, a random piece 10%, kept 10%, as in BERT. Special tokens and padding are
never chosen. The choice is driven by an explicit `torch.Generator`, so a batch's masks are a
function of (seed, step, micro-batch) alone: resumed, re-sharded or re-accumulated runs see the
same targets.

`MaskedLMLoss` runs the encoder once and projects only the masked positions onto the vocabulary.
Hugging Face's `BertForMaskedLM` projects every position (batch × seq × vocab logits), which
dominates the cost of small models; here the decoder sees about 15% of the positions.

**Prediction budget** (BERT's `max_predictions_per_seq`): with a `PredictionBudget`, each sequence
has at most K = budget(seq_len) targets (whole units in their random order, stopping before the first
that would overflow), and the loss gathers exactly K positions per sequence (targets first, then
IGNORE slots). Shapes are then fixed by (batch, seq_len) alone: no boolean index, whose size is only
known after a device-to-host synchronisation, and nothing for `torch.compile` to re-trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pubmedlm.train.loop import sdpa_mask

IGNORE = -100


@dataclass(frozen=True)
class VocabInfo:
    """What masking needs from the tokenizer."""

    continuation: torch.Tensor  # bool [vocab]: piece starts with '##' (continues a word)
    special: torch.Tensor  # bool [vocab]: [CLS], [SEP], [PAD], [MASK], [UNK]... never masked
    mask_id: int
    pad_id: int
    size: int


@dataclass(frozen=True)
class PredictionBudget:
    """Targets per sequence: `cap` if set, else ceil(probability × seq_len) (BERT: 20 at 128 tokens)."""

    probability: float
    cap: int | None = None

    def __call__(self, seq_len: int) -> int:
        return min(seq_len, self.cap if self.cap is not None else math.ceil(self.probability * seq_len))


def vocab_info(tokenizer) -> VocabInfo:
    vocab = tokenizer.get_vocab()
    size = max(len(tokenizer), max(vocab.values()) + 1)
    continuation = torch.zeros(size, dtype=torch.bool)
    special = torch.zeros(size, dtype=torch.bool)
    for piece, idx in vocab.items():
        continuation[idx] = piece.startswith("##")
    for idx in tokenizer.all_special_ids:
        special[idx] = True
    return VocabInfo(continuation, special, tokenizer.mask_token_id, tokenizer.pad_token_id, size)


def whole_word_mask(
    input_ids: torch.Tensor, info: VocabInfo, probability: float, generator: torch.Generator,
    whole_words: bool = True, max_predictions: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels with IGNORE off-target), both int64 [batch, seq]; at most
    `max_predictions` targets per row (None: no cap)."""
    ids = input_ids.long()
    maskable = ~info.special[ids]
    # A unit is a word (whole-word masking) or a single piece (original WordPiece masking).
    starts = maskable & ~info.continuation[ids] if whole_words else maskable.clone()
    # A '##' piece right after a special token has no word start: treat it as one.
    starts |= maskable & ~torch.roll(maskable, 1, dims=1)
    unit = torch.cumsum(starts.long(), dim=1) - 1  # unit index of each piece (valid where maskable)
    n_units = starts.sum(dim=1)
    k = torch.clamp((n_units.float() * probability).round().long(), min=1) * (n_units > 0)
    # Random priority per unit start; choose the k lowest-priority starts per row.
    priority = torch.rand(ids.shape, generator=generator)
    priority[~starts] = 2.0
    order = priority.argsort(dim=1)
    rank = order.argsort(dim=1)
    chosen_start = starts & (rank < k[:, None])
    if max_predictions is not None:
        chosen_start = _within_budget(chosen_start, unit, maskable, order, max_predictions)
    chosen_unit = _units_to_pieces(chosen_start, unit, maskable)
    labels = torch.where(chosen_unit, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen_unit & (roll < 0.8)] = info.mask_id
    random_slot = chosen_unit & (roll >= 0.8) & (roll < 0.9)
    masked[random_slot] = torch.randint(info.size, ids.shape, generator=generator)[random_slot]
    return masked, labels


def _within_budget(chosen_start: torch.Tensor, unit: torch.Tensor, maskable: torch.Tensor,
                   order: torch.Tensor, budget: int) -> torch.Tensor:
    """Keep chosen units, in their random order (`order`), while their pieces fit in `budget`."""
    unit_len = torch.zeros(unit.shape, dtype=torch.long)
    unit_len.scatter_add_(1, unit.clamp(min=0), maskable.long())  # pieces per unit index
    pieces = unit_len.gather(1, unit.clamp(min=0)) * chosen_start  # a chosen start's unit length
    fits = pieces.gather(1, order).cumsum(dim=1) <= budget  # in priority order
    keep = torch.zeros_like(chosen_start)
    keep.scatter_(1, order, fits)
    return chosen_start & keep


def _units_to_pieces(chosen_start: torch.Tensor, unit: torch.Tensor, maskable: torch.Tensor) -> torch.Tensor:
    """Spread each chosen unit's flag from its first piece to all its pieces."""
    per_unit = torch.zeros(chosen_start.shape, dtype=torch.long)
    per_unit.scatter_add_(1, unit.clamp(min=0), (chosen_start & maskable).long())
    return maskable & (per_unit.gather(1, unit.clamp(min=0)) > 0)


class MaskedLMLoss(nn.Module):
    """Wraps a `BertForMaskedLM` / `BertForPreTraining`: MLM (+ optional NSP) loss, logits only
    at the gathered target slots: budget(seq_len) per sequence (None: every position, exact for any
    labels but the decoder then sees them all). Every output is a device tensor (no host sync)."""

    def __init__(self, model: nn.Module, budget: PredictionBudget | None = None) -> None:
        super().__init__()
        self.model = model
        self.budget = budget
        self.bert = model.bert
        heads = model.cls
        self.mlm_head = heads.predictions
        self.nsp_head = getattr(heads, "seq_relationship", None)

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None, nsp_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """`attention_mask` None: no padding in the batch (decided on the host by `make_batch`)."""
        out = self.bert(input_ids=input_ids, attention_mask=sdpa_mask(attention_mask, self.bert.config),
                        token_type_ids=token_type_ids)
        seq = labels.shape[1]
        slots = self.budget(seq) if self.budget is not None else seq
        # Target positions first (in position order), then off-target ones: a fixed [batch, slots].
        pos = torch.sort((labels == IGNORE).to(torch.int8), dim=1, stable=True).indices[:, :slots]
        gold = labels.gather(1, pos)  # IGNORE in slots past a row's targets
        hidden = out.last_hidden_state
        hidden = hidden.gather(1, pos[..., None].expand(-1, -1, hidden.shape[-1]))  # [batch, slots, hidden]
        logits = self.mlm_head(hidden).float()  # [batch, slots, vocab]
        mlm_loss = F.cross_entropy(logits.flatten(0, 1), gold.flatten(), ignore_index=IGNORE)
        real = gold != IGNORE
        result = {
            "loss": mlm_loss,
            "mlm_loss": mlm_loss.detach(),
            "mlm_correct": ((logits.argmax(-1) == gold) & real).sum().detach(),
            "mlm_count": real.sum(),
        }
        if self.nsp_head is not None and nsp_labels is not None:
            nsp_logits = self.nsp_head(out.pooler_output).float()
            nsp_loss = F.cross_entropy(nsp_logits, nsp_labels.long())
            result["loss"] = mlm_loss + nsp_loss
            result["nsp_loss"] = nsp_loss.detach()
            result["nsp_correct"] = (nsp_logits.argmax(-1) == nsp_labels).sum().detach()
        return result
