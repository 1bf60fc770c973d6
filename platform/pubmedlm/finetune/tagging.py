"""Tagging schemes for NER and PICO: IO, BIO and BIOUL, and exact conversion between them.

The files carry untyped BIO (NER: `B`, `I`, `O`) or typed IO (EBM PICO: `I-PAR`, ...). The model
may learn another scheme (`finetune.tagging`, the paper's ablation); gold tags are converted into
it for training and the model's word-level tags are converted back into the file's scheme for
scoring. Mentions are read the way seqeval's default (conlleval) mode reads them, so a conversion
never changes what the metric sees, except IO, which cannot separate two adjacent mentions of one
type (they become one: the information IO loses by design).

| scheme | single-word mention | longer mention |
|---|---|---|
| IO | `I` | `I I I` |
| BIO | `B` | `B I I` |
| BIOUL | `U` | `B I L` |
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMES = ("IO", "BIO", "BIOUL")
Span = tuple[str, int, int]  # (type, first word, last word), inclusive; untyped mentions have type ""


def mention_types(labels: Sequence[str]) -> list[str]:
    """The mention types behind a file's label set: NER `B/I/O` -> [""], PICO `I-PAR`.. -> [INT, OUT, PAR]."""
    types = {tag.split("-", 1)[1] if "-" in tag else "" for tag in labels if tag != "O"}
    return sorted(types)


def scheme_labels(scheme: str, types: Sequence[str]) -> list[str]:
    """The label set a model learns: `O` first, then each prefix of the scheme for each type."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tagging scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return ["O"] + [_tag(prefix, t) for t in types for prefix in scheme if prefix != "O"]


def _tag(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}" if kind else prefix


def spans(tags: Sequence[str]) -> list[Span]:
    """Mentions in any of the three schemes, read as seqeval's default mode reads them."""
    from seqeval.metrics.sequence_labeling import get_entities

    # seqeval reads IOBES; BIOUL's L and U are its E and S.
    mapped = [("E" + t[1:] if t[0] == "L" else "S" + t[1:] if t[0] == "U" else t) for t in tags]
    return [("" if kind == "_" else kind, start, end) for kind, start, end in get_entities(mapped)]


def encode(spans_: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags of `length` words marking `spans_` in `scheme`."""
    tags = ["O"] * length
    for kind, start, end in spans_:
        for i in range(start, end + 1):
            if scheme == "IO":
                prefix = "I"
            elif i == start:
                prefix = "U" if scheme == "BIOUL" and start == end else "B"
            else:
                prefix = "L" if scheme == "BIOUL" and i == end else "I"
            tags[i] = _tag(prefix, kind)
    return tags


def convert(tags: Sequence[str], scheme: str) -> list[str]:
    """The same mentions written in another scheme."""
    return encode(spans(tags), len(tags), scheme)


__all__ = ["SCHEMES", "Span", "convert", "encode", "mention_types", "scheme_labels", "spans"]
