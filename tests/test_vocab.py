"""The vocab stage: WordPiece training (loadable, deterministic), fragmentation measures checked
against the reference tokenizer's own `tokenize`, the in-domain claim on real BLURB NER mentions,
and the stage end to end (outputs, metrics, report, MLflow run).

Corpora are built in tmp from the mirror's OHSUMED sample (7,400 MEDLINE abstracts) in the corpus
stage's shard format, so these tests do not depend on the corpus stage; the BLURB mentions and
inputs come from a real blurb-data run on the mirror's NER sets and BIOSSES (its exports).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from conftest import prepare_blurb
from pubmedlm.blurb import exports
from pubmedlm.config import ConfigError, VocabConfig, load_config
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.text.models import load_tokenizer
from pubmedlm.vocab import fragmentation as frag
from pubmedlm.vocab.train import (
    bert_normalizer,
    choose_alphabet,
    count_characters,
    save_tokenizer,
    train_vocab,
)

OHSUMED = "corpus/pubmed_abstracts/ohsumed_single_23.tar.gz"


def write_corpus(mirror: Path, out: Path, max_docs: int | None = None, heldout_percent: int = 5) -> Path:
    """OHSUMED documents (title line + sentence lines) as corpus-stage shards: train-/heldout-*.jsonl,
    held out by a hash of the id, 2,000 documents per shard."""
    docs: dict[str, list[dict]] = {"train": [], "heldout": []}
    with tarfile.open(mirror / OHSUMED) as tar:
        for member in tar:
            if not member.isfile():
                continue
            lines = tar.extractfile(member).read().decode("utf-8").splitlines()
            doc = {"id": member.name, "source": "ohsumed",
                   "text": "\n".join(x.strip() for x in lines if x.strip())}
            bucket = int(hashlib.sha256(member.name.encode()).hexdigest(), 16) % 100
            docs["heldout" if bucket < heldout_percent else "train"].append(doc)
            if max_docs and sum(map(len, docs.values())) >= max_docs:
                break
    out.mkdir(parents=True, exist_ok=True)
    for split, items in docs.items():
        for i in range(0, len(items), 2000):
            with open(out / f"{split}-{i // 2000:05d}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(d) + "\n" for d in items[i:i + 2000])
    return out


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Path:
    return write_corpus(mirror, tmp_path_factory.mktemp("small") / "corpus", max_docs=1200)


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    tok, _ = train_vocab(small_corpus, VocabConfig(vocab_size=2000))
    out = tmp_path_factory.mktemp("small_vocab")
    save_tokenizer(tok, out)
    return out


@pytest.fixture(scope="module")
def blurb_dir(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Path:
    """data/blurb_data of a blurb-data run on the mirror's NER sets and BIOSSES."""
    params = {"corpus": {"inputs": [OHSUMED]}, "runtime": {"progress": False},
              "blurb_data": {"datasets": ["BC5-chem", "BC5-disease", "NCBI-disease", "JNLPBA", "BIOSSES"]},
              "finetune": {"datasets": ["NCBI-disease"]}}
    return prepare_blurb(tmp_path_factory.mktemp("blurb"), mirror, params)


@pytest.fixture(scope="module")
def reference():
    return load_tokenizer("minilm")


def test_trained_vocab_loads_with_autotokenizer_as_bert(small_vocab: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(small_vocab)
    assert tok.is_fast and type(tok).__name__ == "BertTokenizer"
    assert len(tok) == 2000 and tok.model_max_length == 512
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id,
            tok.mask_token_id] == [0, 1, 2, 3, 4]
    lines = (small_vocab / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    enc = tok("Patients with HYPERTENSION", "were [MASK] Café")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    assert "[MASK]" in tokens and "hypertension" in tok.decode(enc["input_ids"])  # uncased
    assert "cafe" in tok.decode(enc["input_ids"])  # accents stripped, as BERT uncased
    assert enc["token_type_ids"][-1] == 1


def test_training_is_deterministic_across_runs_and_thread_counts(small_corpus: Path, tmp_path: Path) -> None:
    # As released, tokenizers' WordPiece trainer differs run to run (huggingface/tokenizers#1794).
    cfg = VocabConfig(vocab_size=2000)
    outs = []
    for i in range(2):
        tok, _ = train_vocab(small_corpus, cfg)
        save_tokenizer(tok, tmp_path / str(i))
        outs.append({f: (tmp_path / str(i) / f).read_bytes() for f in ("vocab.txt", "tokenizer.json")})
    assert outs[0] == outs[1]
    code = (
        "import sys; from pathlib import Path; from pubmedlm.config import VocabConfig; "
        "from pubmedlm.vocab.train import train_vocab, save_tokenizer; "
        "t, _ = train_vocab(Path(sys.argv[1]), VocabConfig(vocab_size=2000)); "
        "save_tokenizer(t, Path(sys.argv[2]))"
    )
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, str(small_corpus), str(tmp_path / "one")], env=env,
                   check=True)
    assert (tmp_path / "one" / "vocab.txt").read_bytes() == outs[0]["vocab.txt"]


