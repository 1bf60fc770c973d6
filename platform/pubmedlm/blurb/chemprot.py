"""ChemProt: the BioCreative VI corpus converted into BLURB's relation TSV, byte for byte.

Owns the conversion rule (reverse-engineered from the published BLURB `dev.tsv`, which it
reproduces exactly, all 11,268 rows in order), the pair-masking rule that DDI shares, and the
row-by-row comparison of rebuilt against published files (`compare_rows`). The rule:

1. Each abstract line is `PMID<TAB>title<TAB>abstract`. The text after the PMID (title, tab,
   abstract) is split with NLTK's English Punkt tokenizer, and every sentence holding a tab is
   split again at the tab (Punkt does not break at the title's end when the title has no final
   period). Sentence offsets come from searching each sentence in the text left to right.
2. Entity offsets in `*_entities.tsv` count characters of that same text. An entity belongs to a
   sentence when it lies entirely inside it; entities crossing a sentence boundary are dropped.
   `CHEMICAL` entities are chemicals; `GENE-Y` and `GENE-N` are both genes.
3. Candidates are every (chemical, gene) pair inside one sentence, chemicals in entity-file
   order in the outer loop, genes in entity-file order in the inner loop.
4. The pair id is `PMID.Ta.Tb` with `Ta` the entity starting first in the sentence (a gene when
   both start at the same offset). The sentence masks the earlier entity as `@CHEMICAL$` or
   `@GENE$`, the later one likewise; if the earlier one ends after the later one starts, the
   whole covered span becomes one `@CHEM-GENE$`.
5. The label is the gold-standard relation of the pair (CPR:3/4/5/6/9; the last line wins when a
   pair is listed twice), else `false`. The BLURB script reads `*_relations.tsv` and keeps only
   those five groups; the gold-standard files hold exactly those relations, so the rows agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pubmedlm.blurb.formats import BlurbFormatError, RelationRow, write_relation_tsv

POSITIVE_LABELS = ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")
NEGATIVE_LABEL = "false"
# BLURB masks both gene kinds alike (GENE-Y: normalisable to a database id, GENE-N: not).
_KINDS = {"CHEMICAL": "CHEMICAL", "GENE-Y": "GENE", "GENE-N": "GENE"}

# split -> (folder, file prefix, suffix of abstracts/entities files, gold-standard file name)
_RAW_FILES = {
    "train": ("chemprot_training", "chemprot_training", "", "chemprot_training_gold_standard.tsv"),
    "dev": ("chemprot_development", "chemprot_development", "", "chemprot_development_gold_standard.tsv"),
    "test": ("chemprot_test_gs", "chemprot_test", "_gs", "chemprot_test_gold_standard.tsv"),
}


class SentenceSplitter(Protocol):
    def tokenize(self, text: str) -> list[str]: ...


@dataclass(frozen=True)
class Entity:
    """One annotated mention: id (`T12`), kind (`CHEMICAL` or `GENE`), [start, end) offsets."""

    id: str
    kind: str
    start: int
    end: int


def mask_pair(text: str, first: tuple[int, int], second: tuple[int, int],
              tags: tuple[str, str], overlap_tag: str) -> str:
    """Replace two mentions, `first` starting no later than `second`, by their dummy tags.

    BLURB's rule for overlap is asymmetric on purpose: only "first ends after second starts"
    counts (touching spans stay two masks), and the merged mask spans both mentions."""
    (s1, e1), (s2, e2) = first, second
    if e1 > s2:
        return text[:min(s1, s2)] + overlap_tag + text[max(e1, e2):]
    return text[:s1] + tags[0] + text[e1:s2] + tags[1] + text[e2:]


def sentence_spans(text: str, splitter: SentenceSplitter) -> list[tuple[int, int]]:
    """[start, end) of each sentence of `text`: Punkt sentences, each split again at tabs."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for punkt_sentence in splitter.tokenize(text):
        for sentence in punkt_sentence.split("\t"):
            start = text.find(sentence, cursor)
            cursor = start + len(sentence)
            spans.append((start, cursor))
    return spans


def _raw_path(raw_dir: Path, split: str, kind: str) -> Path:
    if split not in _RAW_FILES:
        raise ValueError(f"unknown ChemProt split {split!r}; expected one of {', '.join(_RAW_FILES)}")
    folder, prefix, suffix, gold = _RAW_FILES[split]
    name = gold if kind == "gold_standard" else f"{prefix}_{kind}{suffix}.tsv"
    return raw_dir / folder / name


