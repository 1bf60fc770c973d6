"""English sentence splitting with NLTK's Punkt, its parameters taken from the declared sources.

Punkt's English parameters (`nltk/tokenizers/punkt_tab/english/*`) are catalog sources like any
other input: read from the data mirror or the download cache and verified, never fetched by
NLTK's own downloader.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pubmedlm.infra.sources import Catalog, resolve_inputs

PUNKT_PREFIX = "nltk/tokenizers/punkt_tab/english/"


@lru_cache(maxsize=4)
def punkt_from_dir(nltk_root: str | Path):
    """PunktTokenizer("english") from `<nltk_root>/tokenizers/punkt_tab/english/` (no verification)."""
    import nltk
    from nltk.tokenize import PunktTokenizer

    if str(nltk_root) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_root))
    return PunktTokenizer("english")


def punkt(cache_dir: Path, progress: bool = False):
    """NLTK's English PunktTokenizer loaded from the verified punkt_tab files."""
    files = resolve_inputs([PUNKT_PREFIX], Catalog(), cache_dir, progress)
    # <root>/nltk/tokenizers/punkt_tab/english/<file>: NLTK's data path entry is <root>/nltk.
    return punkt_from_dir(str(files[0].path.parents[3]))