def test_alphabet_counts_normalized_characters_and_breaks_ties_by_code_point() -> None:
    texts = ["Café ÉTUDE\t5-FU", "naïve  x\ny"]
    expected = Counter("".join(bert_normalizer(True).normalize_str(t) for t in texts))
    del expected[" "]
    assert count_characters(texts, lowercase=True) == expected
    assert choose_alphabet(Counter({"b": 2, "a": 2, "c": 5}), 2) == ["a", "c"]


def test_empty_corpus_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="pubmedlm corpus"):
        train_vocab(tmp_path, VocabConfig())


def test_unloadable_reference_is_a_config_error(tmp_path: Path) -> None:
    from pubmedlm.stages.vocab import load_reference

    with pytest.raises(ConfigError, match=r"vocab\.reference_tokenizer"):
        load_reference(str(tmp_path / "no-such-tokenizer"))


def test_fragmentation_agrees_with_the_reference_tokenize(reference) -> None:
    # Published uncased BERT vocab: naloxone = na ##lo ##xon ##e, hypertension = hyper ##tension.
    assert [len(reference.tokenize(w)) for w in ("naloxone", "hypertension", "the")] == [4, 2, 1]
    texts = ["Naloxone", "hypertension the", "5-Fluorouracil-induced cardiomyopathy (rare)."]
    words = [w for t in texts for w, _ in reference.backend_tokenizer.pre_tokenizer.pre_tokenize_str(
        reference.backend_tokenizer.normalizer.normalize_str(t))]
    pieces = [len(reference.tokenize(w)) for w in words]
    got = frag.fragmentation(reference, texts).summary()
    # 5 - fluorouracil - induced cardiomyopathy ( rare ) . : punctuation is split off
    assert len(words) == 3 + 10 and got["words"] == len(words) and got["texts"] == 3
    assert got["pieces"] == sum(pieces)
    assert got["pieces_per_word"] == round(sum(pieces) / len(words), 4)
    assert got["share_split"] == round(sum(p > 1 for p in pieces) / len(words), 4)


def test_input_lengths_count_specials_pairs_and_never_truncate(reference) -> None:
    long = " ".join(["thrombocytopenia"] * 100)
    insts = [[long], ["Is it safe?", "Naloxone was given."]]
    expected = [len(reference(long, truncation=False)["input_ids"]),
                len(reference("Is it safe?", "Naloxone was given.")["input_ids"])]
    assert frag.input_lengths(reference, insts) == expected
    assert expected[0] == 100 * 6 + 2  # th ##rom ##bo ##cy ##top ##enia, beyond MiniLM's 128 setting


def test_mentions_by_dataset_and_pooled(reference) -> None:
    mentions = {"NCBI-disease": ["Familial breast cancer", "lymphoma", "hypertension"], "X": ["naloxone"]}
    out = frag.compare_mentions(reference, reference, mentions)
    assert list(out["by_dataset"]) == ["NCBI-disease", "X"] and out["mentions"] == 4
    words = ["familial", "breast", "cancer", "lymphoma", "hypertension", "naloxone"]
    assert (out["ours"]["words"] == 6
            and out["ours"]["pieces"] == sum(len(reference.tokenize(w)) for w in words))
    assert (out["by_dataset"]["NCBI-disease"]["mentions"] == 3
            and out["by_dataset"]["X"]["ours"]["pieces"] == 4)
    assert out["by_dataset"]["NCBI-disease"]["reference"] == frag.compare_mentions(
        reference, reference, {"NCBI-disease": mentions["NCBI-disease"]})["reference"]


def test_input_lengths_read_the_exported_published_splits(blurb_dir: Path, mirror: Path, reference) -> None:
    out = frag.compare_input_lengths(reference, reference, blurb_dir, ["BIOSSES", "chemprot"],
                                     ("train", "test"))
    assert list(out) == ["BIOSSES"] and list(out["BIOSSES"]) == ["train", "test"]  # chemprot not exported
    rows = [line.split("\t") for line in (mirror / "blurb/BIOSSES/test.tsv").read_text().splitlines()[1:]]
    lengths = [len(reference(a, b)["input_ids"]) for _id, a, b, _score in rows]
    assert out["BIOSSES"]["test"] == {"instances": 20, "ours": round(sum(lengths) / 20, 2),
                                      "reference": round(sum(lengths) / 20, 2), "ours_max": max(lengths),
                                      "reference_max": max(lengths)}


