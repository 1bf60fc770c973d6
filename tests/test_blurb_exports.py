"""What blurb-data exports for the corpus and vocab stages (`blurb/derive.py`, `blurb/exports.py`),
against the mirror's files read straight here: the BLURB test documents (PMIDs and texts) the
corpus stage excludes, the NER train mentions and the model inputs of published splits only."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from lxml import etree

from pubmedlm.blurb import derive, exports, normalized, tasks
from pubmedlm.blurb.assemble import Located, Prepared
from pubmedlm.blurb.formats import BlurbFormatError


def _prepared(mirror: Path, name: str, splits: tuple[str, ...] = ("test",), raw: bool = True) -> Prepared:
    """A dataset as `assemble.prepare` leaves it: `splits` read from their published files; the raw
    test corpus and the test PMID list among its sources unless `raw` is false."""
    task = tasks.get(name)
    p = Prepared(task)
    for split in splits:
        p.rows[split] = p.published[split] = normalized.read_split(
            task, split, [mirror / path for path in task.files[split]])
    extra = [*task.raw.get("test", ()), *task.checks.get("pmid_list", {}).values()] if raw else []
    p.sources = {path: Located(path, mirror / path, "", True) for path in extra if not path.endswith("/")}
    return p


def _docs(p: Prepared) -> list[tuple[str | None, str]]:
    return [(d.doc_id, d.text) for d in derive.test_documents(p)]


def _lines(path: Path, header: bool = False) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1 if header else 0:]
    return [line.split("\t") for line in lines if line]


def test_chemprot_test_documents_are_the_raw_abstracts(mirror: Path) -> None:
    raw = mirror / "blurb/chemprot/raw_biocreative_vi/chemprot_test_gs/chemprot_test_abstracts_gs.tsv"
    expected = [(pmid, f"{title} {abstract}") for pmid, title, abstract in _lines(raw)]
    assert len(expected) == 800
    assert _docs(_prepared(mirror, "ChemProt", splits=())) == expected


def test_ddi_test_documents_are_the_listed_xml_documents(mirror: Path) -> None:
    folder = mirror / "blurb/DDI"
    listed = (folder / "split_files/test_files.tsv").read_text(encoding="utf-8").split("\n")
    expected = {}
    with tarfile.open(folder / "raw/DDIextraction_2013.tar.gz") as tar:
        for member in tar:
            rel = member.name.removeprefix("DDIextraction_2013/")
            if rel in listed:
                root = etree.parse(io.BytesIO(tar.extractfile(member).read())).getroot()
                pmid = rel.rsplit("/", 1)[1].removesuffix(".xml") if rel.split("/")[1] == "MedLine" else None
                expected[rel] = (pmid, " ".join(s.get("text") for s in root.iter("sentence")))
    docs = _docs(_prepared(mirror, "DDI"))
    assert len(docs) == len(listed) == 191
    assert docs == [expected[rel] for rel in listed]
    assert sum(pmid is not None for pmid, _text in docs) > 0
    # Without the raw corpus: the published sentences (pair masks and all), with no PMID.
    published = _docs(_prepared(mirror, "DDI", raw=False))
    assert published == [(None, row[1]) for row in _lines(folder / "test.tsv")] and len(published) == 5_716


def test_hoc_and_pubmedqa_documents_are_whole_abstracts_with_their_pmid(mirror: Path) -> None:
    hoc: dict[str, list[str]] = {}
    for _labels, sentence, index in _lines(mirror / "blurb/HoC/test.tsv", header=True):
        hoc.setdefault(index.split("_s")[0], []).append(sentence)
    assert _docs(_prepared(mirror, "HoC")) == [(pmid, " ".join(s)) for pmid, s in hoc.items()]
    assert len(hoc) == 371
    data = json.loads((mirror / "blurb/pubmedqa/ori_pqal.json").read_text(encoding="utf-8"))
    truth = json.loads((mirror / "blurb/pubmedqa/test_ground_truth.json").read_text(encoding="utf-8"))
    docs = dict(_docs(_prepared(mirror, "PubMedQA")))
    assert docs == {pmid: " ".join([data[pmid]["QUESTION"], *data[pmid]["CONTEXTS"]]) for pmid in truth}


def test_pico_documents_are_abstracts_and_the_blurb_test_pmid_list(mirror: Path) -> None:
    # Straight from the file: a -DOCSTART- line opens the next abstract even without a blank line
    # before it (three times in test.tsv), so the sentence above it stays in its own abstract.
    abstracts: dict[str, list[str]] = {}
    current = None
    for line in (mirror / "blurb/ebmnlp/test.tsv").read_text(encoding="utf-8").splitlines():
        if line.startswith("-DOCSTART-"):
            current = line.split("(")[1].rstrip(")")
        elif line.strip():
            abstracts.setdefault(current, []).append(line.split("\t")[0])
    listed = (mirror / "blurb/ebmnlp/split_pmids/test_pmid.tsv").read_text(encoding="utf-8").strip()
    listed = listed.split(",")
    expected = [(pmid, " ".join(tokens)) for pmid, tokens in abstracts.items()] + [(p, "") for p in listed]
    assert _docs(_prepared(mirror, "EBM-PICO")) == expected
    assert len(abstracts) == len(listed) == 191 and set(abstracts) == set(listed)


def test_ner_documents_are_test_sentences_without_ids(mirror: Path) -> None:
    sentences, tokens = [], []
    for line in [*(mirror / "blurb/NCBI-disease/test.tsv").read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            tokens.append(line.split("\t")[0])
        elif tokens:
            sentences.append((None, " ".join(tokens)))
            tokens = []
    assert _docs(_prepared(mirror, "NCBI-disease")) == sentences and len(sentences) == 940


def _strict_mentions(path: Path) -> list[str]:
    """Mentions of valid untyped IOB2 (`B` then `I`s), read straight from a NER file."""
    out: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        token, _, tag = line.partition("\t")
        if tag == "B":
            out.append([token])
        elif tag == "I":
            out[-1].append(token)
    return [" ".join(m) for m in out]


def test_exporter_dedupes_shared_test_sentences_and_round_trips(mirror: Path, tmp_path: Path) -> None:
    exporter = derive.Exporter(tmp_path)
    for name in ("BC5-chem", "BC5-disease", "NCBI-disease"):
        exporter.add(_prepared(mirror, name, splits=("train", "test")))
    exporter.close()
    docs = exports.read_test_documents(tmp_path)
    # BC5CDR-chem and -disease share every test sentence: indexed once, under the first.
    assert {d.dataset for d in docs} == {"BC5CDR-chem", "NCBI-disease"}
    assert sum(d.dataset == "BC5CDR-chem" for d in docs) == 4_797
    mentions = exports.read_ner_mentions(tmp_path)
    assert list(mentions) == ["BC5CDR-chem", "BC5CDR-disease", "NCBI-disease"]
    for folder in mentions:
        assert mentions[folder] == _strict_mentions(mirror / "blurb" / folder / "train.tsv"), folder
    assert len(mentions["NCBI-disease"]) == tasks.get("NCBI-disease").paper_counts["train"]  # 5,134 B tags
    inputs = exports.read_model_inputs(tmp_path, "NCBI-disease", "test")
    assert inputs == [[text] for _none, text in _docs(_prepared(mirror, "NCBI-disease"))]
    assert exports.read_model_inputs(tmp_path, "NCBI-disease", "dev") is None  # not read, not exported


def test_seqeval_mentions_on_messy_tags() -> None:
    rows = [{"tokens": list("abcdefg"), "tags": ["I", "I", "O", "B", "B", "I", "I"]},
            {"tokens": ["x", "y"], "tags": ["I-PAR", "I-INT"]}]
    assert derive.ner_mentions(rows) == ["a b", "d", "e f g", "x", "y"]


def test_export_readers_name_file_and_line(tmp_path: Path) -> None:
    folder = exports.folder(tmp_path)
    folder.mkdir()
    path = folder / exports.TEST_DOCUMENTS
    good = '{"dataset": "HoC", "doc_id": "1", "text": "a"}\n'
    path.write_text(good + '{"dataset": "HoC", "text"\n', encoding="utf-8")
    with pytest.raises(BlurbFormatError, match=rf"^{path}:2: not valid JSON"):
        exports.read_test_documents(tmp_path)
    path.write_text('{"dataset": "HoC", "text": "a"}\n', encoding="utf-8")
    expected = rf"^{path}:1: expected the fields dataset, doc_id, text; missing doc_id$"
    with pytest.raises(BlurbFormatError, match=expected):
        exports.read_test_documents(tmp_path)
    with pytest.raises(FileNotFoundError, match="run `pubmedlm blurb-data` first"):
        exports.read_ner_mentions(tmp_path)
