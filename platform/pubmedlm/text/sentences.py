"""English sentence splitting with NLTK's Punkt, its parameters taken from the declared sources.

Punkt's English parameters (`nltk/tokenizers/punkt_tab/english/*`) are catalog sources like any
other input: read from the data mirror or the download cache and verified, never fetched by
NLTK's own downloader. The four tables are read here, their bytes checked against their sha256,
and decoded in memory: NLTK never opens a file itself, so its path-security rules (which refuse a
symlink pointing outside its data roots) cannot tell a mirror made of symlinks from a copied one.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path

from pubmedlm.infra.sources import Catalog, SourceError, resolve_inputs

PUNKT_PREFIX = "nltk/tokenizers/punkt_tab/english/"
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def _table(path: Path, sha256: str | None) -> io.StringIO:
    """One Punkt table as text, from bytes checked against `sha256` (None: not checked)."""
    data = path.read_bytes()
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise SourceError(f"checksum mismatch for Punkt table {path}: expected sha256 {sha256}, "
                          f"got {hashlib.sha256(data).hexdigest()}")
    return io.StringIO(data.decode("utf-8"), newline=None)  # universal newlines, as NLTK opens them


@lru_cache(maxsize=4)
def _tokenizer(files: tuple[tuple[str, str, str | None], ...]):
    from nltk.tabdata import PunktDecoder
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    tables = {name: _table(Path(path), sha) for name, path, sha in files}
    missing = [name for name in PUNKT_FILES if name not in tables]
    if missing:
        raise SourceError(f"Punkt parameters lack {', '.join(missing)} (expected under {PUNKT_PREFIX})")
    dec, params = PunktDecoder(), PunktParameters()
    params.collocations = set(dec.tab2tups(tables["collocations.tab"]))
    params.sent_starters = dec.txt2set(tables["sent_starters.txt"])
    params.abbrev_types = dec.txt2set(tables["abbrev_types.txt"])
    params.ortho_context = dec.tab2intdict(tables["ortho_context.tab"])
    return PunktSentenceTokenizer(params)


def punkt_from_files(files: dict[str, Path], sha256: dict[str, str] | None = None):
    """Punkt from its four tables (file name -> local path), each checked against `sha256[name]`."""
    sha256 = sha256 or {}
    return _tokenizer(tuple(sorted((name, str(path), sha256.get(name)) for name, path in files.items())))


def punkt_from_dir(nltk_root: str | Path):
    """Punkt from `<nltk_root>/tokenizers/punkt_tab/english/` (no verification)."""
    folder = Path(nltk_root) / "tokenizers" / "punkt_tab" / "english"
    return punkt_from_files({name: folder / name for name in PUNKT_FILES})


def punkt(cache_dir: Path, progress: bool = False):
    """NLTK's English Punkt loaded from the verified punkt_tab files."""
    files = resolve_inputs([PUNKT_PREFIX], Catalog(), cache_dir, progress)
    return punkt_from_files({Path(f.label).name: f.path for f in files},
                            {Path(f.label).name: f.sha256 for f in files})
