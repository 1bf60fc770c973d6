"""Corpus readers and cleaning on the real mirror files, checked against MANIFEST counts, plain
lxml and pubmed_parser; bad input must fail with a message naming the file and position."""

from __future__ import annotations

import gzip
import json
import re
import tarfile
from pathlib import Path

import pubmed_parser
import pytest
from lxml import etree

from pubmedlm.corpus.clean import clean, text_key, word_runs
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.pmc import read_pmc
from pubmedlm.corpus.pubmed import read_medline
from pubmedlm.corpus.records import BadRecord, Deletion, Record
from pubmedlm.corpus.text import read_jsonl, read_tar, read_text

XML = "corpus/pubmed_xml"
# (file, PubmedArticle count, with abstract, DeleteCitation PMIDs) from MANIFEST.tsv / README.
MEDLINE = [
    ("baseline/pubmed26n1334.xml.gz", 30, 27, 0),
    ("updatefiles/pubmed26n1335.xml.gz", 30, 29, 6),
    ("test_current_medline.xml.gz", 4, 3, 0),
    ("pubmed-29768149.xml", 1, 1, 0),
]
ARTICLE = (
    '<PubmedArticle><MedlineCitation><PMID Version="{v}">{pmid}</PMID><Article>'
    "<ArticleTitle>{title}</ArticleTitle><Abstract>{abstract}</Abstract></Article>"
    "</MedlineCitation></PubmedArticle>\n"
)


def medline_file(path: Path, body: str) -> Path:
    data = f'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n{body}</PubmedArticleSet>\n'.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def article(pmid: int, title: str = "T", abstract: str = "words here", v: int = 1) -> str:
    return ARTICLE.format(pmid=pmid, title=title, abstract=f"<AbstractText>{abstract}</AbstractText>", v=v)


# ---- cleaning ------------------------------------------------------------------------------


def test_clean_is_nfc_lossless_and_single_spaced() -> None:
    assert clean("Cafe\u0301 \u00adlatte\u200b", "\n\tCa²⁺  10⁻³ µg ﬁne ") == "Café latte Ca²⁺ 10⁻³ µg ﬁne"
    assert "\n" not in clean("a\nb", "c")


def test_word_runs_ignore_tokenization_and_case() -> None:
    assert word_runs("IL-2 (p<0.05) Café") == word_runs("il - 2 ( p < 0.05 ) CAFE") == [
        "il", "2", "p", "0", "05", "cafe"]
    assert text_key("The ﬁrst trial.") == text_key("the first  trial") != text_key("the second trial")


# ---- MEDLINE --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "articles", "with_abstract", "deleted"), MEDLINE)
def test_medline_counts_match_manifest(mirror: Path, name: str, articles: int, with_abstract: int,
                                       deleted: int) -> None:
    items = list(read_medline(mirror / XML / name, name))
    records = [i for i in items if isinstance(i, Record)]
    assert len(records) == articles
    assert sum(len(r.segments) > 1 for r in records) == with_abstract
    assert sum(len(d.pmids) for d in items if isinstance(d, Deletion)) == deleted
    # The lenient (record-splitting) mode reads a valid file exactly like the strict parser.
    assert list(read_medline(mirror / XML / name, name, skip_bad=True)) == items


def test_medline_text_matches_plain_lxml_and_pubmed_parser(mirror: Path) -> None:
    for name, *_ in MEDLINE[:3]:
        path = mirror / XML / name
        ours = [r for r in read_medline(path, name) if isinstance(r, Record)]
        with gzip.open(path) as f:
            tree = etree.parse(f)
        lx = tree.findall("PubmedArticle/MedlineCitation")
        assert [r.pmid for r in ours] == [c.findtext("PMID") for c in lx]
        for r, c in zip(ours, lx, strict=True):
            sections = ["".join(a.itertext()) for a in c.iterfind("Article/Abstract/AbstractText")]
            assert clean(*r.segments) == clean("".join(c.find("Article/ArticleTitle").itertext()), *sections)
        ref = {a["pmid"]: a for a in pubmed_parser.parse_medline_xml(str(path))}
        same = 0
        for r in ours:
            title = ref[r.pmid]["title"]
            # pubmed_parser drops text nested two levels deep (<sub><i>x</i></sub>): ours keeps it.
            assert set(clean(title).split()) <= set(clean(r.segments[0]).split())
            same += clean(title) == clean(r.segments[0])
        assert same >= len(ours) - 1


