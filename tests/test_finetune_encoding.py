"""Fine-tuning encodings on real BLURB rows (the committed fixtures, tests/fixtures/blurb_data):
tagging schemes against seqeval, first-piece alignment against the tokenizer's word ids, oracle
outputs decoding back to the gold, RE dummy tokens and entity markers, QA truncation, and the
checks that run before any compute. Hermetic: no data mirror."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.v1 import Entities
from seqeval.scheme import IOBES

from conftest import fixture_rows
from pubmedlm.blurb import tasks
from pubmedlm.blurb.metrics import entity_f1
from pubmedlm.config import ConfigError, load_config
from pubmedlm.finetune import tagging
from pubmedlm.finetune.features import IGNORE, CodecOptions, FinetuneError, TaskCodec, collate
from pubmedlm.finetune.heads import build_model, check_model, load_checked_tokenizer
from pubmedlm.text.models import load_tokenizer, minilm_path


def _ner_tags() -> list[list[str]]:
    """NCBI-disease train sentences; the cut keeps some where a mention directly follows another."""
    return [r["tags"] for r in fixture_rows("NCBI-disease", "train")]


def test_bioul_and_bio_round_trip_exactly_and_match_seqeval_iobes() -> None:
    gold = _ner_tags()
    bioul = [tagging.convert(t, "BIOUL") for t in gold]
    assert [tagging.convert(t, "BIO") for t in bioul] == gold
    assert entity_f1(gold, [tagging.convert(t, "BIO") for t in bioul]) == 1.0
    # seqeval's strict IOBES reader (S = our U, E = our L) finds the same mentions in our BIOUL.
    iobes = [[{"U": "S", "L": "E"}.get(t[0], t[0]) + "-X" if t != "O" else "O" for t in s] for s in bioul]
    ents = Entities(iobes, IOBES)
    found = {(e.sent_id, e.start, e.end - 1) for sentence in ents.entities for e in sentence}
    expected = {(i, s, e) for i, tags in enumerate(gold) for _t, s, e in get_entities(tags)}
    assert found == expected
    assert sum(t.count("U") for t in bioul) > 0 and sum(t.count("L") for t in bioul) > 0


def test_io_loses_only_adjacent_mentions() -> None:
    gold = _ner_tags()
    back = [tagging.convert(tagging.convert(t, "IO"), "BIO") for t in gold]
    adjacent = sum(1 for t in gold for a, b in itertools.pairwise(t) if a in ("B", "I") and b == "B")
    changed = sum(1 for g, b in zip(gold, back, strict=True) if g != b)
    assert 0 < changed <= adjacent  # every difference comes from a mention directly after another
    assert all(g == b for g, b in zip(gold, back, strict=True) if not any(
        x in ("B", "I") and y == "B" for x, y in itertools.pairwise(g)))


@pytest.mark.parametrize(("name", "scheme"), [("NCBI-disease", "BIO"), ("NCBI-disease", "BIOUL"),
                                              ("NCBI-disease", "IO"), ("EBM-PICO", "BIO")])
def test_first_pieces_follow_word_ids_and_oracle_logits_decode_to_gold(name: str, scheme: str) -> None:
    task = tasks.get(name)
    rows = fixture_rows(name, "dev")
    codec = TaskCodec(task, load_tokenizer("minilm"), CodecOptions(tagging=scheme))
    enc = codec.encode(rows)
    tok = load_tokenizer("minilm")
    for row, item, first in zip(rows, enc.inputs, enc.first_pieces, strict=True):
        word_ids = tok(row["tokens"], is_split_into_words=True, truncation=True,
                       max_length=task.max_length).word_ids()
        expected = [word_ids.index(w) if w in word_ids else -1 for w in range(len(row["tokens"]))]
        assert first == expected
        labelled = [i for i, label in enumerate(item["label"]) if label != IGNORE]
        assert labelled == [p for p in first if p >= 0]
    # Perfect logits at the first pieces decode back to the file's tags, in the file's scheme.
    outputs = []
    for item in enc.inputs:
        logits = np.zeros((len(item["input_ids"]), codec.num_labels), dtype=np.float32)
        for p, label in enumerate(item["label"]):
            if label != IGNORE:
                logits[p, label] = 1.0
        outputs.append(logits)
    preds = codec.decode(enc, outputs)
    gold = [r["tags"] for r in rows]
    if scheme == "IO" and task.task_type == "ner":
        assert 0.8 < entity_f1(gold, preds) < 1.0  # adjacent mentions merge under IO (the cut holds some)
    else:
        assert preds == gold


def test_relation_dummy_tokens_are_single_special_pieces_and_entity_start_finds_them() -> None:
    task = tasks.get("GAD")
    rows = fixture_rows("GAD", "dev")
    codec = TaskCodec(task, load_tokenizer("minilm"), CodecOptions(re_pooling="entity_start"))
    enc = codec.encode(rows)
    ids = {codec.tokenizer.convert_tokens_to_ids(t) for t in task.input["entity_tokens"]}
    assert len(ids) == 2 and all(i >= 30522 for i in ids)  # new entries, after the BERT vocab
    for row, item in zip(rows, enc.inputs, strict=True):
        pieces = codec.tokenizer.convert_ids_to_tokens(item["input_ids"])
        assert pieces.count("@GENE$") == row["text"].count("@GENE$")
        assert all(item["input_ids"][p] in ids for p in item["entity_pos"])
        assert item["label"] == task.labels.index(row["label"])
    batch = collate(enc.inputs[:8], codec.tokenizer.pad_token_id)
    assert batch["entity_pos"].shape == (8, 2) and batch["labels"].dtype.is_floating_point is False
    with pytest.raises(FinetuneError, match=r"re_entity='markers'.*GAD row"):
        TaskCodec(task, load_tokenizer("minilm"), CodecOptions(re_entity="markers")).encode(rows)


@pytest.fixture(scope="module")
def ddi_rows() -> list[dict]:
    """DDI rows as blurb-data writes them from the raw corpus: masked text plus the unmasked
    sentence and mention spans."""
    rows = [r for split in ("train", "dev", "test") for r in fixture_rows("DDI", split)]
    assert all("entities" in r for r in rows)
    return rows


@pytest.mark.parametrize("pooling", ["cls", "entity_start"])
def test_relation_entity_markers_and_original_text(ddi_rows: list[dict], pooling: str) -> None:
    task = tasks.get("DDI")
    tok = load_tokenizer("minilm")
    markers = TaskCodec(task, load_tokenizer("minilm"), CodecOptions(re_entity="markers", re_pooling=pooling))
    original = TaskCodec(task, load_tokenizer("minilm"),
                         CodecOptions(re_entity="original", re_pooling=pooling))
    m_enc, o_enc = markers.encode(ddi_rows), original.encode(ddi_rows)
    checked = found = 0
    for row, m, o in zip(ddi_rows, m_enc.inputs, o_enc.inputs, strict=True):
        text = row["entities"]["text"]
        (s1, e1, _), (s2, e2, _) = row["entities"]["spans"]
        # original: exactly the unmasked sentence
        assert o["input_ids"] == tok(text, truncation=True, max_length=task.max_length)["input_ids"]
        pieces = markers.tokenizer.convert_ids_to_tokens(m["input_ids"])
        if e1 <= s2 and "[/E2]" in pieces:  # separate mentions, not truncated: each sits between its markers
            inside = pieces[pieces.index("[E1]") + 1:pieces.index("[/E1]")]
            assert inside == tok.tokenize(text[s1:e1]), row["id"]
            inside = pieces[pieces.index("[E2]") + 1:pieces.index("[/E2]")]
            assert inside == tok.tokenize(text[s2:e2]), row["id"]
            checked += 1
        if pooling == "entity_start":
            assert [pieces[p] for p in m["entity_pos"]] == ["[E1]", "[E2]"] or "[/E2]" not in pieces
            offsets = tok(text, return_offsets_mapping=True, truncation=True,
                          max_length=task.max_length)["offset_mapping"]
            for p, (s, e) in zip(o["entity_pos"], ((s1, e1), (s2, e2)), strict=True):
                assert p == 0 or (offsets[p][0] < e and offsets[p][1] > s)
                found += p != 0
    assert checked > 0.75 * len(ddi_rows)
    assert pooling == "cls" or found > 1.5 * len(ddi_rows)  # positions on mentions, not the [CLS] fallback


def test_qa_truncates_the_context_never_the_question() -> None:
    task = tasks.get("PubMedQA")
    rows = fixture_rows("PubMedQA", "test")
    codec = TaskCodec(task, load_tokenizer("minilm"), CodecOptions(max_length=64))
    enc = codec.encode(rows)
    tok = codec.tokenizer
    for row, item in zip(rows, enc.inputs, strict=True):
        assert len(item["input_ids"]) <= 64
        question = tok(row["question"])["input_ids"][1:-1]
        assert item["input_ids"][1:1 + len(question)] == question
    hoc = TaskCodec(tasks.get("HoC"), load_tokenizer("minilm"), CodecOptions())
    rows = fixture_rows("HoC", "dev")
    targets = hoc.encode(rows).inputs
    assert [sorted(int(hoc.labels[j]) for j, v in enumerate(t["label"]) if v) for t in targets] == \
        [sorted(r["labels"]) for r in rows]


def test_bad_models_fail_before_compute(tmp_path: Path) -> None:
    import shutil

    from transformers import AutoModelForSequenceClassification

    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(minilm_path() / f, no_tok / f)
    with pytest.raises(FinetuneError, match="no tokenizer in"):
        load_checked_tokenizer(str(no_tok))
    with pytest.raises(FinetuneError, match="no such folder"):
        load_checked_tokenizer(str(tmp_path / "absent"))
    # A fine-tuned 5-class checkpoint (DDI-sized) cannot start GAD (2 classes).
    five = tmp_path / "ddi-classifier"
    AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=5).save_pretrained(five)
    load_tokenizer("minilm").save_pretrained(five)
    codec = TaskCodec(tasks.get("GAD"), load_checked_tokenizer(str(five)), CodecOptions())
    with pytest.raises(FinetuneError, match="5 labels, GAD needs 2"):
        check_model(str(five), codec)
    ddi = TaskCodec(tasks.get("DDI"), load_checked_tokenizer(str(five)), CodecOptions())
    check_model(str(five), ddi)
    model = build_model(str(five), ddi, dropout=0.1)
    assert model.hf.get_input_embeddings().num_embeddings == len(ddi.tokenizer)


def test_empty_search_spaces_are_config_errors(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"corpus": {"inputs": ["x"]}}), encoding="utf-8")
    for override, message in [("tune.search.batch_size=[]", "tune.search.batch_size"),
                              ("tune.search.learning_rate={low: 1e-4, high: 1e-5, log: true}", "empty range"),
                              ("tune.search.epochs=[5, 2]", "empty epoch range"),
                              ("finetune.datasets=[NCBI]", "unknown BLURB dataset")]:
        with pytest.raises(ConfigError, match=message):
            load_config(params, [override])


def test_unknown_dataset_is_a_clear_cli_error(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"corpus": {"inputs": ["x"]}}), encoding="utf-8")
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    out = subprocess.run([sys.executable, "-m", "pubmedlm.cli", "tune", "--task", "NCBI"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert "unknown BLURB dataset 'NCBI'" in out.stderr and "NCBI-disease" in out.stderr
