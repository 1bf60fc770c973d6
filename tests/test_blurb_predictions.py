"""Scoring prediction files against the blurb-data gold: scores checked against seqeval,
scikit-learn and scipy on the real test sets; bad files give errors naming file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import prepare_blurb
from pubmedlm.blurb import normalized, tasks
from pubmedlm.blurb.predictions import PredictionError, comparison_markdown, score_predictions

pytestmark = pytest.mark.integration

ENV = {**os.environ, "COLUMNS": "200"}
DATASETS = ["NCBI-disease", "EBM-PICO", "DDI", "GAD", "BIOSSES", "HoC", "PubMedQA"]


@pytest.fixture(scope="module")
def gold(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Iterator[Path]:
    """blurb-data output for a few datasets (EBM PICO on the proxy split)."""
    root = tmp_path_factory.mktemp("blurb_gold")
    yield prepare_blurb(root, mirror, {
        "corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]}, "runtime": {"progress": False},
        "blurb_data": {"datasets": DATASETS, "pico_proxy_from_dev": True}})


def _test_rows(gold: Path, name: str) -> list[dict[str, Any]]:
    return normalized.read_jsonl(gold / name / "test.jsonl")


def _write(folder: Path, name: str, rows: list[dict[str, Any]] | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


def _perfect(gold: Path, name: str) -> list[dict[str, Any]]:
    value = {"ner": "tags", "pico": "tags", "re": "label", "qa": "label", "similarity": "score",
             "doc_classification": "labels"}[tasks.get(name).task_type]
    return [{"id": r["id"], "prediction": r[value]} for r in _test_rows(gold, name)]


def test_perfect_predictions_score_100_and_the_blurb_score_is_partial(gold: Path, tmp_path: Path) -> None:
    for name in DATASETS:
        _write(tmp_path, name, list(reversed(_perfect(gold, name))))  # any order
    result = score_predictions(gold, tmp_path)
    assert ({d: e["score"] for d, e in result["datasets"].items()}
            == pytest.approx({d: 100.0 for d in DATASETS}))
    assert result["datasets"]["HoC"]["instances"] == 3_547
    assert result["proxies"] == ["EBM PICO"] and result["datasets"]["EBM-PICO"]["proxy"] is True
    blurb = result["blurb"]
    assert blurb["partial"] and blurb["blurb"] == pytest.approx(100.0)
    assert blurb["missing"] == ["BC5-chem", "BC5-disease", "BC2GM", "JNLPBA", "ChemProt", "BioASQ"]
    assert "proxy EBM PICO" in blurb["label"]
    assert set(result["not_scored"]) == {"BC5-chem", "BC5-disease", "BC2GM", "JNLPBA", "ChemProt", "BioASQ"}
    text = comparison_markdown(result, "oracle")
    assert "| **BLURB (partial)** |" in text and "| EBM PICO | 100.00 (proxy) |" in text
    assert "EBM PICO: proxy, not comparable" in text and "| BC5-chem | – | 89.25 |" in text
    assert result["datasets"]["EBM-PICO"]["note"] == "proxy, not comparable"


def test_ner_and_pico_against_seqeval_and_sklearn(gold: Path, tmp_path: Path) -> None:
    from seqeval.metrics import f1_score as seqeval_f1
    from sklearn.metrics import f1_score

    ner = _test_rows(gold, "NCBI-disease")
    # Drop every mention of every third sentence, and turn the first I of others into B (a split mention).
    pred_tags = []
    for i, row in enumerate(ner):
        tags = ["O"] * len(row["tags"]) if i % 3 == 0 else list(row["tags"])
        if i % 3 == 1 and "I" in tags:
            tags[tags.index("I")] = "B"
        pred_tags.append(tags)
    _write(tmp_path, "NCBI-disease", [{"id": r["id"], "prediction": p}
                                      for r, p in zip(ner, pred_tags, strict=True)])
    pico = _test_rows(gold, "EBM-PICO")
    # Everything PAR, written the LinkBERT way (B-PAR): read as I-PAR.
    _write(tmp_path, "EBM-PICO", [{"id": r["id"], "prediction": ["B-PAR"] * len(r["tags"])} for r in pico])
    result = score_predictions(gold, tmp_path)
    expected_ner = 100 * seqeval_f1([r["tags"] for r in ner], pred_tags)
    assert result["datasets"]["NCBI-disease"]["score"] == pytest.approx(expected_ner)
    flat_gold = [t for r in pico for t in r["tags"]]
    expected_pico = 100 * f1_score(flat_gold, ["I-PAR"] * len(flat_gold), labels=["I-PAR", "I-INT", "I-OUT"],
                                   average="macro", zero_division=0)
    assert result["datasets"]["EBM-PICO"]["score"] == pytest.approx(expected_pico)


def test_relation_similarity_hoc_and_qa_against_references(gold: Path, tmp_path: Path) -> None:
    from scipy.stats import pearsonr
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    ddi = _test_rows(gold, "DDI")
    ddi_pred = [r["label"] if i % 4 else "DDI-effect" for i, r in enumerate(ddi)]
    _write(tmp_path, "DDI", [{"id": r["id"], "prediction": p} for r, p in zip(ddi, ddi_pred, strict=True)])
    gad = _test_rows(gold, "GAD")
    _write(tmp_path, "GAD", [{"id": r["id"], "prediction": "1"} for r in gad])
    bio = _test_rows(gold, "BIOSSES")
    bio_pred = [r["score"] + (0.7 if i % 2 else -0.4) * (i % 3) for i, r in enumerate(bio)]
    _write(tmp_path, "BIOSSES", [{"id": r["id"], "prediction": p}
                                 for r, p in zip(bio, bio_pred, strict=True)])
    qa = _test_rows(gold, "PubMedQA")
    _write(tmp_path, "PubMedQA", [{"id": r["id"], "prediction": "yes"} for r in qa])
    hoc = _test_rows(gold, "HoC")
    # Per abstract, the gold union minus hallmark 0, plus hallmark 9 everywhere.
    docs: dict[str, set[int]] = {}
    for r in hoc:
        docs.setdefault(r["doc_id"], set()).update(r["labels"])
    hoc_pred = {d: sorted((labels - {0}) | {9}) for d, labels in docs.items()}
    _write(tmp_path, "HoC", [{"id": d, "prediction": p} for d, p in hoc_pred.items()])
    result = {d: e["score"] for d, e in score_predictions(gold, tmp_path)["datasets"].items()}

    positives = ["DDI-mechanism", "DDI-effect", "DDI-advise", "DDI-int"]
    assert result["DDI"] == pytest.approx(100 * f1_score([r["label"] for r in ddi], ddi_pred,
                                                         labels=positives, average="micro"))
    assert result["GAD"] == pytest.approx(100 * f1_score([r["label"] for r in gad], ["1"] * len(gad),
                                                         pos_label="1"))
    assert result["BIOSSES"] == pytest.approx(100 * pearsonr([r["score"] for r in bio], bio_pred)[0])
    assert result["PubMedQA"] == pytest.approx(100 * sum(r["label"] == "yes" for r in qa) / 500)
    binarize = MultiLabelBinarizer(classes=list(range(10)))
    order = list(docs)
    expected_hoc = f1_score(binarize.fit_transform([docs[d] for d in order]),
                            binarize.transform([hoc_pred[d] for d in order]), average="micro")
    assert result["HoC"] == pytest.approx(100 * expected_hoc)
    # The same predictions written per sentence (each sentence gets its abstract's set) score the same.
    _write(tmp_path, "HoC", [{"id": r["id"], "prediction": hoc_pred[r["doc_id"]]} for r in hoc])
    assert score_predictions(gold, tmp_path)["datasets"]["HoC"]["score"] == pytest.approx(100 * expected_hoc)


def _error(gold: Path, folder: Path, name: str, text: str) -> str:
    path = _write(folder, name, text)
    with pytest.raises(PredictionError) as err:
        score_predictions(gold, folder)
    return str(err.value).replace(str(path), "FILE")


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_bad_prediction_files_name_file_and_line(gold: Path, tmp_path: Path) -> None:
    gad = _perfect(gold, "GAD")
    assert _error(gold, tmp_path / "a", "GAD", _lines(gad[:-1])).startswith(
        f"FILE: 1 of {len(gad)} gold ids have no prediction, e.g. {gad[-1]['id']}")
    assert _error(gold, tmp_path / "b", "GAD", _lines([*gad[:2], {"id": "nope", "prediction": "1"}])) == (
        "FILE:3: id 'nope' is not in the gold split (extra id)")
    bad_label = [*gad[:1], {"id": gad[1]["id"], "prediction": "yes"}]
    assert _error(gold, tmp_path / "c", "GAD", _lines(bad_label)).startswith(
        "FILE:2: unknown label 'yes'; expected one of 0, 1")
    assert _error(gold, tmp_path / "d", "GAD", _lines([gad[0], gad[1], gad[0]])) == (
        f"FILE:3: id '{gad[0]['id']}' predicted twice (first on line 1)")
    assert _error(gold, tmp_path / "e", "GAD", _lines(gad[:1]) + "{not json\n").startswith(
        "FILE:2: not valid JSON")
    assert _error(gold, tmp_path / "f", "GAD", '{"id": "0"}\n') == (
        "FILE:1: expected an object with 'id' and 'prediction'")
    ner = _perfect(gold, "NCBI-disease")
    ner[1]["prediction"] = ner[1]["prediction"][:-1]
    assert _error(gold, tmp_path / "g", "NCBI-disease", _lines(ner)).startswith(
        f"FILE:2: {len(ner[1]['prediction'])} tags for {len(ner[1]['prediction']) + 1} tokens of test-1")
    ner = _perfect(gold, "NCBI-disease")
    ner[0]["prediction"] = ["B-Disease", *ner[0]["prediction"][1:]]
    assert _error(gold, tmp_path / "h", "NCBI-disease", _lines(ner)).startswith(
        "FILE:1: unknown label 'B-Disease'")
    bio = _perfect(gold, "BIOSSES")
    bio[3]["prediction"] = "high"
    assert _error(gold, tmp_path / "i", "BIOSSES", _lines(bio)) == (
        "FILE:4: prediction 'high' is not a finite number")
    hoc = _perfect(gold, "HoC")
    hoc[0]["prediction"] = [10]
    assert _error(gold, tmp_path / "j", "HoC", _lines(hoc)).startswith("FILE:1: unknown label 10")


def test_unknown_files_and_datasets_without_gold(gold: Path, tmp_path: Path) -> None:
    message = _error(gold, tmp_path / "a", "SQuAD", "")
    assert message.startswith("FILE: not a BLURB dataset name; expected <id>.jsonl")
    message = _error(gold, tmp_path / "b", "BC2GM", _lines([{"id": "test-0", "prediction": ["O"]}]))
    assert message.startswith(f"no prepared gold for BC2GM in {gold}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PredictionError, match="no prediction files"):
        score_predictions(gold, empty)


def test_evaluate_command(gold: Path, tmp_path: Path) -> None:
    preds = tmp_path / "mysystem"
    for name in ("GAD", "PubMedQA", "EBM-PICO"):
        _write(preds, name, _perfect(gold, name))
    out = tmp_path / "scores.json"
    cmd = [sys.executable, "-m", "pubmedlm.cli", "evaluate", "--predictions", str(preds), "--gold", str(gold),
           "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    assert ("PubMedBERT" in done.stdout and "BLURB (partial" in done.stdout
            and "proxy, not comparable" in done.stdout)
    scores = json.loads(out.read_text(encoding="utf-8"))
    assert scores["name"] == "mysystem" and scores["results"] == {
        "EBM PICO": 100.0, "GAD": 100.0, "PubMedQA": 100.0}
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| GAD | 100.00 | 80.41 |" in markdown and "BioLinkBERT-large" in markdown
    _write(preds, "GAD", '{"id": "0", "prediction": "2"}\n')
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert done.returncode == 2 and f"{preds / 'GAD.jsonl'}:1: unknown label '2'" in done.stderr