def test_structured_abstract_joins_sections_without_labels_and_keeps_inline_markup(tmp_path: Path) -> None:
    body = ARTICLE.format(pmid=7, v=1, title="Effect of CO<sub>2</sub> on <i>E. coli</i>", abstract=(
        '<AbstractText Label="BACKGROUND">First  part.</AbstractText>'
        '<AbstractText Label="RESULTS">Ca<sup>2+</sup> rose.</AbstractText>'))
    (rec,) = read_medline(medline_file(tmp_path / "s.xml", body), "s.xml")
    assert clean(*rec.segments) == "Effect of CO2 on E. coli First part. Ca2+ rose."
    assert (rec.id, rec.pmid, rec.version) == ("pmid:7", "7", 1)


def test_truncated_gzip_names_file_and_position(mirror: Path, tmp_path: Path) -> None:
    data = (mirror / XML / MEDLINE[0][0]).read_bytes()
    cut = tmp_path / "cut.xml.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=r"cut\.xml\.gz: truncated or corrupt gzip stream after \d+ "
                                          r"decompressed bytes \(line \d+\)"):
        list(read_medline(cut, "cut.xml.gz"))
    # Skipping bad records keeps what came before the cut and reports the rest of the file lost.
    items = list(read_medline(cut, "cut.xml.gz", skip_bad=True))
    assert 0 < sum(isinstance(i, Record) for i in items) < 30
    assert isinstance(items[-1], BadRecord) and items[-1].truncated and "cut.xml.gz" in items[-1].where


def test_malformed_xml_names_line_and_column(tmp_path: Path) -> None:
    body = article(1) + article(2).replace("</ArticleTitle>", "</ArticleTitel>") + article(3)
    bad = medline_file(tmp_path / "bad.xml", body)
    with pytest.raises(CorpusError, match=r"bad\.xml: malformed XML at line 4, column \d+: .*ArticleTitle"):
        list(read_medline(bad, "bad.xml"))
    items = list(read_medline(bad, "bad.xml", skip_bad=True))
    assert [i.pmid for i in items if isinstance(i, Record)] == ["1", "3"]
    (skipped,) = [i for i in items if isinstance(i, BadRecord)]
    assert skipped.where == "bad.xml: line 4" and "malformed XML" in skipped.reason


def test_xml_cut_mid_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "short.xml"
    path.write_bytes(b"<PubmedArticleSet>\n" + article(1).encode() + article(2).encode()[:80])
    with pytest.raises(CorpusError, match=r"short\.xml: malformed XML at line 3"):
        list(read_medline(path, "short.xml"))


# ---- PMC ------------------------------------------------------------------------------------


def test_pmc_articles(mirror: Path) -> None:
    files = sorted((mirror / "corpus/pmc_oa_xml").glob("*.nxml"))
    assert len(files) == 8
    for path in files:
        (rec,) = read_pmc(path, path.name)
        ref = pubmed_parser.parse_pubmed_xml(str(path))
        assert rec.id == f"pmc:PMC{ref['pmc']}" and rec.pmid == ref["pmid"]
        # pubmed_parser puts spaces around inline markup (<italic>Mm</italic>PPOX -> "M m PPOX").
        assert "".join(rec.segments[0].split()) == "".join(ref["full_title"].split())
        assert len(clean(*rec.segments).split()) > 1000
    (rec,) = read_pmc(mirror / "corpus/pmc_oa_xml/pone.0000217.nxml", "p")
    text = clean(*rec.segments)
    assert "A persistent question in biology is how organismal complexity changes" in text
    assert "Fisher's geometric model in two-dimensional phenotypic space." not in text  # figure caption


