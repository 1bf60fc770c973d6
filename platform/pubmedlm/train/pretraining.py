"""Pretraining pieces: input checks, the model, the data order, checkpoints, FLOPs, the unigram baseline.

Data order: for phase p, the packed training rows are visited in a permutation seeded by
(seed, phase, epoch). The global batch of step s is rows [s·G, (s+1)·G) of that order; it is cut
into micro-batches of size m, and micro-batch j of the step goes to rank j mod world as its
(j div world)-th accumulation step. So one worker with accumulation 2k and two workers with
accumulation k see exactly the same micro-batches, and a resumed run needs only the step count
to find its place ("data position" = step). Masks and dropout are seeded by (seed, step, j) too.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pubmedlm.config import PretrainConfig, RuntimeConfig
from pubmedlm.errors import UserError
from pubmedlm.train.mlm import IGNORE, PredictionBudget, VocabInfo, vocab_info, whole_word_mask
from pubmedlm.train.packing import PACK_INFO, PackedSet


class PretrainError(UserError, ValueError):
    """Bad pretraining input, found before any compute."""


def check_inputs(recipe: PretrainConfig | None, runtime: RuntimeConfig, pack: Path, init: str,
                 tokenizer_path: str) -> int:
    """Every input check, before any compute: the section exists, each phase's length was packed and
    divides into workers x micro-batch, the init checkpoint holds a model whose vocab matches its
    tokenizer, and the tokenizer is the one that packed the data. Returns the vocab size."""
    from transformers import AutoConfig

    from pubmedlm.text.models import load_tokenizer

    if recipe is None:
        raise PretrainError("params: the `pretrain` section is missing (see pipelines/profiles/paper.yaml)")
    for i, phase in enumerate(recipe.phases):
        check_batching(phase.global_batch, runtime.micro_batch_size, runtime.num_workers, i)
        for split in ("train", "heldout"):
            folder = pack / f"len{phase.seq_len}" / split
            if not (folder / "meta.json").is_file():
                raise PretrainError(f"pretrain.phases[{i}]: no packed data for seq_len {phase.seq_len} "
                                    f"({folder}); add it to pack.seq_lengths and rerun the pack stage")
            try:
                PackedSet(folder)
            except ValueError as e:
                raise PretrainError(str(e)) from None
    if recipe.init != "scratch" and Path(init).exists() and not (Path(init) / "config.json").is_file():
        raise PretrainError(f"pretrain.init: {init} holds no model (config.json missing)")
    size = len(load_tokenizer(Path(tokenizer_path)))
    packed_vocab = json.loads((pack / PACK_INFO).read_text())["vocab_size"]
    if packed_vocab != size:
        raise PretrainError(
            f"vocab mismatch: data/pack was tokenized with a {packed_vocab}-entry vocab, the model's "
            f"tokenizer ({tokenizer_path}) has {size}; set pack.tokenizer to match pretrain.init and "
            "rerun pack")
    if recipe.init == "scratch":
        if recipe.model.max_position_embeddings < max(p.seq_len for p in recipe.phases):
            raise PretrainError("pretrain.model.max_position_embeddings is shorter than a phase's seq_len")
    elif (model_vocab := AutoConfig.from_pretrained(init).vocab_size) != size:
        raise PretrainError(f"pretrain.init: model vocab_size {model_vocab} != its tokenizer's "
                            f"{size} entries")
    return size


def unigram_baseline(recipe: PretrainConfig, pack: Path, tokenizer_path: str, eval_batch: int) -> float:
    """MLM accuracy of always predicting the most frequent training piece, on the held-out targets
    the run is evaluated on (the floor a pretrained model must clear)."""
    from pubmedlm.text.models import load_tokenizer

    last = recipe.phases[-1].seq_len
    info = vocab_info(load_tokenizer(Path(tokenizer_path)))
    train = PackedSet(pack / f"len{last}" / "train")
    sample = np.asarray(train.input_ids[: min(len(train), 2000)]).ravel().astype(np.int64)
    sample = sample[~info.special.numpy()[sample]]
    top = int(np.bincount(sample, minlength=info.size).argmax())
    batches = heldout_batches(PackedSet(pack / f"len{last}" / "heldout"), info, recipe.mlm_probability,
                              recipe.whole_word_mask, recipe.eval_batches, eval_batch, recipe.seed,
                              prediction_budget(recipe)(last))
    labels = np.concatenate([b["labels"].numpy().ravel() for b in batches])
    labels = labels[labels != IGNORE]
    return float((labels == top).mean())


def build_model(init: str, shape: dict, vocab_size: int, nsp: bool, pad_id: int, seed: int):
    """A BERT with MLM (+ NSP) heads: new from `shape`, or loaded from a checkpoint path."""
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

    cls = BertForPreTraining if nsp else BertForMaskedLM
    torch.manual_seed(seed)
    if init == "scratch":
        if shape["hidden_size"] % shape["num_heads"]:
            raise PretrainError(f"pretrain.model: hidden_size {shape['hidden_size']} is not divisible "
                                f"by num_heads {shape['num_heads']}")
        config = BertConfig(
            vocab_size=vocab_size, hidden_size=shape["hidden_size"], num_hidden_layers=shape["num_layers"],
            num_attention_heads=shape["num_heads"], intermediate_size=shape["intermediate_size"],
            max_position_embeddings=shape["max_position_embeddings"], hidden_dropout_prob=shape["dropout"],
            attention_probs_dropout_prob=shape["dropout"], pad_token_id=pad_id,
        )
        config._attn_implementation = "sdpa"
        return cls(config)
    path = Path(init)
    if path.exists() and not (path / "config.json").is_file():
        raise PretrainError(f"pretrain.init: {init} holds no model (config.json missing)")
    model = cls.from_pretrained(init, attn_implementation="sdpa")
    if model.config.vocab_size != vocab_size:
        raise PretrainError(
            f"pretrain.init: model {init} has vocab_size {model.config.vocab_size} but its tokenizer has "
            f"{vocab_size} entries; continued pretraining must keep the model's own vocab"
        )
    return model


@dataclass
class PhaseData:
    train: PackedSet
    heldout: PackedSet
    global_batch: int
    micro: int
    world: int

    @property
    def accum(self) -> int:
        return self.global_batch // (self.micro * self.world)


def check_batching(global_batch: int, micro: int, world: int, phase: int) -> None:
    if global_batch % (micro * world):
        raise PretrainError(
            f"pretrain.phases[{phase}].global_batch {global_batch} is not divisible by "
            f"workers × micro-batch = {world} × {micro}"
        )


def _order(n: int, seed: int, phase: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, phase, epoch]).permutation(n)


def micro_batch_rows(data: PhaseData, seed: int, phase: int, step: int, micro: int, rank: int) -> np.ndarray:
    """Row indices of this rank's `micro`-th micro-batch of phase step `step` (see module docstring)."""
    n = len(data.train)
    chunk = micro * data.world + rank  # index of the micro-batch within the global batch
    start = step * data.global_batch + chunk * data.micro
    positions = np.arange(start, start + data.micro)
    epochs = positions // n
    rows = np.empty_like(positions)
    for epoch in np.unique(epochs):
        order = _order(n, seed, phase, int(epoch))
        sel = epochs == epoch
        rows[sel] = order[positions[sel] % n]
    return rows


