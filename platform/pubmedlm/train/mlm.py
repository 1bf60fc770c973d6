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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

IGNORE = -100


@dataclass(frozen=True)
class VocabInfo:
    """What masking needs from the tokenizer."""

    continuation: torch.Tensor  # bool [vocab]: piece starts with '##' (continues a word)
    special: torch.Tensor  # bool [vocab]: [CLS], [SEP], [PAD], [MASK], [UNK]... never masked
    mask_id: int
    pad_id: int
    size: int


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
    whole_words: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels with IGNORE off-target), both int64 [batch, seq]."""
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
    rank = priority.argsort(dim=1).argsort(dim=1)
    chosen_start = starts & (rank < k[:, None])
    chosen_unit = _units_to_pieces(chosen_start, unit, maskable)
    labels = torch.where(chosen_unit, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen_unit & (roll < 0.8)] = info.mask_id
    random_slot = chosen_unit & (roll >= 0.8) & (roll < 0.9)
    masked[random_slot] = torch.randint(info.size, ids.shape, generator=generator)[random_slot]
    return masked, labels


def _units_to_pieces(chosen_start: torch.Tensor, unit: torch.Tensor, maskable: torch.Tensor) -> torch.Tensor:
    """Spread each chosen unit's flag from its first piece to all its pieces."""
    per_unit = torch.zeros(chosen_start.shape, dtype=torch.long)
    per_unit.scatter_add_(1, unit.clamp(min=0), (chosen_start & maskable).long())
    return maskable & (per_unit.gather(1, unit.clamp(min=0)) > 0)


class MaskedLMLoss(nn.Module):
    """Wraps a `BertForMaskedLM` / `BertForPreTraining`: MLM (+ optional NSP) loss, logits only
    where masked."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.bert = model.bert
        heads = model.cls
        self.mlm_head = heads.predictions
        self.nsp_head = getattr(heads, "seq_relationship", None)

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None, nsp_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        target = labels != IGNORE
        hidden = out.last_hidden_state[target]  # [n_masked, hidden]
        logits = self.mlm_head(hidden).float()  # [n_masked, vocab]
        gold = labels[target]
        mlm_loss = F.cross_entropy(logits, gold)
        result = {
            "loss": mlm_loss,
            "mlm_loss": mlm_loss.detach(),
            "mlm_correct": (logits.argmax(-1) == gold).sum().detach(),
            "mlm_count": torch.tensor(gold.numel()),
        }
        if self.nsp_head is not None and nsp_labels is not None:
            nsp_logits = self.nsp_head(out.pooler_output).float()
            nsp_loss = F.cross_entropy(nsp_logits, nsp_labels.long())
            result["loss"] = mlm_loss + nsp_loss
            result["nsp_loss"] = nsp_loss.detach()
            result["nsp_correct"] = (nsp_logits.argmax(-1) == nsp_labels).sum().detach()
        return result
