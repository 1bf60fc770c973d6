"""The corpus stage end to end: counts on the real samples against an independent count, MEDLINE
update semantics, BLURB exclusion (of the test documents blurb-data exports), atomic failure,
skip-bad-records accounting, determinism."""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from conftest import REPO
from pubmedlm.blurb.exports import read_test_documents
from pubmedlm.config import Config, load_config
from pubmedlm.corpus.build import build_corpus
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.exclusion import BlurbExclusion, load_exclusion
from pubmedlm.corpus.inputs import CorpusInput, resolve_inputs
from pubmedlm.infra.sources import sha256_file

XML_INPUTS = [
    "corpus/pubmed_xml/baseline/pubmed26n1334.xml.gz",
    "corpus/pubmed_xml/updatefiles/pubmed26n1335.xml.gz",
    "corpus/pubmed_xml/test_current_medline.xml.gz",
    "corpus/pubmed_xml/pubmed-29768149.xml",
]
OHSUMED = "corpus/pubmed_abstracts/ohsumed_single_23.tar.gz"
# The two OHSUMED documents the mirror README lists as overlapping BLURB test sets.
OHSUMED_IN_BLURB_TEST = {
    f"tar:{OHSUMED}:ohsumed_single_23/training/C08/0003229": "ebmnlp",
    f"tar:{OHSUMED}:ohsumed_single_23/test/C10/0011615": "chemprot",
}


def _article(pmid: str, words: int, tag: str = "", version: int = 1) -> str:
    text = " ".join(f"w{tag}{i}" for i in range(words))
    return (f'<PubmedArticle><MedlineCitation><PMID Version="{version}">{pmid}</PMID><Article><ArticleTitle>'
            f"T{tag}</ArticleTitle><Abstract><AbstractText>{text}</AbstractText></Abstract></Article>"
            "</MedlineCitation></PubmedArticle>\n")


def _xml(path: Path, body: str, gz: bool = False) -> Path:
    data = f"<PubmedArticleSet>\n{body}</PubmedArticleSet>\n".encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def _cfg(inputs: list[str], **corpus: object) -> Config:
    section = {"inputs": inputs, "exclude_blurb_test": False, "min_words": 0, **corpus}
    return Config.model_validate({"runtime": {"progress": False}, "corpus": section})


def _local(*paths: Path) -> list[CorpusInput]:
    return [CorpusInput(p.name, p, sha256_file(p)) for p in paths]