def _lines(path: Path) -> Iterator[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line:
                yield line.split("\t")


def read_entities(path: Path) -> dict[str, list[Entity]]:
    """PMID -> entities in file order (`PMID id type start end text`)."""
    out: dict[str, list[Entity]] = {}
    for pmid, eid, etype, start, end, *_text in _lines(path):
        if etype not in _KINDS:
            raise BlurbFormatError(f"{path}: entity {pmid} {eid} has unknown type {etype!r}")
        out.setdefault(pmid, []).append(Entity(eid, _KINDS[etype], int(start), int(end)))
    return out


def read_abstracts(path: Path) -> Iterator[tuple[str, str]]:
    """(PMID, `title<TAB>abstract`) per line of an `*_abstracts.tsv` file (`PMID title abstract`):
    the text the entity offsets count, the tab as one character."""
    for pmid, *parts in _lines(path):
        yield pmid, "\t".join(parts)


def read_gold(path: Path) -> dict[tuple[str, str, str], str]:
    """(PMID, Arg1 id, Arg2 id) -> CPR group, from `PMID group Arg1:Tn Arg2:Tm`."""
    gold: dict[tuple[str, str, str], str] = {}
    for pmid, group, arg1, arg2 in _lines(path):
        if group in POSITIVE_LABELS:
            gold[(pmid, arg1.split(":", 1)[1], arg2.split(":", 1)[1])] = group
    return gold


def _sentence_rows(pmid: str, text: str, span: tuple[int, int], entities: Iterable[Entity],
                   gold: dict[tuple[str, str, str], str]) -> Iterator[RelationRow]:
    start, end = span
    inside = [e for e in entities if e.start >= start and e.end <= end]
    sentence = text[start:end]
    for chem in (e for e in inside if e.kind == "CHEMICAL"):
        for gene in (e for e in inside if e.kind == "GENE"):
            a, b = (chem, gene) if chem.start < gene.start else (gene, chem)
            label = gold.get((pmid, a.id, b.id)) or gold.get((pmid, b.id, a.id)) or NEGATIVE_LABEL
            masked = mask_pair(sentence, (a.start - start, a.end - start), (b.start - start, b.end - start),
                               (f"@{a.kind}$", f"@{b.kind}$"), "@CHEM-GENE$")
            spans = ((a.start - start, a.end - start, a.kind), (b.start - start, b.end - start, b.kind))
            yield RelationRow(f"{pmid}.{a.id}.{b.id}", masked, label, original=sentence, entities=spans)


def convert_chemprot(raw_dir: Path, split: str, splitter: SentenceSplitter) -> list[RelationRow]:
    """BLURB ChemProt rows of one split, in BLURB's order.

    `raw_dir` holds `chemprot_training/`, `chemprot_development/` and `chemprot_test_gs/`;
    `splitter` is `pubmedlm.text.sentences.punkt(...)` (other Punkt parameters give other rows)."""
    entities = read_entities(_raw_path(raw_dir, split, "entities"))
    gold = read_gold(_raw_path(raw_dir, split, "gold_standard"))
    rows: list[RelationRow] = []
    for pmid, text in read_abstracts(_raw_path(raw_dir, split, "abstracts")):
        for span in sentence_spans(text, splitter):
            rows.extend(_sentence_rows(pmid, text, span, entities.get(pmid, ()), gold))
    return rows


def build_chemprot(raw_dir: Path, out_dir: Path, splitter: SentenceSplitter,
                   splits: Iterable[str] = ("train", "dev", "test")) -> dict[str, Path]:
    """Write BLURB's `<split>.tsv` files into `out_dir`; returns split -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in splits:
        written[split] = write_relation_tsv(convert_chemprot(raw_dir, split, splitter),
                                            out_dir / f"{split}.tsv")
    return written


@dataclass(frozen=True)
class RowComparison:
    """Rebuilt rows against a published file, position by position."""

    rows: int
    published: int
    id_label_matches: int
    sentence_matches: int
    differing: list[tuple[int, RelationRow | None, RelationRow | None]]

    @property
    def id_label_share(self) -> float:
        return self.id_label_matches / max(self.rows, self.published, 1)

    @property
    def sentence_share(self) -> float:
        return self.sentence_matches / max(self.rows, self.published, 1)

    def describe(self, limit: int = 20) -> str:
        head = (f"{self.rows} rows rebuilt, {self.published} published; pair id + label match "
                f"{self.id_label_share:.4%}, masked sentence byte-identical {self.sentence_share:.4%}")
        shown = [f"  row {i}:\n    ours      {a and a.line()!r}\n    published {b and b.line()!r}"
                 for i, a, b in self.differing[:limit]]
        return "\n".join([head, *shown])


def compare_rows(ours: list[RelationRow], published: list[RelationRow]) -> RowComparison:
    """Match rates of rebuilt rows against the published rows, and every row that differs."""
    ids = sentences = 0
    differing = []
    for i in range(max(len(ours), len(published))):
        a = ours[i] if i < len(ours) else None
        b = published[i] if i < len(published) else None
        if a and b:
            ids += (a.pair_id, a.label) == (b.pair_id, b.label)
            sentences += a.sentence == b.sentence
        if a != b:
            differing.append((i, a, b))
    return RowComparison(len(ours), len(published), ids, sentences, differing)


__all__ = [
    "NEGATIVE_LABEL", "POSITIVE_LABELS", "Entity", "RowComparison", "SentenceSplitter", "build_chemprot",
    "compare_rows", "convert_chemprot", "mask_pair", "read_abstracts", "read_entities", "read_gold",
    "sentence_spans",
]
