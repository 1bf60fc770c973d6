"""The blurb-data stage on the real mirror (counts against the paper), on temporary mirrors that
hold BC2GM and BioASQ (used unverified), and on crafted bad input (errors name file and line)."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pubmedlm.blurb import normalized, tasks
from pubmedlm.blurb.formats import BlurbFormatError
from pubmedlm.config import Config, load_config
from pubmedlm.infra.sources import SourceError, sha256_file
from pubmedlm.stages import blurb_data

pytestmark = pytest.mark.integration

# Ours, in the paper's units, where they differ from the paper only as documented (docs/BLURB.md,
# data README): BC5-disease dev 4,246 (paper 4,244). EBM PICO runs on a proxy carved from dev.
EXPECTED = {
    "BC5-chem": (5_203, 5_347, 5_385), "BC5-disease": (4_182, 4_246, 4_424),
    "NCBI-disease": (5_134, 787, 960), "JNLPBA": (46_750, 4_551, 8_662), "ChemProt": (18_035, 11_268, 15_745),
    "DDI": (25_296, 2_496, 5_716), "GAD": (4_261, 535, 534), "BIOSSES": (64, 16, 20),
    "HoC": (1_295, 186, 371), "PubMedQA": (450, 50, 500),
}
PICO_DEV_TOKENS = 87_308  # all labelled tokens of the mirror's dev.tsv (paper: 85,321)
BIOASQ_ROWS = {
    "train": ["q1\tIs aspirin an NSAID?\tAspirin is a nonsteroidal anti-inflammatory drug.\tyes",
              "q2\tIs insulin a lipid?\tInsulin is a peptide hormone.\tno"],
    "dev": ["q3\tIs BRCA1 a gene?\tBRCA1 is a human tumor suppressor gene.\tyes"],
    "test": ["q4\tIs the liver an organ?\tThe liver is an organ of vertebrates.\tyes",
             "q5\tIs water a protein?\tWater is a small inorganic molecule.\tno"],
}


def _config(root: Path, **blurb: Any) -> Config:
    params = root / "params.yaml"
    data = {"corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]}, "runtime": {"progress": False},
            "blurb_data": {"pico_proxy_from_dev": True, **blurb},
            "finetune": {"datasets": ["NCBI-disease"]},  # dvc.yaml's tune/finetune `foreach` reads this list
            "tasks": {"files": []}}  # and blurb-data reads tasks.files
    params.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(params)


def _metrics(root: Path) -> dict[str, Any]:
    return json.loads((root / "metrics" / "blurb_data.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Iterator[dict[str, Any]]:
    """One run of the real stage on the real mirror (all 13 requested)."""
    root = tmp_path_factory.mktemp("blurb_full")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBMEDLM_PROJECT_ROOT", str(root))
        mp.setenv("PUBMEDLM_DATA_MIRROR", str(mirror))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.chdir(root)
        cfg = _config(root)
        started = time.perf_counter()
        result = blurb_data.run(cfg, params_file=root / "params.yaml")
        seconds = time.perf_counter() - started
        yield {"root": root, "result": result, "seconds": seconds, "metrics": _metrics(root),
               "out": root / "data" / "blurb_data"}


def test_counts_match_the_paper_except_documented_deviations(full: dict[str, Any]) -> None:
    datasets = full["metrics"]["datasets"]
    for name, counts in EXPECTED.items():
        entry = datasets[name]
        assert entry["status"] == "ok" and entry["verified"] is True, name
        assert tuple(entry["counts"][s] for s in tasks.SPLITS) == counts, name
        paper = tasks.get(name).paper_counts
        for dev in entry["deviations"]:
            assert dev["documented"] and dev["ours"] == entry["counts"][dev["split"]] != paper[dev["split"]]
    [deviation] = datasets["BC5-disease"]["deviations"]
    assert (deviation["split"], deviation["ours"], deviation["paper"]) == ("dev", 4_246, 4_244)
    assert "MTL" in deviation["reason"]
    assert full["metrics"]["matches_paper"] is True and full["metrics"]["undocumented_deviations"] == []
    print(f"blurb-data stage on the real mirror: {full['seconds']:.1f} s")
    assert full["seconds"] < 60


def test_missing_datasets_are_reported_by_name(full: dict[str, Any]) -> None:
    metrics = full["metrics"]
    assert metrics["missing"] == ["BC2GM", "BioASQ"]
    for name, folder in (("BC2GM", "BC2GM"), ("BioASQ", "BioASQ")):
        entry = metrics["datasets"][name]
        assert entry["status"] == "missing" and entry["counts"] == {}
        assert f"blurb/{folder}/train.tsv" in entry["missing_reason"]
        assert "not declared in any source catalog" in entry["missing_reason"]
        assert not (full["out"] / name).exists()
    readme = (full["out"] / "README.md").read_text(encoding="utf-8")
    assert "| BC2GM | missing |" in readme and "| BioASQ | missing |" in readme


def test_converted_splits_and_converter_checks(full: dict[str, Any]) -> None:
    chem, ddi = full["metrics"]["datasets"]["ChemProt"], full["metrics"]["datasets"]["DDI"]
    assert chem["built_from"] == {"train": "converted", "dev": "published", "test": "converted"}
    assert chem["checks"] == {"converter_dev": "identical to the published file (11268 rows)"}
    assert ddi["built_from"] == {"train": "converted", "dev": "published", "test": "published"}
    assert set(ddi["checks"]) == {"converter_dev", "converter_test"}
    assert "nltk/tokenizers/punkt_tab/english/abbrev_types.txt" in chem["sources"]
    rows = normalized.read_jsonl(full["out"] / "ChemProt" / "train.jsonl")
    assert rows[0].keys() == {"id", "text", "label", "entities"} and len(rows) == 18_035
    assert {r["label"] for r in rows} == set(tasks.get("ChemProt").labels)


def test_relation_rows_carry_the_unmasked_sentence_and_mention_spans(full: dict[str, Any]) -> None:
    """Masking each row's unmasked sentence at its spans gives back BLURB's text, on every split."""
    from pubmedlm.blurb.chemprot import mask_pair

    overlap = {"ChemProt": "@CHEM-GENE$", "DDI": "@DRUG-DRUG$"}
    for name in ("ChemProt", "DDI"):
        for split in tasks.SPLITS:
            rows = normalized.read_jsonl(full["out"] / name / f"{split}.jsonl")
            for r in rows:
                (s1, e1, k1), (s2, e2, k2) = r["entities"]["spans"]
                assert s1 <= s2
                masked = mask_pair(r["entities"]["text"], (s1, e1), (s2, e2), (f"@{k1}$", f"@{k2}$"),
                                   overlap[name])
                assert masked == r["text"], (name, split, r["id"])


def test_pico_proxy_is_carved_by_abstract_and_marked(full: dict[str, Any], mirror: Path) -> None:
    entry = full["metrics"]["datasets"]["EBM-PICO"]
    assert entry["status"] == "proxy" and full["metrics"]["proxy"] == ["EBM-PICO"]
    assert entry["comparable"] == "no: proxy, not comparable"
    assert entry["counts"]["train"] + entry["counts"]["dev"] == PICO_DEV_TOKENS
    assert (entry["counts"]["test"] == 16_364
            and entry["checks"] == {"pmid_list_test": "matches BLURB's 191 PMIDs"})
    assert {d["split"] for d in entry["deviations"]} == {"train", "dev"}
    assert all("proxy, not comparable" in d["reason"] for d in entry["deviations"])
    train, dev = (normalized.read_jsonl(full["out"] / "EBM-PICO" / f"{s}.jsonl") for s in ("train", "dev"))
    train_docs, dev_docs = {r["doc_id"] for r in train}, {r["doc_id"] for r in dev}
    assert not train_docs & dev_docs and (len(train_docs), len(dev_docs)) == (768, 192)
    source = normalized.read_split(tasks.get("EBM-PICO"), "dev", [mirror / "blurb/ebmnlp/dev.tsv"])
    assert sorted(r["id"] for r in train + dev) == sorted(r["id"] for r in source)
    meta = json.loads((full["out"] / "EBM-PICO" / "meta.json").read_text(encoding="utf-8"))
    assert meta["status"] == "proxy" and meta["proxy"]["train_abstracts"] == 768
    assert "proxy, not comparable" in (full["out"] / "README.md").read_text(encoding="utf-8")


def test_outputs_follow_the_schema(full: dict[str, Any]) -> None:
    keys = {"ner": ["id", "doc_id", "tokens", "tags"], "pico": ["id", "doc_id", "tokens", "tags"],
            "re": ["id", "text", "label"], "similarity": ["id", "text_a", "text_b", "score"],
            "doc_classification": ["id", "doc_id", "text", "labels"],
            "qa": ["id", "question", "context", "label"]}
    for name in full["metrics"]["prepared"]:
        task = tasks.get(name)
        meta = json.loads((full["out"] / name / "meta.json").read_text(encoding="utf-8"))
        assert meta["task"]["metric"] == task.metric and meta["task"]["max_length"] == task.max_length
        assert all(s["verified"] for s in meta["sources"].values())
        for split in tasks.SPLITS:
            rows = normalized.read_jsonl(full["out"] / name / f"{split}.jsonl")
            expected = keys[task.task_type] + (["entities"] if task.converter else [])
            assert len(rows) == meta["rows"][split] and list(rows[0]) == expected, (name, split)
            assert len({r["id"] for r in rows}) == len(rows), (name, split)
    hoc = normalized.read_jsonl(full["out"] / "HoC" / "test.jsonl")
    assert (hoc[0]["id"].startswith(hoc[0]["doc_id"] + "_s")
            and all(0 <= x <= 9 for r in hoc for x in r["labels"]))
    ddi = normalized.read_jsonl(full["out"] / "DDI" / "dev.jsonl")
    assert ddi[0]["text"].endswith(" ")  # fields kept byte for byte
    assert (full["out"] / "config.yaml").is_file()


def test_exports_for_corpus_and_vocab(full: dict[str, Any], mirror: Path) -> None:
    """exports/: every prepared dataset's test documents, and model inputs of published splits only
    (not ChemProt's converted train/test, not the EBM PICO proxy's carve: its whole dev file)."""
    from pubmedlm.blurb import exports

    out = full["out"]
    docs = exports.read_test_documents(out)
    by = {}
    for d in docs:
        by[d.dataset] = by.get(d.dataset, 0) + 1
    assert by == {"BC5CDR-chem": 4_797, "NCBI-disease": 940, "JNLPBA": 3_856, "ebmnlp": 2 * 191,
                  "chemprot": 800, "DDI": 191, "GAD": 534, "BIOSSES": 20, "HoC": 371,
                  "pubmedqa": 500}  # sentences / abstracts
    inputs = {p.relative_to(out / "exports/model_inputs").as_posix()
              for p in (out / "exports/model_inputs").rglob("*.jsonl")}
    assert {i for i in inputs if i.startswith(("chemprot", "ebmnlp", "DDI"))} == {
        "chemprot/dev.jsonl", "ebmnlp/dev.jsonl", "ebmnlp/test.jsonl", "DDI/dev.jsonl", "DDI/test.jsonl"}
    assert len(inputs) == 29
    # sentences of the published dev.tsv
    assert len(exports.read_model_inputs(out, "ebmnlp", "dev")) == 10_386
    biosses = [row[1:3] for row in (line.split("\t") for line in
               (mirror / "blurb/BIOSSES/test.tsv").read_text(encoding="utf-8").splitlines()[1:])]
    assert exports.read_model_inputs(out, "BIOSSES", "test") == biosses
    mentions = exports.read_ner_mentions(out)
    assert {k: len(v) for k, v in mentions.items()} == {
        "BC5CDR-chem": 5_203, "BC5CDR-disease": 4_182, "NCBI-disease": 5_134, "JNLPBA": 46_750}
    assert "## Exports for the corpus and vocab stages" in (out / "README.md").read_text(encoding="utf-8")


def test_sources_are_logged_to_mlflow(full: dict[str, Any]) -> None:
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{full['root'] / 'mlflow.db'}").get_run(full["result"].run_id)
    assert run.data.tags["source.blurb/GAD/train.tsv.sha256"] == (
        "8c57f5f28a843cd64bcd939c62842cf685552315e7a78069be7d1ceff47bb663")
    assert run.data.tags["blurb_data.status.BC2GM"] == "missing"
    assert run.data.metrics["ChemProt.train"] == 18_035


def test_outputs_are_deterministic(full: dict[str, Any], project: Path) -> None:
    blurb_data.run(_config(project, datasets=["EBM-PICO", "ChemProt", "HoC"]),
                   params_file=project / "params.yaml")
    for name in ("EBM-PICO", "ChemProt", "HoC"):
        for path in sorted((full["out"] / name).iterdir()):
            assert (project / "data/blurb_data" / name / path.name).read_bytes() == path.read_bytes(), path
    metrics = _metrics(project)
    assert metrics["datasets"]["GAD"]["status"] == "excluded"


# ---- temporary mirrors --------------------------------------------------------------------


def _mirror_with(tmp: Path, real: Path, copies: dict[str, str] = (), texts: dict[str, str] = ()) -> Path:
    """A mirror laid out like the real one: `copies` dest -> real path, `texts` dest -> content."""
    root = tmp / "mirror"
    for dest, src in dict(copies).items():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(real / src, root / dest)
    for dest, text in dict(texts).items():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        (root / dest).write_text(text, encoding="utf-8")
    return root


def _bc2gm_bioasq(tmp: Path, real: Path) -> Path:
    copies = {f"blurb/BC2GM/{s}.tsv": f"blurb/NCBI-disease/{s}.tsv" for s in tasks.SPLITS}
    texts = {f"blurb/BioASQ/{s}.tsv": "\n".join(rows) + "\n" for s, rows in BIOASQ_ROWS.items()}
    return _mirror_with(tmp, real, copies, texts)


def test_undeclared_mirror_files_are_prepared_unverified(project: Path, mirror: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    temp = _bc2gm_bioasq(project.parent, mirror)
    monkeypatch.setenv("PUBMEDLM_DATA_MIRROR", str(temp))
    blurb_data.run(_config(project, datasets=["BC2GM", "BioASQ"]), params_file=project / "params.yaml")
    metrics = _metrics(project)
    assert metrics["prepared"] == ["BC2GM", "BioASQ"] and metrics["unverified"] == ["BC2GM", "BioASQ"]
    bc2gm, bioasq = metrics["datasets"]["BC2GM"], metrics["datasets"]["BioASQ"]
    assert bc2gm["verified"] is False and bc2gm["counts"] == {"train": 5_134, "dev": 787, "test": 960}
    assert bc2gm["sources"]["blurb/BC2GM/dev.tsv"] == {"sha256": sha256_file(temp / "blurb/BC2GM/dev.tsv"),
                                                      "verified": False}
    # A stand-in's counts are not the paper's, and nothing in the task table documents why.
    assert metrics["matches_paper"] is False and "BC2GM train" in metrics["undocumented_deviations"]
    assert bioasq["counts"] == {"train": 2, "dev": 1, "test": 2}
    rows = normalized.read_jsonl(project / "data/blurb_data/BioASQ/train.jsonl")
    assert rows[0] == {"id": "q1", "question": "Is aspirin an NSAID?",
                       "context": "Aspirin is a nonsteroidal anti-inflammatory drug.", "label": "yes"}
    assert "unverified" in (project / "data/blurb_data/README.md").read_text(encoding="utf-8")


def test_a_user_catalog_verifies_them(project: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp = _bc2gm_bioasq(project.parent, mirror)
    monkeypatch.setenv("PUBMEDLM_DATA_MIRROR", str(temp))
    catalog = project / "mine.sources.tsv"
    lines = [f"blurb/BC2GM/{s}.tsv\tmirror-only: mine\t{sha256_file(temp / f'blurb/BC2GM/{s}.tsv')}\t"
             for s in tasks.SPLITS]
    catalog.write_text("path\turl\tsha256\tbytes\n" + "\n".join(lines) + "\n", encoding="utf-8")
    blurb_data.run(_config(project, datasets=["BC2GM"], catalogs=[str(catalog)]),
                   params_file=project / "params.yaml")
    assert _metrics(project)["datasets"]["BC2GM"]["verified"] is True
    (temp / "blurb/BC2GM/dev.tsv").write_text("BRCA1\tB\n", encoding="utf-8")
    with pytest.raises(SourceError, match=re.escape("checksum mismatch for blurb/BC2GM/dev.tsv")):
        blurb_data.run(_config(project, datasets=["BC2GM"], catalogs=[str(catalog)]))


def test_pico_without_train_or_proxy_stops_with_what_to_do(project: Path) -> None:
    cfg = _config(project, datasets=["EBM-PICO"], pico_proxy_from_dev=False)
    with pytest.raises(SourceError) as err:
        blurb_data.run(cfg, params_file=project / "params.yaml")
    message = str(err.value)
    assert "EBM-PICO train is missing" in message and "blurb/ebmnlp/train.tsv" in message
    assert "blurb_data.pico_train" in message and "pico_proxy_from_dev" in message
    assert not (project / "data/blurb_data").exists()


def test_pico_accepts_a_user_train_file(project: Path, mirror: Path) -> None:
    # A stand-in train file: the first three abstracts of dev, in BLURB's format.
    text = (mirror / "blurb/ebmnlp/dev.tsv").read_text(encoding="utf-8")
    cut = "-DOCSTART-".join(text.split("-DOCSTART-")[:4])
    user = project / "my_pico_train.tsv"
    user.write_text(cut, encoding="utf-8")
    blurb_data.run(_config(project, datasets=["EBM-PICO"], pico_train=str(user), pico_proxy_from_dev=False),
                   params_file=project / "params.yaml")
    entry = _metrics(project)["datasets"]["EBM-PICO"]
    assert entry["status"] == "ok" and entry["verified"] is False and entry["proxy"] is None
    assert entry["built_from"]["train"] == "user file (blurb_data.pico_train)"
    assert entry["sources"][str(user)]["verified"] is False
    assert entry["checks"]["pmid_list_train"] == "differs: 3 abstracts not in BLURB's list, 3842 missing"
    assert entry["checks"]["pmid_list_dev"] == "matches BLURB's 960 PMIDs"
    train = next(d for d in entry["deviations"] if d["split"] == "train")
    assert not train["documented"] and "user-supplied" in train["reason"]


# ---- bad input: every error names the file and the line -------------------------------------


def _run_bad(project: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch, dest: str, text: str) -> str:
    temp = _bc2gm_bioasq(project.parent, mirror)
    (temp / dest).write_text(text, encoding="utf-8")
    monkeypatch.setenv("PUBMEDLM_DATA_MIRROR", str(temp))
    with pytest.raises(BlurbFormatError) as err:
        blurb_data.run(_config(project, datasets=["BC2GM", "BioASQ"]), params_file=project / "params.yaml")
    assert not (project / "data/blurb_data").exists()
    return str(err.value).replace(str(temp) + "/", "")


def test_token_line_without_a_tag(project: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _run_bad(project, mirror, monkeypatch, "blurb/BC2GM/train.tsv", "BRCA1\tB\nis\n\nok\tO\n")
    assert message.startswith("blurb/BC2GM/train.tsv:2: token line without a tag")


def test_unknown_tag(project: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _run_bad(project, mirror, monkeypatch, "blurb/BC2GM/test.tsv", "BRCA1\tB-GENE\n")
    assert message.startswith("blurb/BC2GM/test.tsv:1: unknown label 'B-GENE'")


def test_wrong_column_count(project: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BIOASQ_ROWS["train"][0] + "\nq9\tIs this short?\tyes\n"
    message = _run_bad(project, mirror, monkeypatch, "blurb/BioASQ/train.tsv", text)
    assert message == "blurb/BioASQ/train.tsv:2: expected 4 tab-separated columns, got 3"


def test_unknown_label(project: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BIOASQ_ROWS["dev"][0].replace("\tyes", "\tmaybe") + "\n"
    message = _run_bad(project, mirror, monkeypatch, "blurb/BioASQ/dev.tsv", text)
    assert message.startswith("blurb/BioASQ/dev.tsv:1: unknown label 'maybe'; expected one of yes, no")


def test_empty_split(project: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _run_bad(project, mirror, monkeypatch, "blurb/BC2GM/dev.tsv", "\n\n")
    assert message.startswith("blurb/BC2GM/dev.tsv:2: empty split 'dev'")


def _pubmedqa_files(tmp: Path, mirror: Path, ids: list[str],
                    listed: list[tuple[str, str]]) -> tuple[Path, Path]:
    data = json.loads((mirror / "blurb/pubmedqa/ori_pqal.json").read_text(encoding="utf-8"))
    json_path, split_path = tmp / "ori_pqal.json", tmp / "pqal_fold0_split.tsv"
    json_path.write_text(json.dumps({i: data[i] for i in ids}, indent=4), encoding="utf-8")
    rows = [f"{pmid}\t{split}\t{data[pmid]['final_decision']}" for pmid, split in listed]
    split_path.write_text("pmid\tsplit\tfinal_decision\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return json_path, split_path


def test_pubmedqa_id_missing_from_the_split_file(tmp_path: Path, mirror: Path) -> None:
    ids = ["21645374", "16418930", "9488747"]
    json_path, split_path = _pubmedqa_files(tmp_path, mirror, ids, [(ids[0], "train"), (ids[2], "test")])
    labels = tasks.get("PubMedQA").labels
    with pytest.raises(BlurbFormatError) as err:
        normalized.read_pubmedqa(json_path, split_path, "train", labels)
    line = json_path.read_text(encoding="utf-8").splitlines().index(f'    "{ids[1]}": {{') + 1
    assert str(err.value).startswith(f"{json_path}:{line}: PubMedQA id {ids[1]} is missing from the "
                                     f"split file {split_path} (1 ids missing)")
    json_path, split_path = _pubmedqa_files(tmp_path, mirror, ids[:2], [(ids[0], "train"), (ids[1], "dev")])
    split_path.write_text(split_path.read_text(encoding="utf-8") + "123\ttest\tyes\n", encoding="utf-8")
    with pytest.raises(BlurbFormatError, match=rf"^{split_path}:4: PubMedQA id 123 is not in {json_path}"):
        normalized.read_pubmedqa(json_path, split_path, "train", labels)


@pytest.mark.parametrize("name, text, expected", [
    ("HoC", "labels\tsentence\tindex\n0_0,1_2,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0\tA sentence .\t1_s0\n",
     ":2: unknown label '1_2'"),
    ("HoC", "labels\tsentence\tindex\n0_0\tA sentence .\t1_s0\t\n",
     ":2: expected 3 tab-separated columns, got 4"),
    ("GAD", "index\tsentence\tlabel\n0\t@GENE$ and @DISEASE$.\t2\n", ":2: unknown label '2'"),
    ("GAD", "idx\tsentence\tlabel\n", ":1: expected the header"),
    ("ChemProt", "1.T1.T2\t@CHEMICAL$ binds @GENE$.\tCPR:10\n", ":1: unknown label 'CPR:10'"),
    ("BIOSSES", "pair_id\tsent1\tsent2\tscore\n1\ta\tb\t5.5\n", ":2: score 5.5 is outside"),
    ("NCBI-disease", "", ":1: empty split 'train'"),
])
def test_reader_errors_name_file_and_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / "train.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BlurbFormatError) as err:
        normalized.read_split(tasks.get(name), "train", [path])
    assert str(err.value).startswith(f"{path}{expected}"), str(err.value)


# ---- under real DVC -------------------------------------------------------------------------


@pytest.mark.dvc
def test_dvc_repro_blurb_data(tmp_path: Path, mirror: Path) -> None:
    import os
    import subprocess
    import sys

    from conftest import REPO

    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "platform", root / "platform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "pipelines/tasks", root / "pipelines/tasks")  # a dep of blurb-data (task files)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, root / name)
    _config(root)  # params.yaml with the tiny profile's PICO proxy
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBMEDLM_PROJECT_ROOT", "MLFLOW_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PUBMEDLM_DATA_MIRROR=str(mirror), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")

    def sh(*args: str) -> str:
        out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout + out.stderr

    dvc = (sys.executable, "-m", "dvc")
    sh("git", "init", "-q")
    sh(*dvc, "init", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "init")
    assert "Running stage 'blurb-data'" in sh(*dvc, "repro", "blurb-data")
    assert _metrics(root)["missing"] == ["BC2GM", "BioASQ"]
    assert "Running stage" not in sh(*dvc, "repro", "blurb-data")
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["blurb_data"]["seed"] = 7
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    assert "Running stage 'blurb-data'" in sh(*dvc, "repro", "blurb-data")
    shown = sh(*dvc, "metrics", "show", "metrics/blurb_data.json")
    assert "datasets.ChemProt.counts.train" in shown and "18035" in shown