def test_in_domain_vocab_fragments_blurb_ner_mentions_less_than_bert(
    tmp_path_factory: pytest.TempPathFactory, mirror: Path, reference, blurb_dir: Path
) -> None:
    """The issue's definition of done, on all 7,400 OHSUMED abstracts and the mirror's NER sets."""
    corpus = write_corpus(mirror, tmp_path_factory.mktemp("ohsumed") / "corpus")
    tok, facts = train_vocab(corpus, VocabConfig())  # the params default: 30,522
    out = tmp_path_factory.mktemp("ohsumed_vocab")
    save_tokenizer(tok, out)
    ours = load_tokenizer(out)
    assert facts["vocab_size"] == 30522 and facts["train_documents"] > 7000
    mentions = frag.compare_mentions(ours, reference, exports.read_ner_mentions(blurb_dir))
    assert set(mentions["by_dataset"]) >= {"BC5CDR-chem", "BC5CDR-disease", "NCBI-disease", "JNLPBA"}
    assert mentions["ours"]["pieces_per_word"] < mentions["reference"]["pieces_per_word"]
    for name, d in mentions["by_dataset"].items():
        assert d["ours"]["pieces_per_word"] < d["reference"]["pieces_per_word"], name
    heldout = [json.loads(x)["text"] for p in sorted(corpus.glob("heldout-*.jsonl")) for x in p.open()]
    h = frag.compare_heldout(ours, reference, heldout)
    assert h["ours"]["pieces_per_word"] < h["reference"]["pieces_per_word"]


def test_vocab_stage_end_to_end(project: Path, small_corpus: Path, mirror: Path) -> None:
    import shutil

    import mlflow
    from transformers import AutoTokenizer

    from pubmedlm.stages import vocab as stage

    shutil.copytree(small_corpus, project / "data" / "corpus")
    prepare_blurb(project, mirror, {"corpus": {"inputs": [OHSUMED]}, "runtime": {"progress": False},
                                    "blurb_data": {"datasets": ["NCBI-disease", "BIOSSES"]},
                                    "finetune": {"datasets": ["NCBI-disease"]}})  # two sets: a fast stage
    params = project / "params.yaml"  # only the sections this stage needs: independent of the repo's profile
    params.write_text("corpus:\n  inputs: [corpus/pubmed_abstracts/ohsumed_single_23.tar.gz]\n"
                      "vocab:\n  vocab_size: 3000\nruntime:\n  progress: false\n", encoding="utf-8")
    result = stage.run(load_config(params), params_file=params)

    tok = AutoTokenizer.from_pretrained(project / "data" / "vocab")
    assert len(tok) == 3000
    assert "vocab_size: 3000" in (project / "data" / "vocab" / "config.yaml").read_text()
    m = json.loads((project / "metrics" / "vocab.json").read_text())
    assert m["vocab"]["vocab_size"] == 3000 and m["reference"] == {"name": "minilm", "vocab_size": 30522}
    assert list(m["ner_mentions"]["by_dataset"]) == ["NCBI-disease"]
    assert set(m["input_length"]) == {"NCBI-disease", "BIOSSES"}
    assert set(m["input_length"]["BIOSSES"]) == {"train", "dev", "test"}
    assert m["heldout"]["documents"] > 0
    assert result.metrics["ner_mentions.ours.pieces_per_word"] == m["ner_mentions"]["ours"]["pieces_per_word"]

    report = (project / "reports" / "vocab" / "vocab.md").read_text()
    for side in ("ours", "reference"):
        assert f"{m['ner_mentions'][side]['pieces_per_word']:.3f}" in report
    assert "| naloxone |" in report and "BC2GM" in report  # example words; the missing set is named
    assert (project / "reports" / "vocab" / "fragmentation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "vocab"
    assert (run.data.metrics["ner_mentions.ours.pieces_per_word"]
            == m["ner_mentions"]["ours"]["pieces_per_word"])
    assert "train_seconds" in run.data.metrics and run.data.params["vocab.vocab_size"] == "3000"
    assert "dvc.data/corpus" in run.data.tags and "dvc.data/blurb_data" in run.data.tags
    artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=result.run_id,
                                                                 artifact_path="report")}
    assert {"report/vocab.md", "report/fragmentation.png"} <= artifacts
