"""Fine-tuning stabilizers (Tinn et al. 2023) on a BERT-style encoder (`embeddings`, `encoder.layer`,
optional `pooler`: BERT, RoBERTa, ELECTRA, MiniLM): which parameters train, from which weights, at
what share of the peak learning rate. The param groups themselves are built by `train.optim`.

* `finetune.freeze_layers` N > 0: the embeddings and the lowest N encoder layers get
  `requires_grad` False, so the optimizer leaves them out and they keep their pretrained weights.
* `finetune.reinit_layers` N > 0: the top N encoder layers and the pooler are re-initialised with
  the model's own `_init_weights` (normal(0, initializer_range) weights, zero biases, unit LayerNorm)
  before fine-tuning, from the run's seeded RNG. transformers 5 marks loaded weights
  `_is_hf_initialized` and its initializers skip marked tensors, so the mark is cleared first.
* `finetune.random_init`: every encoder weight is re-initialised that way (the architecture and
  vocabulary without the pretraining: the control of the `init` study).
* `finetune.layer_lr_decay` d < 1: with L encoder layers numbered 0 (lowest) .. L-1 (top), layer i
  trains at lr x d^(L-i) (the top layer at lr x d), the embeddings at lr x d^(L+1), and the head
  and pooler at lr.

Layer counts are checked against the model's config before any compute (`check_layers`, called by
`finetune.plan.settings`) and again when the model is built (`prepare`): a clear `FinetuneError`
naming the param.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from pubmedlm.finetune.features import FinetuneError

if TYPE_CHECKING:
    from pubmedlm.config import FinetuneConfig


def active(f: FinetuneConfig) -> bool:
    """Whether any stabilizer is on."""
    return f.freeze_layers > 0 or f.reinit_layers > 0 or f.layer_lr_decay < 1.0 or f.random_init


def check(f: FinetuneConfig, num_layers: int, model: str) -> None:
    """The stabilizers fit a model of `num_layers` encoder layers, or a FinetuneError naming the param."""
    for key in ("freeze_layers", "reinit_layers"):
        if getattr(f, key) > num_layers:
            raise FinetuneError(f"finetune.{key}: {getattr(f, key)} layers, but model {model} has "
                                f"{num_layers} encoder layers")
    if f.random_init and f.freeze_layers:
        raise FinetuneError(f"finetune.random_init with finetune.freeze_layers ({f.freeze_layers}): the "
                            "frozen layers would stay at random weights")
    if f.freeze_layers + f.reinit_layers > num_layers:
        raise FinetuneError(f"finetune.freeze_layers ({f.freeze_layers}) + finetune.reinit_layers "
                            f"({f.reinit_layers}) exceed model {model}'s {num_layers} encoder layers: a "
                            "re-initialised layer would stay frozen at random weights")


def check_layers(f: FinetuneConfig, model: str) -> None:
    """`check` against the layer count in `model`'s config (read only when a stabilizer is on)."""
    if not active(f):
        return
    from transformers import AutoConfig

    from pubmedlm.text.models import resolve_model

    try:
        config = AutoConfig.from_pretrained(resolve_model(model))
    except (OSError, ValueError) as e:
        raise FinetuneError(f"model {model}: cannot read its config: {e}") from None
    layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(layers, int):
        raise FinetuneError(f"model {model}: its config gives no num_hidden_layers; the stabilizers "
                            "(finetune.freeze_layers, layer_lr_decay, reinit_layers) need a BERT-style "
                            "encoder")
    check(f, layers, model)


def _parts(hf: nn.Module, model: str) -> tuple[nn.Module, nn.ModuleList, nn.Module | None]:
    """(embeddings, encoder layers, pooler or None) of an HF model with a BERT-style base model."""
    base = hf.base_model
    embeddings = getattr(base, "embeddings", None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if embeddings is None or not isinstance(layers, nn.ModuleList):
        raise FinetuneError(f"model {model}: {type(base).__name__} has no embeddings + encoder.layer; the "
                            "stabilizers (finetune.freeze_layers, layer_lr_decay, reinit_layers) need a "
                            "BERT-style encoder")
    return embeddings, layers, getattr(base, "pooler", None)


def reinitialise(hf: nn.Module, module: nn.Module) -> None:
    """Every submodule of `module` through `hf._init_weights`, loaded weights included."""
    for p in module.parameters():
        if hasattr(p, "_is_hf_initialized"):
            p._is_hf_initialized = False
    for sub in module.modules():
        if hasattr(sub, "_is_hf_initialized"):
            sub._is_hf_initialized = False
    module.apply(hf._init_weights)


def prepare(hf: nn.Module, f: FinetuneConfig, model: str) -> None:
    """Re-initialise the whole encoder (`random_init`) or its top `reinit_layers` layers (+ pooler),
    freeze the embeddings and the lowest `freeze_layers` layers; nothing when none is set. Call after
    seeding, before the optimizer."""
    if f.freeze_layers == 0 and f.reinit_layers == 0 and not f.random_init:
        return
    embeddings, layers, pooler = _parts(hf, model)
    check(f, len(layers), model)
    if f.random_init:
        for module in (embeddings, *layers, *([pooler] if pooler is not None else [])):
            reinitialise(hf, module)
    elif f.reinit_layers:
        for layer in layers[len(layers) - f.reinit_layers:]:
            reinitialise(hf, layer)
        if pooler is not None:
            reinitialise(hf, pooler)
    if f.freeze_layers:
        for module in (embeddings, *layers[: f.freeze_layers]):
            module.requires_grad_(False)


def lr_scales(model: nn.Module, hf: nn.Module, decay: float, name: str) -> dict[str, float] | None:
    """Parameter name (in `model`, which holds `hf`) -> share of the peak LR under layer-wise decay
    (module docstring); parameters not named (head, pooler) train at the peak. None when `decay` is 1."""
    if decay >= 1.0:
        return None
    embeddings, layers, _ = _parts(hf, name)
    depth = len(layers)
    share = {id(embeddings): decay ** (depth + 1), **{id(layer): decay ** (depth - i)
                                                      for i, layer in enumerate(layers)}}
    scales = {}
    for prefix, module in model.named_modules():
        if id(module) in share:
            for pname, _ in module.named_parameters():
                scales[f"{prefix}.{pname}"] = share[id(module)]
    return scales


__all__ = ["active", "check", "check_layers", "lr_scales", "prepare", "reinitialise"]
