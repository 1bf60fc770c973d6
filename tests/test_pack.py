"""Packing: BERT's NSP instance layout and the no-NSP stream layout, on real text and a real vocab."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, ohsumed_docs
from pubmedlm.config import load_config
from pubmedlm.text.models import load_tokenizer, resolve_model
from pubmedlm.train.packing import PackedSet, SpecialIds, StreamPacker, nsp_instances, nsp_row

SPECIAL = SpecialIds(cls=101, sep=102, pad=0)


def test_stream_packer_keeps_every_token_in_order() -> None:
    docs = [list(range(1000, 1000 + n)) for n in (5, 17, 3, 40)]
    packer = StreamPacker(16, SPECIAL)
    rows = [r for d in docs for r in packer.feed(d)] + list(packer.flush())
    assert all(r[0] == SPECIAL.cls and r[-1] == SPECIAL.sep and len(r) <= 16 for r in rows)
    body = [t for r in rows for t in r[1:-1]]
    expected = [t for i, d in enumerate(docs) for t in ([SPECIAL.sep] if i else []) + d]
    assert body == expected
    assert all(len(r) == 16 for r in rows[:-1]), "only the last row may be short"


def test_nsp_instances_follow_bert_layout() -> None:
    rng = random.Random(0)
    block = [[list(range(d * 1000 + s * 10, d * 1000 + s * 10 + 7)) for s in range(6)] for d in range(8)]
    labels = []
    for (a, b), label in nsp_instances(block, 32, 0.0, rng):
        ids, types = nsp_row(a, b, SPECIAL)
        assert len(ids) <= 32 and ids[0] == SPECIAL.cls and ids.count(SPECIAL.sep) == 2
        assert types == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        same_doc = {t // 1000 for t in a} == {t // 1000 for t in b}
        assert same_doc == (label == 0), "label 0 = B continues A's document; 1 = B from another"
        if label == 0:
            assert max(a) < min(b), "a true next segment follows A"
        labels.append(label)
    assert 0.3 < sum(labels) / len(labels) < 0.7


@pytest.mark.integration
def test_pack_stage_on_real_text(project: Path, mirror: Path) -> None:
    from pubmedlm.stages import pack

    docs = ohsumed_docs(mirror, 300)
    corpus = project / "data" / "corpus"
    corpus.mkdir(parents=True)
    for split, chunk in (("train", docs[:260]), ("heldout", docs[260:])):
        with open(corpus / f"{split}-00000.jsonl", "w") as f:
            for i, text in enumerate(chunk):
                f.write(json.dumps({"id": f"{split}{i}", "source": "t", "text": text}) + "\n")
    overrides = ["pack.tokenizer=minilm", "pack.seq_lengths=[64, 128]", "runtime.progress=false"]
    for nsp in (True, False):
        cfg = load_config(REPO / "params.yaml", [*overrides, f"pack.nsp={str(nsp).lower()}"])
        result = pack.run(cfg, params_file=REPO / "params.yaml")
        for length in (64, 128):
            s = PackedSet(project / "data/pack" / f"len{length}" / "train")
            assert s.input_ids.dtype == np.uint16 and s.input_ids.shape[1] == length
            assert (s.input_ids[:, 0] == 101).all()
            assert (s.token_type_ids is not None) == nsp
            assert result.metrics["train"][f"len{length}"]["sequences"] == len(s)
    # no-NSP rows hold the documents' tokens in order: check against direct tokenization
    tok = load_tokenizer(Path(resolve_model("minilm")))
    first = tok(docs[0], add_special_tokens=False)["input_ids"]
    row = PackedSet(project / "data/pack/len128/train").input_ids[0]
    assert list(row[1 : 1 + min(126, len(first))]) == first[:126]
    assert json.loads((project / "metrics/pack.json").read_text())["heldout"]["len64"]["sequences"] > 0