# ---- text, JSONL, tar -----------------------------------------------------------------------


def test_gutenberg_boilerplate_is_stripped(mirror: Path) -> None:
    path = mirror / "corpus/general_english/gutenberg/972.txt"
    docs = [clean(*r.segments) for r in read_text(path, "972.txt")]
    assert docs[0] == "Produced by Aloysius" and "THE DEVIL'S DICTIONARY" in docs[1]
    assert not any("PROJECT GUTENBERG" in d.upper() and "LICENSE" in d.upper() for d in docs)


def test_text_documents_are_blank_line_blocks(mirror: Path) -> None:
    path = mirror / "corpus/general_english/wikitext-2/valid.txt"
    blocks = [b for b in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if b.strip()]
    records = list(read_text(path, "valid.txt"))
    assert [clean(*r.segments) for r in records] == [clean(b) for b in blocks]
    assert records[0].id == "text:valid.txt#2"


def test_non_utf8_text_names_byte_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("first line\n\ncaf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1\.txt: not valid UTF-8 at byte 15 \(line 3, column 4\)"):
        list(read_text(path, "latin1.txt"))
    items = list(read_text(path, "latin1.txt", skip_bad=True))
    assert isinstance(items[0], Record) and isinstance(items[1], BadRecord) and len(items) == 2


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "one", "id": "a"}\n\n{"text": "two"}\n', encoding="utf-8")
    assert [r.id for r in read_jsonl(path, "docs.jsonl")] == ["jsonl:docs.jsonl#a", "jsonl:docs.jsonl#3"]
    path.write_text('{"text": "one"}\n{"text": 2}\n{oops\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"docs\.jsonl: line 2: expected an object with a string 'text'"):
        list(read_jsonl(path, "docs.jsonl"))
    items = list(read_jsonl(path, "docs.jsonl", skip_bad=True))
    assert ([type(i) for i in items] == [Record, BadRecord, BadRecord]
            and items[2].where == "docs.jsonl: line 3")


def test_ohsumed_tar(mirror: Path) -> None:
    path = mirror / "corpus/pubmed_abstracts/ohsumed_single_23.tar.gz"
    records = list(read_tar(path, "ohsumed.tar.gz"))
    assert len(records) == 7400 == len(set(r.id for r in records))
    with tarfile.open(path) as tar:
        member = tar.getmember("ohsumed_single_23/training/C08/0003229")
        expected = tar.extractfile(member).read().decode("utf-8")
    (rec,) = [r for r in records if r.id == "tar:ohsumed.tar.gz:ohsumed_single_23/training/C08/0003229"]
    assert clean(*rec.segments) == clean(expected)


def test_truncated_tar_gz(mirror: Path, tmp_path: Path) -> None:
    data = (mirror / "corpus/pubmed_abstracts/ohsumed_single_23.tar.gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:100_000])
    with pytest.raises(CorpusError, match=r"cut\.tar\.gz: truncated or corrupt tar archive"):
        list(read_tar(cut, "cut.tar.gz"))
    items = list(read_tar(cut, "cut.tar.gz", skip_bad=True))
    assert isinstance(items[-1], BadRecord) and items[-1].truncated
    assert json.dumps([i.id for i in items[:-1]])  # the members before the cut were read


def test_lenient_mode_resumes_after_an_unclosed_record(tmp_path: Path) -> None:
    body = article(1) + article(2).replace("</PubmedArticle>", "") + article(3)
    items = list(read_medline(medline_file(tmp_path / "open.xml", body), "open.xml", skip_bad=True))
    assert [i.pmid if isinstance(i, Record) else i.where for i in items] == ["1", "open.xml: line 4", "3"]