def make_batch(packed: PackedSet, rows: np.ndarray, info: VocabInfo, prob: float, whole_words: bool,
               generator: torch.Generator, max_predictions: int | None = None) -> dict[str, torch.Tensor]:
    ids = torch.from_numpy(np.asarray(packed.input_ids[rows], dtype=np.int64))
    masked, labels = whole_word_mask(ids, info, prob, generator, whole_words, max_predictions)
    batch = {"input_ids": masked, "labels": labels}
    if (ids == info.pad_id).any():  # decided here, on the host: no mask at all lets SDPA skip it
        batch["attention_mask"] = (ids != info.pad_id).long()
    if packed.token_type_ids is not None:
        batch["token_type_ids"] = torch.from_numpy(np.asarray(packed.token_type_ids[rows], dtype=np.int64))
        batch["nsp_labels"] = torch.from_numpy(np.asarray(packed.nsp_labels[rows], dtype=np.int64))
    return batch


def seeded(seed: int, *parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(hash((seed, *parts)) & 0x7FFF_FFFF_FFFF_FFFF)


def heldout_batches(packed: PackedSet, info: VocabInfo, prob: float, whole_words: bool, n: int, size: int,
                    seed: int, max_predictions: int | None = None) -> list[dict[str, torch.Tensor]]:
    """A fixed set of held-out batches (same rows and masks at every evaluation)."""
    total = min(n * size, len(packed))
    return [
        make_batch(packed, np.arange(i, min(i + size, total)), info, prob, whole_words, seeded(seed, -1, i),
                   max_predictions)
        for i in range(0, total, size)
    ]


def prediction_budget(recipe: PretrainConfig) -> PredictionBudget:
    """The recipe's targets per sequence (`max_predictions_per_seq`), as a function of seq_len."""
    return PredictionBudget(recipe.mlm_probability, recipe.max_predictions_per_seq)


def save_state(folder: Path, model: torch.nn.Module, opt, sched, step: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "step": step, "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                                  "python": random.getstate()},
        },
        folder / "state.pt",
    )


def load_state(folder: Path, model: torch.nn.Module, opt, sched) -> int:
    state = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    return int(state["step"])


def train_flops_per_sequence(config, seq_len: int, masked_per_seq: float, nsp: bool) -> float:
    """Useful training FLOPs for one sequence (forward + backward = 3 × forward matmul FLOPs).

    Encoder: per token 2 × (4h² attention projections + 2·h·ffn) per layer, plus attention scores
    and values 2 × 2·s·h per layer. MLM head on masked positions only: 2 × (h² + h·V); NSP: negligible.
    """
    h, ffn, layers, vocab = (config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                             config.vocab_size)
    encoder = seq_len * layers * (2 * (4 * h * h + 2 * h * ffn) + 4 * seq_len * h)
    head = masked_per_seq * 2 * (h * h + h * vocab)
    return 3.0 * (encoder + head)


def measure_peak_flops(device: torch.device, size: int = 2048, reps: int = 5) -> float:
    """bf16 matmul FLOP/s of this device, measured now (the MFU denominator)."""
    import time

    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    (a @ b).sum().item()
    t0 = time.perf_counter()
    for _ in range(reps):
        c = a @ b
    c.sum().item()
    return 2 * size**3 * reps / (time.perf_counter() - t0)

