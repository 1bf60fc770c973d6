"""DDI converter: the published BLURB dev.tsv and test.tsv rebuilt byte for byte from the XML corpus."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pubmedlm.blurb import ddi, tasks
from pubmedlm.blurb.chemprot import compare_rows
from pubmedlm.blurb.formats import RelationRow, relation_tsv_text
from pubmedlm.blurb.normalized import read_relation_tsv

SPLITS = ("train", "dev", "test")


def read_relation_rows(path: Path, split: str) -> list[RelationRow]:
    """A DDI TSV through the reader blurb-data (and so the scores) use."""
    return [RelationRow(r["id"], r["text"], r["label"])
            for r in read_relation_tsv(path, split, tasks.get("DDI").labels)]


@pytest.fixture(scope="module")
def ddi_dir(mirror: Path) -> Path:
    return mirror / "blurb" / "DDI"


@pytest.fixture(scope="module")
def lists(ddi_dir: Path) -> dict[str, list[str]]:
    return {s: ddi.read_split_list(ddi_dir / "split_files" / f"{s}_files.tsv") for s in SPLITS}


@pytest.fixture(scope="module")
def documents(ddi_dir: Path, lists: dict[str, list[str]]) -> dict[str, bytes]:
    return ddi.read_documents(ddi_dir / "raw" / "DDIextraction_2013.tar.gz",
                              [p for s in SPLITS for p in lists[s]])


@pytest.mark.parametrize("split, size", [("dev", 2_496), ("test", 5_716)])
def test_published_split_is_reproduced_byte_for_byte(split: str, size: int, ddi_dir: Path, lists,
                                                     documents) -> None:
    published_path = ddi_dir / f"{split}.tsv"
    rows = ddi.convert_ddi(ddi_dir / "raw" / "DDIextraction_2013.tar.gz", lists[split], documents)
    report = compare_rows(rows, read_relation_rows(published_path, split))
    print(split, report.describe())
    assert report.rows == report.published == size, report.describe()
    assert report.id_label_share == 1.0, report.describe()
    assert report.sentence_share == 1.0, report.describe()
    assert relation_tsv_text(rows).encode("utf-8") == published_path.read_bytes()


def test_train_is_rebuilt_with_the_papers_size(ddi_dir: Path, lists, documents) -> None:
    rows = ddi.convert_ddi(ddi_dir / "raw" / "DDIextraction_2013.tar.gz", lists["train"], documents)
    assert len(rows) == 25_296  # Gu et al., Table 2
    assert Counter(r.label for r in rows) == {
        "DDI-false": 21_745, "DDI-effect": 1_486, "DDI-mechanism": 1_163, "DDI-advise": 725, "DDI-int": 177}


def test_split_lists_cover_the_corpus_once(lists) -> None:
    assert [len(lists[s]) for s in SPLITS] == [624, 90, 191]
    everything = [p for s in SPLITS for p in lists[s]]
    assert len(set(everything)) == 905


def test_build_writes_the_published_dev_file(ddi_dir: Path, tmp_path: Path) -> None:
    written = ddi.build_ddi(ddi_dir, tmp_path, splits=("dev",))
    assert written["dev"].read_bytes() == (ddi_dir / "dev.tsv").read_bytes()


_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<document id="DDI-DrugBank.d1">
  <sentence id="DDI-DrugBank.d1.s0" text="A B-blocker&#xa;with C&#x9;and D.">
    <entity id="DDI-DrugBank.d1.s0.e0" charOffset="0-0" type="drug" text="A"/>
    <entity id="DDI-DrugBank.d1.s0.e1" charOffset="2-10" type="group" text="B-blocker"/>
    <entity id="DDI-DrugBank.d1.s0.e2" charOffset="2-2;8-10" type="drug" text="B ker"/>
    <entity id="DDI-DrugBank.d1.s0.e3" charOffset="17-17" type="drug" text="C"/>
    <pair id="DDI-DrugBank.d1.s0.p0" e1="DDI-DrugBank.d1.s0.e3" e2="DDI-DrugBank.d1.s0.e0" ddi="true" \
type="effect"/>
    <pair id="DDI-DrugBank.d1.s0.p1" e1="DDI-DrugBank.d1.s0.e1" e2="DDI-DrugBank.d1.s0.e2" ddi="false"/>
  </sentence>
  <sentence id="DDI-DrugBank.d1.s1" text="No pairs here."/>
</document>
"""


def test_rows_mask_in_text_order_merge_overlaps_and_clean_control_characters() -> None:
    rows = list(ddi.document_rows(_XML))
    assert [(r.pair_id, r.sentence, r.label) for r in rows] == [
        # e1 comes later in the text than e2: masks go by position, the pair id stays the XML's.
        ("DDI-DrugBank.d1.s0.p0", "@DRUG$ B-blocker with @DRUG$ and D.", "DDI-effect"),
        # A discontinuous mention spans its first to last offset; overlap gives one mask.
        ("DDI-DrugBank.d1.s0.p1", "A @DRUG-DRUG$ with C and D.", "DDI-false"),
    ]


def test_char_span_is_end_exclusive() -> None:
    assert ddi.char_span("12-20") == (12, 21)
    assert ddi.char_span("3-9;15-20") == (3, 21)


def test_missing_document_is_reported(ddi_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.xml"):
        ddi.read_documents(ddi_dir / "raw" / "DDIextraction_2013.tar.gz", ["train_dataset/nope.xml"])