def _lines(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for p in sorted(folder.glob(f"{split}-*.jsonl"))
            for line in p.open(encoding="utf-8")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Iterator[tuple[Path, object]]:
    """One real stage run on the tiny profile's inputs (the real samples), after blurb-data (whose
    exported test documents it excludes), shared by the module."""
    from pubmedlm.stages import blurb_data, corpus

    root = tmp_path_factory.mktemp("corpus-project")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBMEDLM_PROJECT_ROOT", str(root))
        mp.setenv("PUBMEDLM_DATA_MIRROR", str(mirror))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.chdir(root)
        cfg = load_config(REPO / "params.yaml", [f"corpus.inputs={json.dumps([*XML_INPUTS, OHSUMED])}",
                                                 "runtime.progress=false"])
        blurb_data.run(cfg, params_file=REPO / "params.yaml")
        yield root, corpus.run(cfg, params_file=REPO / "params.yaml")


@pytest.fixture(scope="module")
def blurb(built) -> BlurbExclusion:
    root, _ = built
    return load_exclusion(read_test_documents(root / "data/blurb_data"), 12, 2, "data/blurb_data")


def _blurb_test_pmids(mirror: Path) -> set[str]:
    """PMIDs of BLURB test documents, read straight from the files (not via our readers)."""
    b = mirror / "blurb"
    pmids = {line.split("\t")[2].split("_s")[0] for line in (b / "HoC/test.tsv").read_text().splitlines()[1:]}
    pmids |= set(json.loads((b / "pubmedqa/test_ground_truth.json").read_text()))
    pmids |= {p.strip() for p in (b / "ebmnlp/split_pmids/test_pmid.tsv").read_text().split(",") if p.strip()}
    raw = b / "chemprot/raw_biocreative_vi/chemprot_test_gs/chemprot_test_abstracts_gs.tsv"
    pmids |= {line.split("\t")[0] for line in raw.read_text().splitlines() if line}
    pmids |= {Path(p).stem for p in (b / "DDI/split_files/test_files.tsv").read_text().split()
              if "/MedLine/" in p}
    return pmids


def test_counts_on_real_samples_equal_an_independent_count(built, mirror: Path) -> None:
    root, result = built
    m = json.loads((root / "metrics/corpus.json").read_text())
    # Independent count: plain lxml, MEDLINE order semantics, length over title + abstract words.
    texts: dict[str, str] = {}
    for name in XML_INPUTS:
        path = mirror / name
        tree = etree.fromstring(gzip.decompress(path.read_bytes()) if name.endswith(".gz")
                                else path.read_bytes())
        for el in tree:
            if el.tag == "DeleteCitation":
                for p in el.iterfind("PMID"):
                    texts.pop(p.text, None)
            else:
                art = el.find("MedlineCitation/Article")
                parts = [art.find("ArticleTitle"), *art.iterfind("Abstract/AbstractText")]
                texts[el.findtext("MedlineCitation/PMID")] = " ".join("".join(p.itertext()) for p in parts)
    assert len(texts) == 65  # 30 + 30 + 4 + 1 PMIDs; the 6 deletions name none of them
    kept = {p for p in texts if p not in _blurb_test_pmids(mirror)}
    kept = {p for p in kept if len(texts[p].split()) >= 128}
    assert m["unique_pmids"] == len(kept) > 40
    with tarfile.open(mirror / OHSUMED) as tar:
        words = [len(tar.extractfile(t).read().split()) for t in tar if t.isfile()]
    ohsumed = len(words) - 2 - sum(w < 128 for w in words)  # the two README overlaps are long
    assert m["sources"][OHSUMED] == {"records": 7400, "documents": ohsumed}
    assert (m["documents"]["total"] == len(kept) + ohsumed
            == m["documents"]["train"] + m["documents"]["heldout"])
    assert m["deletions"] == {"requested": 6, "applied": 0, "not_found": 6}
    counted = {k: v for k, v in m["dropped"].items() if k != "bad_records"}
    assert m["records_read"] == 7465 == m["documents"]["total"] + sum(counted.values())
    assert result.metrics == m


def test_ohsumed_blurb_overlaps_are_excluded_and_false_positives_rare(built) -> None:
    root, _ = built
    m = json.loads((root / "metrics/corpus.json").read_text())
    ids = {d["id"] for s in ("train", "heldout") for d in _lines(root / "data/corpus", s)}
    assert not ids & set(OHSUMED_IN_BLURB_TEST)
    assert m["dropped"]["blurb_test"] == 2  # exactly the README's pair: no false positives
    by = m["blurb_test"]["by_dataset"]
    assert by["ebmnlp"] == by["chemprot"] == 1 and sum(by.values()) == 2


def test_outputs_are_well_formed_tracked_and_deterministic(built, blurb: BlurbExclusion, mirror: Path,
                                                           tmp_path: Path) -> None:
    import mlflow

    root, result = built
    out = root / "data/corpus"
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "heldout-00000.jsonl",
                                                     "train-00000.jsonl"]
    train, heldout = _lines(out, "train"), _lines(out, "heldout")
    docs = train + heldout
    assert all(set(d) == {"id", "source", "text"} and "\n" not in d["text"] for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)
    assert 0.03 < len(heldout) / len(docs) < 0.07  # heldout_fraction 0.05
    cfg = load_config(REPO / "params.yaml", [f"corpus.inputs={json.dumps([*XML_INPUTS, OHSUMED])}"])
    inputs = [CorpusInput(n, mirror / n, sha256_file(mirror / n)) for n in [*XML_INPUTS, OHSUMED]]
    again = tmp_path / "again"
    again.mkdir()
    build_corpus(inputs, cfg.corpus, again, blurb)
    for name in ("train-00000.jsonl", "heldout-00000.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["documents.total"] == result.metrics["documents"]["total"]
    assert run.data.metrics["dropped.blurb_test"] == 2
    assert run.data.tags[f"source.{OHSUMED}.sha256"] == sha256_file(mirror / OHSUMED)
    assert "dvc.data/blurb_data" in run.data.tags  # the exclusion's input, by its DVC hash


def test_exclusion_indexes_every_blurb_test_pmid(blurb: BlurbExclusion, mirror: Path) -> None:
    assert set(blurb.ids) == _blurb_test_pmids(mirror)
    assert blurb.summary()["blurb_test_documents"]["pubmedqa"] == 500


def test_exclusion_needs_blurb_data(project: Path) -> None:
    from pubmedlm.stages import corpus

    _xml(project / "a.xml", _article("1", 10))
    cfg = _cfg(["a.xml"], exclude_blurb_test=True)
    expected = str(project / "data/blurb_data/exports/test_documents.jsonl")
    with pytest.raises(CorpusError, match=rf"exclude_blurb_test is on but {expected} is missing: "
                                          r"run `pubmedlm blurb-data`"):
        corpus.run(cfg)
    (project / "data/blurb_data/exports").mkdir(parents=True)
    (project / "data/blurb_data/exports/test_documents.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no BLURB test document"):
        corpus.run(cfg)
    assert not (project / "data/corpus").exists()


def test_latest_version_wins_and_deletions_apply_in_order(tmp_path: Path) -> None:
    a = _xml(tmp_path / "a.xml", _article("1", 5, "old") + _article("2", 5)
             + _article("3", 5, "v2", version=2))
    b = _xml(tmp_path / "b.xml.gz", _article("1", 5, "new")
             + "<DeleteCitation><PMID>2</PMID><PMID>9</PMID></DeleteCitation>"
             + _article("3", 5, "v1", version=1), gz=True)
    c = _xml(tmp_path / "c.xml", _article("2", 5, "back"))
    out = tmp_path / "out"
    out.mkdir()
    m = build_corpus(_local(a, b, c), _cfg(["unused"]).corpus, out, None)
    docs = {d["id"]: d["text"] for d in _lines(out, "train") + _lines(out, "heldout")}
    assert docs["pmid:1"].startswith("Tnew ")  # update file replaces the baseline record
    assert docs["pmid:3"].startswith("Tv2 ")  # a higher PMID Version is not replaced by a lower one
    assert docs["pmid:2"].startswith("Tback ")  # deleted, then added back by a later file
    assert m["dropped"]["superseded"] == 2 and m["dropped"]["deleted"] == 1
    assert m["deletions"] == {"requested": 2, "applied": 1, "not_found": 1}
    first = [d["id"] for d in _lines(out, "train") + _lines(out, "heldout")]
    assert sorted(first) == ["pmid:1", "pmid:2", "pmid:3"]


def test_dedup_filters_and_shards(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    rows = [{"text": " ".join(f"doc{i} w{j}" for j in range(10))} for i in range(12)]
    rows.append({"text": rows[0]["text"].upper().replace(" ", "  ")})  # same text, other case/spacing
    rows.append({"text": "too short"})
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    cfg = _cfg(["unused"], min_words=5, heldout_fraction=0, shard_documents=4, max_documents=10).corpus
    m = build_corpus(_local(jsonl), cfg, out, None)
    shards = sorted(out.glob("train-*.jsonl"))
    assert [len(p.read_text().splitlines()) for p in shards] == [4, 4, 2]
    assert (out / "heldout-00000.jsonl").read_text() == ""
    assert m["documents"]["total"] == 10 and m["dropped"]["over_max_documents"] == 4
    (tmp_path / "o2").mkdir()
    m = build_corpus(_local(jsonl), _cfg(["unused"], min_words=5).corpus, tmp_path / "o2", None)
    assert (m["dropped"]["duplicate_text"] == 1 and m["dropped"]["too_short"] == 1
            and m["documents"]["total"] == 12)


def test_blurb_exclusion_by_pmid_and_by_text(tmp_path: Path, blurb: BlurbExclusion, mirror: Path) -> None:
    hoc_pmid = (mirror / "blurb/HoC/test.tsv").read_text().splitlines()[1].split("\t")[2].split("_s")[0]
    pqa = json.loads((mirror / "blurb/pubmedqa/ori_pqal.json").read_text())
    test_pmid = next(iter(json.loads((mirror / "blurb/pubmedqa/test_ground_truth.json").read_text())))
    xml = _xml(tmp_path / "x.xml", _article(hoc_pmid, 200) + _article("1", 200))
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps({"text": "Intro. " + " ".join(pqa[test_pmid]["CONTEXTS"]), "id": "q"}) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    m = build_corpus(_local(xml, jsonl), _cfg(["unused"]).corpus, out, blurb)
    assert [d["id"] for d in _lines(out, "train") + _lines(out, "heldout")] == ["pmid:1"]
    assert m["blurb_test"]["by_dataset"]["HoC"] == 1 and m["blurb_test"]["by_dataset"]["pubmedqa"] == 1
    assert m["blurb_test"]["by_method"] == {"id": 1, "text": 1}


def test_failed_run_keeps_the_last_good_output(project: Path, mirror: Path) -> None:
    from conftest import dvc_files
    from pubmedlm.stages import corpus

    good = _xml(project / "good.xml", _article("1", 10))
    corpus.run(_cfg(["good.xml"]))
    assert ((project / "data/corpus/train-00000.jsonl").exists()
            or (project / "data/corpus/heldout-00000.jsonl").exists())
    before = dvc_files(project / "data/corpus"), (project / "metrics/corpus.json").read_bytes()
    data = (mirror / XML_INPUTS[0]).read_bytes()
    (project / "cut.xml.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError,
                       match=r"cut\.xml\.gz: truncated or corrupt gzip stream after \d+ decompressed bytes"):
        corpus.run(_cfg(["good.xml", "cut.xml.gz"]))
    # the failed run changed nothing: the good output and its metrics are as they were
    assert (dvc_files(project / "data/corpus"), (project / "metrics/corpus.json").read_bytes()) == before
    assert [p.name for p in (project / "data").iterdir()] == ["corpus"]  # no half-written temporary folder
    assert good.exists()


def test_skip_bad_records_counts_and_reports(project: Path, mirror: Path) -> None:
    from pubmedlm.stages import corpus

    _xml(project / "bad.xml", _article("1", 10, "a") + _article("2", 10).replace("</ArticleTitle>", "</Oops>")
         + _article("3", 10, "c"))
    data = (mirror / XML_INPUTS[0]).read_bytes()
    (project / "cut.xml.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=r"bad\.xml: malformed XML at line 3, column \d+"):
        corpus.run(_cfg(["bad.xml", "cut.xml.gz"]))
    m = corpus.run(_cfg(["bad.xml", "cut.xml.gz"], skip_bad_records=True)).metrics
    assert m["dropped"]["bad_records"] == 2
    assert m["bad_input"]["bad_records"][0].startswith("bad.xml: line 3: malformed XML")
    (truncated,) = m["bad_input"]["truncated_files"]
    assert truncated.startswith("cut.xml.gz: truncated or corrupt gzip stream")
    assert m["sources"]["bad.xml"] == {"records": 2, "documents": 2}
    assert 0 < m["sources"]["cut.xml.gz"]["records"] < 30


def test_empty_corpus_is_an_error(project: Path) -> None:
    from pubmedlm.stages import corpus

    (project / "empty.txt").write_text("\n\n", encoding="utf-8")
    _xml(project / "none.xml", "")
    with pytest.raises(CorpusError, match=r"corpus: no documents in the inputs "
                                          r"\(0 records read from empty\.txt, none\.xml"):
        corpus.run(_cfg(["empty.txt", "none.xml"]))
    _xml(project / "short.xml", _article("1", 3))
    with pytest.raises(CorpusError, match=r"no documents left after filtering .*too_short 1"):
        corpus.run(_cfg(["short.xml"], min_words=128))
    assert not (project / "data/corpus").exists()


def test_resolve_inputs(project: Path, mirror: Path) -> None:
    pmc = resolve_inputs(["corpus/pmc_oa_xml"], [], project / "cache", project)
    assert len(pmc) == 8 and all(i.label.startswith("corpus/pmc_oa_xml/") for i in pmc)
    (project / "texts/sub").mkdir(parents=True)
    (project / "texts/sub/a.txt").write_text("alpha\n")
    (project / "texts/b").write_text("beta\n")
    (project / "texts/.hidden").write_text("x\n")
    local = resolve_inputs(["texts"], [], project / "cache", project)
    assert [i.label for i in local] == ["texts/b", "texts/sub/a.txt"]
    with pytest.raises(CorpusError, match=r"'nowhere\.xml' is neither declared in a source catalog"):
        resolve_inputs(["nowhere.xml"], [], project / "cache", project)
    (project / "x.pdf").write_text("%PDF")
    with pytest.raises(CorpusError, match=r"x\.pdf: unsupported input type '\.pdf'"):
        resolve_inputs(["x.pdf"], [], project / "cache", project)
