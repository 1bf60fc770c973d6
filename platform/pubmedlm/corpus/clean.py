"""Text cleaning: unicode and whitespace normalization, word counts, the dedup key, word runs.

Two normalizations, for two purposes:

- `clean()` produces the text we *keep*. It applies NFC, not NFKC: NFC only composes canonically
  equivalent sequences (e + combining acute -> é), which never changes meaning. NFKC also folds
  compatibility characters, and in biomedical text those carry meaning: superscripts and
  subscripts (`Ca²⁺`, `10⁻³`, `m²` would become `Ca2+`, `10−3`, `m2`), the micro sign, fraction
  slashes. The tokenizer's own normalizer (lowercasing, accent stripping for an uncased vocab)
  decides later what to fold; the corpus stays lossless apart from whitespace and control
  characters. All whitespace runs (newlines included) become one space, so a document is one line.
- `fold()` produces a comparison form used only for hashing: NFKD, combining marks dropped,
  casefolded. Two copies of an abstract that differ in ligatures, accents, case or tokenization
  fold to the same word runs, which is what dedup and BLURB-exclusion matching need.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Control and format characters other than whitespace: C0/C1 controls, zero-width and BOM
# characters, soft hyphen. They come from PDF extraction and XML conversions and are invisible.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028\u2029\u2060\ufeff]")
_SPACE = re.compile(r"\s+")
_WORD_RUN = re.compile(r"[a-z0-9]+")


def clean(*segments: str) -> str:
    """Join text segments (title, abstract sections, paragraphs) into one NFC, single-spaced line."""
    text = " ".join(s for s in segments if s)
    if not text.isascii():
        text = unicodedata.normalize("NFC", _INVISIBLE.sub("", text))
    return _SPACE.sub(" ", text).strip()


def word_count(text: str) -> int:
    """Whitespace-separated words (what `corpus.min_words` counts)."""
    return len(text.split())


def fold(text: str) -> str:
    """Comparison form: compatibility-decomposed, combining marks removed, casefolded."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def word_runs(text: str) -> list[str]:
    """Lowercase ASCII alphanumeric runs of the folded text: invariant to tokenization, so
    "IL-2 (p<0.05)" and "IL - 2 ( p < 0.05 )" give the same runs: il 2 p 0 05."""
    return _WORD_RUN.findall(fold(text))


def text_key(text: str) -> bytes:
    """16-byte hash of the word runs: equal for texts that differ only in case, accents,
    punctuation or spacing (the duplicate-text key)."""
    return hashlib.blake2b(" ".join(word_runs(text)).encode(), digest_size=16).digest()


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) from a string (held-out assignment by document id)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
