"""The vocab stage's human-readable output: a Markdown report and a PNG chart.

Owns only presentation: it reads the metrics dictionary the stage writes to `metrics/vocab.json`
(see `pubmedlm.stages.vocab`) and renders it; it computes nothing new.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SIDES = ("reference", "ours")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _change(ref: float, ours: float) -> str:
    return f"{100 * (ours - ref) / ref:+.1f}%" if ref else "n/a"


def _headline(m: dict[str, Any]) -> list[str]:
    parts = []
    if m.get("heldout"):
        parts.append((f"held-out corpus ({m['heldout']['documents']:,} documents)", m["heldout"]))
    if m["ner_mentions"]["mentions"]:
        parts.append((f"BLURB NER train mentions, pooled ({m['ner_mentions']['mentions']:,})",
                      m["ner_mentions"]))
    # [UNK] marks characters outside our alphabet: a small corpus sample may lack e.g. Greek letters.
    rows = [[label, *_frag_cells(p), p["reference"]["unknown_per_1k_words"],
             p["ours"]["unknown_per_1k_words"]] for label, p in parts]
    header = ["text", "words", "pieces/word: reference", "pieces/word: ours", "change",
              "words split: reference", "words split: ours", "[UNK]/1k words: reference",
              "[UNK]/1k words: ours"]
    return ["## Headline", "", *_table(header, rows)]


def _frag_cells(pair: dict[str, Any]) -> list[Any]:
    ref, ours = pair["reference"], pair["ours"]
    return [
        f"{ours['words']:,}", f"{ref['pieces_per_word']:.3f}", f"{ours['pieces_per_word']:.3f}",
        _change(ref["pieces_per_word"], ours["pieces_per_word"]),
        f"{100 * ref['share_split']:.1f}%", f"{100 * ours['share_split']:.1f}%",
    ]


def _mentions(m: dict[str, Any]) -> list[str]:
    by = m["ner_mentions"]["by_dataset"]
    if not by:
        return ["## BLURB NER train mentions", "", "No NER train set in the blurb-data exports.", ""]
    rows = [
        [name, f"{d['mentions']:,}", *_frag_cells(d),
         f"{d['reference']['pieces_per_text']:.2f}", f"{d['ours']['pieces_per_text']:.2f}"]
        for name, d in by.items()
    ]
    header = ["dataset", "mentions", "words", "pieces/word: reference", "pieces/word: ours", "change",
              "words split: reference", "words split: ours", "pieces/mention: reference",
              "pieces/mention: ours"]
    return ["## BLURB NER train mentions, by dataset", "", *_table(header, rows)]


def _lengths(m: dict[str, Any]) -> list[str]:
    title = ["## Mean input length in pieces per instance (the paper's Table 8)", "",
             "With [CLS]/[SEP] as the model sees them, untruncated; pairs (BIOSSES, PubMedQA, "
             "BioASQ) as [CLS] A [SEP] B [SEP].", ""]
    rows = [
        [name, split, f"{s['instances']:,}", f"{s['reference']:.1f}", f"{s['ours']:.1f}",
         _change(s["reference"], s["ours"]), s["reference_max"], s["ours_max"]]
        for name, splits in m["input_length"].items() for split, s in splits.items()
    ]
    if not rows:
        return [*title, "No BLURB dataset in the blurb-data exports.", ""]
    header = ["dataset", "split", "instances", "reference", "ours", "change", "max: reference", "max: ours"]
    return [*title, *_table(header, rows)]


def _examples(examples: list[dict[str, Any]]) -> list[str]:
    rows = [
        [e["word"], " ".join(e["reference"]) + f" ({len(e['reference'])})",
         " ".join(e["ours"]) + f" ({len(e['ours'])})"]
        for e in examples
    ]
    return ["## Example words", "", *_table(["word", "reference", "ours"], rows)]


def render_markdown(m: dict[str, Any], examples: list[dict[str, Any]], notes: list[str]) -> str:
    """The whole report as Markdown: metrics tables, `examples` (word, reference and our pieces),
    then `notes` (what is missing, so that a gap is not read as a result)."""
    v, ref = m["vocab"], m["reference"]
    lines = [
        "# vocab: in-domain WordPiece vocabulary vs the reference",
        "",
        f"* **ours**: `data/vocab/`, {v['vocab_size']:,} entries, uncased={v['lowercase']}, trained on "
        f"{v['train_documents']:,} corpus train documents (alphabet {v['alphabet_size']} characters).",
        f"* **reference**: `{ref['name']}`, {ref['vocab_size']:,} entries.",
        "* A *word* is what the tokenizer's BERT normalizer and pre-tokenizer yield (punctuation is "
        "split off), so pieces per word never counts special tokens. *Split* = more than one piece.",
        "",
        *_headline(m),
        *_mentions(m),
        *_lengths(m),
        *_examples(examples),
    ]
    if notes:
        lines += ["## Notes", "", *[f"* {n}" for n in notes], ""]
    lines.append("![fragmentation](fragmentation.png)")
    return "\n".join(lines) + "\n"


def _bar_groups(ax, labels: list[str], series: dict[str, list[float]], xlabel: str) -> None:
    height = 0.38
    for i, (side, values) in enumerate(series.items()):
        ys = [y + (i - 0.5) * height for y in range(len(labels))]
        ax.barh(ys, values, height=height, label=side, color=("#9aa5b1", "#2b7bb9")[i])
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)


def _first_split(splits: dict[str, Any]) -> str:
    return next(s for s in ("train", "dev", "test") if s in splits)


def _relative_bars(ax, lengths: dict[str, dict[str, Any]]) -> None:
    """One bar per dataset: our mean input length as % of the reference's, labelled with both
    absolute lengths (absolute bars would be dominated by PubMedQA's ~300-piece inputs)."""
    labels = list(lengths)
    values = [100 * d["ours"] / d["reference"] for d in lengths.values()]
    ax.barh(range(len(labels)), values, height=0.6, color="#2b7bb9")
    ax.axvline(100, color="#9aa5b1", linestyle="--", linewidth=1)
    for y, d in enumerate(lengths.values()):
        ax.text(2, y, f"{d['ours']:.0f} vs {d['reference']:.0f}", va="center", color="white", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(110, 1.05 * max(values)))
    ax.set_xlabel("our mean input length, % of the reference's (dashed: equal)")
    ax.set_title("BLURB input length (pieces per instance)")


def render_chart(m: dict[str, Any], path: Path) -> None:
    """Pieces per word, reference vs ours (held-out text, NER mentions), and our mean input
    length relative to the reference's per BLURB dataset (train split, else the first present)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: DVC and CI run without a display
    import matplotlib.pyplot as plt

    frag = {"held-out corpus": m["heldout"]} if m.get("heldout") else {}
    if m["ner_mentions"]["by_dataset"]:
        frag["NER mentions (pooled)"] = m["ner_mentions"]
        frag.update({f"{k} mentions": d for k, d in m["ner_mentions"]["by_dataset"].items()})
    lengths = {f"{k} ({_first_split(s)})": s[_first_split(s)] for k, s in m["input_length"].items()}
    rows = max(len(frag), len(lengths), 4)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.45 * rows + 1.8))
    if frag:
        _bar_groups(left, list(frag), {s: [d[s]["pieces_per_word"] for d in frag.values()] for s in SIDES},
                    "word pieces per word")
        left.legend(loc="lower right", fontsize=8)
    left.set_title("Fragmentation")
    if lengths:
        _relative_bars(right, lengths)
    else:
        right.set_axis_off()
    fig.suptitle(f"ours ({m['vocab']['vocab_size']:,} entries) vs {m['reference']['name']} "
                 f"({m['reference']['vocab_size']:,})")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
