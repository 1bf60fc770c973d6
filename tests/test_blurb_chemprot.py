"""ChemProt converter: the published BLURB dev.tsv rebuilt byte for byte from BioCreative VI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pubmedlm.blurb import chemprot, tasks
from pubmedlm.blurb.chemprot import compare_rows, convert_chemprot, mask_pair, sentence_spans
from pubmedlm.blurb.formats import BlurbFormatError, RelationRow, relation_tsv_text
from pubmedlm.blurb.normalized import read_relation_tsv
from pubmedlm.text.sentences import punkt_from_dir


def read_relation_rows(path: Path, split: str) -> list[RelationRow]:
    """A ChemProt TSV through the reader blurb-data (and so the scores) use."""
    return [RelationRow(r["id"], r["text"], r["label"])
            for r in read_relation_tsv(path, split, tasks.get("ChemProt").labels)]


@pytest.fixture(scope="module")
def raw(mirror: Path) -> Path:
    return mirror / "blurb" / "chemprot" / "raw_biocreative_vi"


@pytest.fixture(scope="module")
def splitter(mirror: Path):
    return punkt_from_dir(mirror / "nltk")


def test_dev_is_reproduced_byte_for_byte(raw: Path, splitter, mirror: Path) -> None:
    published_path = mirror / "blurb" / "chemprot" / "dev.tsv"
    rows = convert_chemprot(raw, "dev", splitter)
    report = compare_rows(rows, read_relation_rows(published_path, "dev"))
    print(report.describe())
    assert report.rows == report.published == 11_268, report.describe()
    assert report.id_label_share == 1.0, report.describe()
    assert report.sentence_share == 1.0, report.describe()
    assert relation_tsv_text(rows).encode("utf-8") == published_path.read_bytes()


def test_missing_splits_are_rebuilt_with_the_papers_sizes(raw: Path, splitter, tmp_path: Path) -> None:
    written = chemprot.build_chemprot(raw, tmp_path, splitter, splits=("train", "test"))
    train, test = (read_relation_rows(written[s], s) for s in ("train", "test"))
    assert (len(train), len(test)) == (18_035, 15_745)  # Gu et al., Table 2
    assert Counter(r.label for r in train) == {
        "false": 13_923, "CPR:4": 2_227, "CPR:3": 756, "CPR:9": 727, "CPR:6": 229, "CPR:5": 173}
    assert Counter(r.label for r in test) == {
        "false": 12_315, "CPR:4": 1_655, "CPR:3": 663, "CPR:9": 642, "CPR:6": 292, "CPR:5": 178}


@pytest.mark.parametrize("split, relations", [
    ("train", "chemprot_training/chemprot_training_relations.tsv"),
    ("dev", "chemprot_development/chemprot_development_relations.tsv"),
    ("test", "chemprot_test_gs/chemprot_test_relations_gs.tsv"),
])
def test_gold_standard_equals_blurbs_filtered_relations(raw: Path, split: str, relations: str) -> None:
    # BLURB's script reads *_relations.tsv, maps groups other than CPR:3/4/5/6/9 to `false`, and
    # lets a pair's last line win; the converter reads the gold standard instead.
    blurb: dict[tuple[str, str, str], str] = {}
    for line in (raw / relations).read_text(encoding="utf-8").splitlines():
        pmid, group, _evaluated, _name, arg1, arg2 = line.split("\t")
        key = (pmid, arg1.split(":")[1], arg2.split(":")[1])
        blurb[key] = group if group in chemprot.POSITIVE_LABELS else "false"
    positives = {k: v for k, v in blurb.items() if v != "false"}
    assert chemprot.read_gold(chemprot._raw_path(raw, split, "gold_standard")) == positives


def test_mask_pair_separate_touching_and_overlapping_mentions() -> None:
    text = "Aspirin inhibits COX-2 strongly."
    tags = ("@CHEMICAL$", "@GENE$")
    assert mask_pair(text, (0, 7), (17, 22), tags, "@CHEM-GENE$") == "@CHEMICAL$ inhibits @GENE$ strongly."
    # Touching spans (first ends where second starts) stay two masks.
    assert mask_pair("ABCD", (0, 2), (2, 4), tags, "@X$") == "@CHEMICAL$@GENE$"
    # Nested and crossing spans merge into one mask covering both.
    assert mask_pair("xx COX-2 inhibitor yy", (3, 18), (3, 8), tags, "@CHEM-GENE$") == "xx @CHEM-GENE$ yy"
    assert mask_pair("abcdefgh", (1, 5), (3, 7), tags, "@CHEM-GENE$") == "a@CHEM-GENE$h"


class _Splitter:
    """Punkt stand-in: splits after '. ' only, so the title/abstract tab is left to the converter."""

    def tokenize(self, text: str) -> list[str]:
        return text.replace(". ", ".\n").split("\n")


def test_sentence_spans_split_at_the_title_tab() -> None:
    text = "Title without period\tFirst sentence. Second one."
    spans = sentence_spans(text, _Splitter())
    assert [text[a:b] for a, b in spans] == ["Title without period", "First sentence.", "Second one."]
    assert spans[1][0] == len("Title without period") + 1  # offsets count the tab


def _write_raw(root: Path, abstracts: str, entities: str, gold: str) -> Path:
    folder = root / "chemprot_development"
    folder.mkdir(parents=True)
    (folder / "chemprot_development_abstracts.tsv").write_text(abstracts, encoding="utf-8")
    (folder / "chemprot_development_entities.tsv").write_text(entities, encoding="utf-8")
    (folder / "chemprot_development_gold_standard.tsv").write_text(gold, encoding="utf-8")
    return root


def test_pairs_order_genes_of_both_kinds_boundary_crossing_and_labels(tmp_path: Path) -> None:
    title = "T"
    body = "Drug A blocks KIT and RET. Then X binds Y."  # KIT 14-17, RET 22-25, X 32-33, Y 40-41
    off = len(title) + 1
    entities = "\n".join([
        f"1\tT1\tCHEMICAL\t{off + 0}\t{off + 6}\tDrug A",
        f"1\tT2\tGENE-Y\t{off + 14}\t{off + 17}\tKIT",
        f"1\tT3\tGENE-N\t{off + 22}\t{off + 25}\tRET",
        f"1\tT4\tGENE-Y\t{off + 22}\t{off + 33}\tRET. Then X",  # crosses the sentence boundary
        f"1\tT5\tGENE-N\t{off + 32}\t{off + 33}\tX",
        f"1\tT6\tCHEMICAL\t{off + 40}\t{off + 41}\tY",
    ]) + "\n"
    gold = "1\tCPR:4\tArg1:T1\tArg2:T3\n1\tCPR:3\tArg1:T6\tArg2:T5\n"
    raw = _write_raw(tmp_path, f"1\t{title}\t{body}\n", entities, gold)
    rows = convert_chemprot(raw, "dev", _Splitter())
    assert rows == [
        RelationRow("1.T1.T2", "@CHEMICAL$ blocks @GENE$ and RET.", "false"),
        RelationRow("1.T1.T3", "@CHEMICAL$ blocks KIT and @GENE$.", "CPR:4"),
        # The gene comes first in the sentence, so its id comes first in the pair id.
        RelationRow("1.T5.T6", "Then @GENE$ binds @CHEMICAL$.", "CPR:3"),
    ]


def test_unknown_entity_type_is_a_format_error(tmp_path: Path) -> None:
    raw = _write_raw(tmp_path, "1\tT\tA b.\n", "1\tT1\tPROTEIN\t2\t3\tA\n", "")
    with pytest.raises(BlurbFormatError, match="PROTEIN"):
        convert_chemprot(raw, "dev", _Splitter())


def test_compare_rows_lists_every_difference() -> None:
    a = [RelationRow("1.T1.T2", "x", "false"), RelationRow("1.T1.T3", "y", "CPR:3")]
    b = [RelationRow("1.T1.T2", "x", "false"), RelationRow("1.T1.T3", "z", "CPR:3"),
         RelationRow("2", "w", "false")]
    report = compare_rows(a, b)
    assert (report.id_label_matches, report.sentence_matches) == (2, 1)
    assert report.id_label_share == pytest.approx(2 / 3)
    assert [i for i, _a, _b in report.differing] == [1, 2]
    assert "row 2" in report.describe()
