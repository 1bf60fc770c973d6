"""Users' own tasks (`pubmedlm.usertasks`): the task file, the readers, typed NER metrics and counts.

The typed NER collection is cut from the mirror's BLURB BC5CDR files: BC5CDR-chem and
BC5CDR-disease tag the same sentences, so merging their B/I tags gives one file typed `Chemical` /
`Disease`, written in the MTL-Bioinformatics-2016 layout (train.tsv, devel.tsv, test.tsv). What
the reader must return, the mention counts and the F1 scores are computed here independently (from
the source files' own lines, and by seqeval called directly); the bad-input cases are hermetic.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

from pubmedlm.blurb import metrics
from pubmedlm.blurb.tasks import all_tasks
from pubmedlm.config import ConfigError, load_config
from pubmedlm.finetune import tagging
from pubmedlm.usertasks.prepare import prepare
from pubmedlm.usertasks.readers import to_iob2
from pubmedlm.usertasks.schema import TaskFileError, load_task_files, read_task_file

REPO = Path(__file__).resolve().parents[1]
SENTENCES = 150  # per split
MTL = {"train": "train", "dev": "devel", "test": "test"}


def _blurb_sentences(path: Path, n: int) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = [[]]
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line:
            if out[-1]:
                if len(out) == n:
                    break
                out.append([])
            continue
        token, tag = line.split("\t")
        out[-1].append((token, tag))
    return out


def _spans(sentence: list[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of typed IOB2 tags, read here without seqeval."""
    spans, current = [], None
    for i, tag in enumerate([*sentence, "O"]):
        if current and not (tag.startswith("I-") and tag[2:] == current[0]):
            spans.append(tuple(current))
            current = None
        if tag.startswith("B-"):
            current = [tag[2:], i, i]
        elif current:
            current[2] = i
    return spans


def _encode(spans: list[tuple[str, int, int]], length: int, scheme: str) -> list[str]:
    """The same mentions in IOB1 (B only between two mentions of one type) or BIOES."""
    tags = ["O"] * length
    for kind, start, end in spans:
        for i in range(start, end + 1):
            if scheme == "BIOES":
                prefix = "S" if start == end else "B" if i == start else "E" if i == end else "I"
            else:
                adjacent = i == start and start > 0 and any(e == start - 1 and k == kind for k, _, e in spans)
                prefix = "B" if adjacent else "I"
            tags[i] = f"{prefix}-{kind}"
    return tags


def cut_typed_cdr(mirror: Path, folder: Path, sentences: int = SENTENCES) -> dict:
    """The typed collection: `sentences` per split written to `folder` (MTL layout: train.tsv,
    devel.tsv, test.tsv); returns its folder, each split's expected (tokens, typed IOB2 tags) and
    the B lines of the source files in the cut (the independent mention count)."""
    folder.mkdir(parents=True)
    expected, b_lines = {}, {}
    for split, name in MTL.items():
        chem = _blurb_sentences(mirror / "blurb" / "BC5CDR-chem" / f"{split}.tsv", sentences)
        disease = _blurb_sentences(mirror / "blurb" / "BC5CDR-disease" / f"{split}.tsv", sentences)
        rows, lines = [], []
        for c, d in zip(chem, disease, strict=True):
            assert [t for t, _ in c] == [t for t, _ in d]
            tags = [f"{ct}-Chemical" if ct != "O" else f"{dt}-Disease" if dt != "O" else "O"
                    for (_, ct), (_, dt) in zip(c, d, strict=True)]
            assert not any(ct != "O" != dt for (_, ct), (_, dt) in zip(c, d, strict=True))
            rows.append(([t for t, _ in c], tags))
            lines += [f"{t}\t{g}\n" for t, g in zip(rows[-1][0], tags, strict=True)] + ["\n"]
        (folder / f"{name}.tsv").write_text("".join(lines), encoding="utf-8")
        expected[split] = rows
        b_lines[split] = {"Chemical": sum(tag == "B" for s in chem for _, tag in s),
                          "Disease": sum(tag == "B" for s in disease for _, tag in s)}
    return {"folder": folder, "expected": expected, "b_lines": b_lines}


@pytest.fixture(scope="module")
def cdr(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The typed collection of `cut_typed_cdr`, SENTENCES per split."""
    return cut_typed_cdr(mirror, tmp_path_factory.mktemp("collection") / "BC5CDR-IOB")


def _task_file(path: Path, *tasks: dict) -> Path:
    path.write_text(yaml.safe_dump({"tasks": list(tasks)}, sort_keys=False), encoding="utf-8")
    return path


def _ner(folder: Path, **extra) -> dict:
    return {"id": "CDR-typed", "task_type": "ner", "format": "conll",
            "files": {s: str(folder / f"{name}.tsv") for s, name in MTL.items()},
            "tag_column": 1, "metric": "typed_entity_f1", **extra}


# -- the typed NER collection (mirror) --------------------------------------------------------------
def test_conll_reader_gives_the_sentences_and_typed_tags(cdr: dict, tmp_path: Path) -> None:
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", _ner(cdr["folder"], labels="infer")))
    assert spec.files["dev"].path.endswith("devel.tsv")
    prepared = prepare(spec)
    for split, rows in cdr["expected"].items():
        got = prepared.rows[split]
        assert [(r["tokens"], r["tags"]) for r in got] == rows
        assert [r["id"] for r in got] == [f"{split}-{i}" for i in range(SENTENCES)]
    task = prepared.task
    assert task.labels == ("B-Chemical", "I-Chemical", "B-Disease", "I-Disease", "O")
    assert task.input == {"layout": "tokens", "fields": ["tokens"], "tags": "BIO"}
    assert (task.head, task.metric, task.unit) == ("token_classification", "typed_entity_f1", "mentions")
    assert tagging.mention_types(task.labels) == ["Chemical", "Disease"]  # what fine-tuning learns
    assert metrics.METRICS[task.metric]([r["tags"] for r in prepared.rows["dev"]],
                                        [tags for _, tags in cdr["expected"]["dev"]]) == 1.0


def test_mention_counts_match_the_source_files(cdr: dict, tmp_path: Path) -> None:
    task = _ner(cdr["folder"], labels=["Chemical", "Disease"])
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", task))
    prepared = prepare(spec)
    assert prepared.mentions() == cdr["b_lines"]
    assert prepared.counts() == {s: sum(c.values()) for s, c in cdr["b_lines"].items()}
    assert all(n > 50 for c in cdr["b_lines"].values() for n in c.values())  # a cut with mentions of both
    out = prepared.write(tmp_path / "prepared" / spec.id)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["mentions"] == cdr["b_lines"] and meta["task"]["labels"] == list(prepared.task.labels)
    assert meta["sources"]["dev"]["path"].endswith("devel.tsv")
    first = json.loads((out / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert (first["tokens"], first["tags"]) == cdr["expected"]["train"][0]


@pytest.mark.parametrize("scheme", ["IOB1", "BIOES"])
def test_other_schemes_and_extra_columns_read_into_the_same_iob2(cdr: dict, tmp_path: Path,
                                                                 scheme: str) -> None:
    files = {}
    for split, rows in cdr["expected"].items():
        lines = []
        for tokens, tags in rows:
            written = _encode(_spans(tags), len(tags), scheme)
            lines += [f"{t} {i} {g}\n" for i, (t, g) in enumerate(zip(tokens, written, strict=True))] + ["\n"]
        files[split] = str(tmp_path / f"{split}.txt")
        Path(files[split]).write_text("-DOCSTART- -X- -X- O\n\n" + "".join(lines), encoding="utf-8")
    task = _ner(cdr["folder"], scheme=scheme, separator="whitespace", tag_column=-1, files=files)
    prepared = prepare(read_task_file(_task_file(tmp_path / "tasks.yaml", task))[0])
    for split, rows in cdr["expected"].items():
        assert [(r["tokens"], r["tags"]) for r in prepared.rows[split]] == rows


def _perturb(gold: list[list[str]], seed: int) -> list[list[str]]:
    """Predictions: mentions dropped, retyped, cut short, started with I-, spurious ones added."""
    rng, pred = random.Random(seed), []
    for sentence in gold:
        tags = list(sentence)
        for kind, start, end in _spans(sentence):
            roll = rng.random()
            if roll < 0.15:
                tags[start:end + 1] = ["O"] * (end - start + 1)
            elif roll < 0.25:
                other = "Disease" if kind == "Chemical" else "Chemical"
                tags[start:end + 1] = [f"B-{other}"] + [f"I-{other}"] * (end - start)
            elif roll < 0.35 and end > start:
                tags[end] = "O"
            elif roll < 0.4:
                tags[start] = f"I-{kind}"  # invalid IOB2: strict mode reads no mention
        if rng.random() < 0.1 and "O" in tags:
            tags[tags.index("O")] = "B-Chemical"
        pred.append(tags)
    return pred


def test_typed_f1_against_seqeval_and_an_independent_count(cdr: dict) -> None:
    gold = [tags for split in ("dev", "test") for _, tags in cdr["expected"][split]]
    pred = _perturb(gold, seed=7)
    report = metrics.typed_entity_report(gold, pred)
    direct = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True)
    for kind in ("Chemical", "Disease"):
        assert report[kind]["f1"] == pytest.approx(direct[kind]["f1-score"])
        assert report[kind]["support"] == direct[kind]["support"]
    micro = f1_score(gold, pred, mode="strict", scheme=IOB2)
    assert metrics.typed_entity_f1(gold, pred) == pytest.approx(micro)
    assert report["micro"]["f1"] == pytest.approx(metrics.typed_entity_f1(gold, pred))
    # Independently: strict spans are the valid IOB2 mentions (B- then I- of the same type).
    g = {(i, *s) for i, tags in enumerate(gold) for s in _spans(tags)}
    p = {(i, *s) for i, tags in enumerate(pred) for s in _spans(tags)}
    for kind in ("Chemical", "Disease", None):
        gk, pk = ({x for x in g if kind in (None, x[1])}, {x for x in p if kind in (None, x[1])})
        f1 = 2 * len(gk & pk) / (len(gk) + len(pk))
        assert report[kind or "micro"]["f1"] == pytest.approx(f1)
        assert 0.3 < f1 < 0.95  # the perturbation is neither nothing nor everything
    assert metrics.typed_entity_f1(gold, gold) == 1.0


# -- hermetic: row formats, the example, the config ---------------------------------------------------
def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path.name


def _classification(tmp_path: Path, **extra) -> dict:
    texts = ["Aspirin caused a rash.", "The patient recovered.", "Nausea followed cisplatin."]
    files = {}
    for split in ("train", "dev", "test"):
        files[split] = _jsonl(tmp_path / f"{split}.jsonl", [
            {"pmid": f"{split}{i}", "sentence": t, "label": str(i % 2)} for i, t in enumerate(texts)])
    return {"id": "ade", "task_type": "re", "format": "jsonl", "files": files,
            "columns": {"id": "pmid", "text": "sentence"}, "metric": "positive_f1",
            "metric_args": {"positive": "1"}, "max_length": 128, **extra}


def test_jsonl_classification_task_is_read(tmp_path: Path) -> None:
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", _classification(tmp_path, labels=["0", "1"])))
    prepared = prepare(spec)
    assert prepared.rows["dev"][2] == {"id": "dev2", "text": "Nausea followed cisplatin.", "label": "0"}
    assert prepared.task.labels == ("0", "1")
    assert prepared.task.input == {"layout": "single", "fields": ["text"]}
    assert prepared.counts() == {"train": 3, "dev": 3, "test": 3} and prepared.mentions() is None
    bare = tmp_path / "bare.yaml"  # a bare list of tasks reads as the `tasks` list
    bare.write_text(yaml.safe_dump([_classification(tmp_path, labels=["0", "1"])]), encoding="utf-8")
    assert [s.model_dump() for s in read_task_file(bare)] == [spec.model_dump()]


def _sha256(path: Path) -> str:
    """Independent of the package's hashing."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pinned_files_and_declared_sources_are_verified(tmp_path: Path, http_root: tuple[Path, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A split may be a path pinned by sha256, or a source (URL + sha256) fetched like the catalogs':
    from the data mirror when it holds the file, else downloaded into the cache; both verified."""
    www, base = http_root
    task = _classification(tmp_path, labels=["0", "1"])
    shutil.copy(tmp_path / "dev.jsonl", www / "dev.jsonl")
    shutil.copy(tmp_path / "test.jsonl", www / "test.jsonl")
    task["files"] = {"train": {"path": "train.jsonl", "sha256": _sha256(tmp_path / "train.jsonl")},
                     "dev": {"url": f"{base}/dev.jsonl", "sha256": _sha256(www / "dev.jsonl")},
                     "test": {"url": f"{base}/test.jsonl", "sha256": _sha256(www / "test.jsonl"),
                              "path": "ade/test.jsonl"}}
    mirror = tmp_path / "mirror"
    (mirror / "ade").mkdir(parents=True)
    shutil.copy(www / "test.jsonl", mirror / "ade/test.jsonl")  # the mirror holds test, not dev
    monkeypatch.setenv("PUBMEDLM_DATA_MIRROR", str(mirror))
    (www / "test.jsonl").unlink()  # so test can only come from the mirror
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", task))
    prepared = prepare(spec, tmp_path / "cache")
    assert prepared.files == {"train": tmp_path / "train.jsonl", "test": mirror / "ade/test.jsonl",
                              "dev": tmp_path / "cache/127.0.0.1/dev.jsonl"}  # default: the URL's host/path
    assert prepared.rows["dev"] == prepare(read_task_file(_task_file(
        tmp_path / "plain.yaml", _classification(tmp_path, labels=["0", "1"])))[0]).rows["dev"]
    record = prepared.record()["sources"]
    assert record["train"] == {"path": "train.jsonl", "sha256": _sha256(tmp_path / "train.jsonl")}
    assert record["dev"] == {"url": f"{base}/dev.jsonl", "sha256": _sha256(www / "dev.jsonl")}
    assert prepared.task.files["dev"] == (f"{base}/dev.jsonl",)

    # one byte changed: the pinned file fails before anything is read, naming task file, task and both hashes
    (tmp_path / "train.jsonl").write_text((tmp_path / "train.jsonl").read_text() + "\n", encoding="utf-8")
    with pytest.raises(TaskFileError) as err:
        prepare(spec, tmp_path / "cache")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'tasks.yaml'}:2: task 'ade': checksum mismatch for "), message
    assert task["files"]["train"]["sha256"] in message and _sha256(tmp_path / "train.jsonl") in message


def test_saved_datasets_are_recorded_by_a_digest_of_their_files(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    data = Dataset.from_dict({"text": ["a", "b"], "label": ["0", "1"]})
    DatasetDict(train=data, dev=data, test=data).save_to_disk(str(tmp_path / "saved"))
    task = {"id": "saved", "task_type": "re", "format": "hf_disk", "files": "saved", "metric": "accuracy"}
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", task))
    digest = prepare(spec).record()["sources"]["train"]["sha256"]
    lines = sorted(f"{f.relative_to(tmp_path / 'saved').as_posix()}\t{_sha256(f)}\n"
                   for f in (tmp_path / "saved").rglob("*") if f.is_file())
    assert digest == hashlib.sha256("".join(lines).encode()).hexdigest()
    shutil.copytree(tmp_path / "saved", tmp_path / "copy")  # a copy is the same dataset
    spec, = read_task_file(_task_file(tmp_path / "copy.yaml", {**task, "files": "copy"}))
    assert prepare(spec).record()["sources"]["test"]["sha256"] == digest


def test_multi_label_task_is_read_and_scored_per_document(tmp_path: Path) -> None:
    """A TSV multi-label task (HoC's layout, label names): `;`-separated cells, an empty cell is no
    label; its predictions (label names) are written, read back and scored per doc_id, as sklearn's
    micro F1 over the documents' label sets (each the union of its rows')."""
    from sklearn.metrics import f1_score as sk_f1
    from sklearn.preprocessing import MultiLabelBinarizer

    from pubmedlm.blurb.predictions import read_predictions, score_dataset, write_predictions

    rows = [("d1", "Cells divide without limit.", "growth;immortality"), ("d1", "No hallmark here.", ""),
            ("d2", "Tumours recruit vessels.", "angiogenesis"), ("d3", "Invasion follows.", "invasion"),
            ("d3", "They spread.", "invasion;angiogenesis")]
    for split in ("train", "dev", "test"):
        body = "".join(f"{split}{i}\t{d}\t{t}\t{lab}\n" for i, (d, t, lab) in enumerate(rows))
        (tmp_path / f"{split}.tsv").write_text("sid\tpmid\tsentence\thallmarks\n" + body, encoding="utf-8")
    task = {"id": "hallmarks", "task_type": "doc_classification", "format": "tsv",
            "files": {s: f"{s}.tsv" for s in ("train", "dev", "test")},
            "columns": {"id": "sid", "doc_id": "pmid", "text": "sentence", "labels": "hallmarks"},
            "label_separator": ";", "metric": "hoc_abstract_micro_f1"}
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", task))
    prepared = prepare(spec)
    test = prepared.rows["test"]
    assert prepared.task.labels == ("angiogenesis", "growth", "immortality", "invasion")
    assert [r["labels"] for r in test] == [["growth", "immortality"], [], ["angiogenesis"], ["invasion"],
                                          ["angiogenesis", "invasion"]]
    preds = [{"growth"}, {"invasion"}, set(), {"invasion"}, {"angiogenesis"}]
    write_predictions(tmp_path / "pred.jsonl", test, preds)  # label names, as the codec decodes them
    gold_rows, read = read_predictions(tmp_path / "pred.jsonl", prepared.task, test)
    docs: dict[str, tuple[set, set]] = {}
    for row, pred in zip(test, preds, strict=True):
        gold_set, pred_set = docs.setdefault(row["doc_id"], (set(), set()))
        gold_set.update(row["labels"])
        pred_set.update(pred)
    binarize = MultiLabelBinarizer(classes=prepared.task.labels)
    gold_hot = binarize.fit_transform([g for g, _ in docs.values()])
    pred_hot = binarize.transform([p for _, p in docs.values()])
    assert score_dataset(prepared.task, gold_rows, read) == pytest.approx(100 * sk_f1(gold_hot, pred_hot,
                                                                                     average="micro"))
    (tmp_path / "test.tsv").write_text("sid\tpmid\tsentence\thallmarks\nt0\td1\tX.\tgrowth;apoptosis\n",
                                       encoding="utf-8")
    with pytest.raises(TaskFileError, match=r"test\.tsv:2.*'apoptosis'"):
        prepare(spec)


def test_csv_pairs_and_saved_datasets_are_read(tmp_path: Path) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.csv").write_text('a,b,sim\n"One, two",Three,3.5\nFour,Five,0\n',
                                               encoding="utf-8")
    pairs = {"id": "sim", "task_type": "similarity", "format": "csv", "metric": "pearson",
             "files": {s: f"{s}.csv" for s in ("train", "dev", "test")},
             "columns": {"text_a": "a", "text_b": "b", "score": "sim"}}
    features = Features({"words": Sequence(Value("string")),
                         "ner": Sequence(ClassLabel(names=["O", "B-Gene", "I-Gene"]))})
    data = Dataset.from_dict({"words": [["BRCA1", "gene", "loss"]], "ner": [[1, 2, 0]]}, features=features)
    DatasetDict(train=data, validation=data, test=data).save_to_disk(str(tmp_path / "genes"))
    genes = {"id": "genes", "task_type": "ner", "format": "hf_disk", "files": "genes",
             "token_column": "words", "tag_column": "ner", "metric": "typed_entity_f1"}
    sim, ner = (prepare(s) for s in read_task_file(_task_file(tmp_path / "tasks.yaml", pairs, genes)))
    assert sim.rows["test"][0] == {"id": "test-0", "text_a": "One, two", "text_b": "Three", "score": 3.5}
    assert sim.task.labels == () and sim.task.head == "regression"
    assert ner.rows["dev"] == [{"id": "dev-0", "doc_id": None, "tokens": ["BRCA1", "gene", "loss"],
                                "tags": ["B-Gene", "I-Gene", "O"]}]


def test_the_example_task_file_reads(tmp_path: Path) -> None:
    shutil.copy(REPO / "pipelines" / "tasks" / "example.yaml", tmp_path / "example.yaml")
    data = tmp_path / "user-data"
    (data / "BC5CDR-IOB").mkdir(parents=True)
    (data / "ade").mkdir()
    for split, name in MTL.items():
        (data / "BC5CDR-IOB" / f"{name}.tsv").write_text(
            "Cisplatin\tB-Chemical\nnephrotoxicity\tB-Disease\n.\tO\n", encoding="utf-8")
        _jsonl(data / "ade" / f"{split}.jsonl",
               [{"pmid": "1", "sentence": "Rash after aspirin.", "label": "1"}])
    ner, ade = (prepare(s) for s in read_task_file(tmp_path / "example.yaml"))
    assert ner.mentions() == {s: {"Chemical": 1, "Disease": 1} for s in ("train", "dev", "test")}
    assert ade.rows["test"] == [{"id": "1", "text": "Rash after aspirin.", "label": "1"}]


def test_params_declare_task_files(tmp_path: Path) -> None:
    assert load_config(REPO / "params.yaml").tasks.files == []
    _task_file(tmp_path / "mine.yaml", _classification(tmp_path))
    cfg = load_config(REPO / "params.yaml", [f"tasks.files=[{tmp_path / 'mine.yaml'}]"])
    spec, = load_task_files(cfg.tasks.files, REPO)
    assert prepare(spec).task.labels == ("0", "1")  # inferred from train
    with pytest.raises(ConfigError, match=r"tasks\.files.*listed twice"):
        load_config(REPO / "params.yaml", ["tasks.files=[a.yaml, a.yaml]"])


# -- hermetic: every bad input names the file, the task or line, and the field -----------------------
def _conll(tmp_path: Path, tags: dict[str, str]) -> dict[str, str]:
    files = {}
    for split, name in MTL.items():
        (tmp_path / f"{name}.tsv").write_text(tags.get(split, "Cisplatin\tB-Chemical\nkills\tO\n\n"),
                                              encoding="utf-8")
        files[name] = f"{name}.tsv"
    return files


BAD_TASKS = {
    "unknown format": ({"format": "xml"}, ["tasks.yaml:2: task 1 (mine)", "'format'", "'xml'"]),
    "unknown field": ({"tag_colum": 1}, ["tasks.yaml:2: task 1 (mine)", "unknown key 'tag_colum'"]),
    "blurb id": ({"id": "bc5-CHEM"}, ["task 1 (bc5-CHEM)", "'id'", "BLURB dataset BC5-chem"]),
    "missing file": ({"files": {"train": "train.tsv", "dev": "nope.tsv", "test": "test.tsv"}},
                     ["task 1 (mine)", "'files'", "nope.tsv does not exist"]),
    "source without sha256": ({"files": {"train": "train.tsv", "dev": {"url": "https://example.org/d.tsv"},
                                         "test": "test.tsv"}},
                              ["task 1 (mine)", "'files'", "dev", "needs its sha256"]),
    "bad sha256": ({"files": {"train": {"path": "train.tsv", "sha256": "ABC"}, "dev": "devel.tsv",
                              "test": "test.tsv"}}, ["task 1 (mine)", "'files'", "sha256", "pattern"]),
    "saved dataset pinned": ({"format": "hf_disk", "files": {"path": "train.tsv", "sha256": "0" * 64},
                              "tag_column": "ner"},
                             ["task 1 (mine)", "'files'", "a saved dataset is a folder"]),
    "dev twice": ({"files": {"train": "train.tsv", "dev": "devel.tsv", "devel": "devel.tsv",
                             "test": "test.tsv"}}, ["task 1 (mine)", "'files'", "both dev and devel"]),
    "metric of another head": ({"metric": "accuracy"}, ["task 1 (mine)", "'metric'", "token_classification"]),
    "no tag column": ({"tag_column": None}, ["task 1 (mine)", "'tag_column'", "required"]),
    "tags as labels": ({"labels": ["B-Chemical", "O"]},
                       ["task 1 (mine)", "'labels'", "not tags (B-Chemical)"]),
}


@pytest.mark.parametrize("case", BAD_TASKS)
def test_bad_task_rows_name_file_task_and_field(tmp_path: Path, case: str) -> None:
    change, wanted = BAD_TASKS[case]
    task = {"id": "mine", "task_type": "ner", "format": "conll", "files": _conll(tmp_path, {}),
            "tag_column": 1, "metric": "typed_entity_f1", **change}
    task = {k: v for k, v in task.items() if v is not None}
    with pytest.raises(TaskFileError) as err:
        read_task_file(_task_file(tmp_path / "tasks.yaml", task))
    assert all(w in str(err.value) for w in wanted), str(err.value)


BAD_FILES = {
    "tag column absent": ({}, {"tag_column": 3}, ["train.tsv:1", "'tag_column'", "column 3 does not exist"]),
    "label not declared": ({"dev": "A\tO\nB\tB-Chemical\nC\tI-Chemical\n\nD\tB-Gene\n"}, {},
                           ["devel.tsv:5", "'Gene'", "declared labels (field 'labels')"]),
    "label not in train": ({"test": "A\tB-Disease\n"}, {"labels": "infer"},
                           ["test.tsv:1", "'Disease'", "labels of the train split"]),
    "empty split": ({"test": "-DOCSTART- (1)\n\n\n"}, {}, ["test.tsv:3", "empty split 'test'"]),
    "not the scheme": ({"train": "A\tO\nB\tI-Chemical\n"}, {}, ["train.tsv:2", "'scheme'", "IOB2"]),
    "not a tag": ({"train": "A\tE-Chemical\n"}, {},
                  ["train.tsv:1", "'tag_column'", "'E-Chemical' is not a tag of scheme IOB2"]),
    "ragged columns": ({"dev": "A\tO\nB\tO\tX\n"}, {},
                       ["devel.tsv:2", "3 columns", "first token line has 2"]),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_data_files_name_task_file_line_and_field(tmp_path: Path, case: str) -> None:
    tags, change, wanted = BAD_FILES[case]
    task = {"id": "mine", "task_type": "ner", "format": "conll", "files": _conll(tmp_path, tags),
            "tag_column": 1, "labels": ["Chemical"], "metric": "typed_entity_f1", **change}
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", task))
    with pytest.raises(TaskFileError) as err:
        prepare(spec)
    assert str(err.value).startswith(f"{tmp_path / 'tasks.yaml'}:2: task 'mine': {tmp_path}")
    assert all(w in str(err.value) for w in wanted), str(err.value)


def test_bad_rows_name_file_line_and_field(tmp_path: Path) -> None:
    task = _classification(tmp_path, labels=["0", "1"])
    _jsonl(tmp_path / "dev.jsonl", [{"pmid": "a", "sentence": "Fine.", "label": "1"},
                                    {"pmid": "b", "sentence": "Bad.", "label": "2"}])
    spec, = read_task_file(_task_file(tmp_path / "tasks.yaml", task))
    with pytest.raises(TaskFileError, match=r"dev\.jsonl:2: label '2' is not in the declared labels"):
        prepare(spec)
    (tmp_path / "dev.jsonl").write_text('{"pmid": "a", "label": "1"}\n', encoding="utf-8")
    with pytest.raises(TaskFileError, match=r"dev\.jsonl:1: field 'columns\.text': no value in column"):
        prepare(spec)
    with pytest.raises(TaskFileError, match=r"tasks\.yaml:\d+: task 2 \(twice\): bad value for 'id'.*twice"):
        read_task_file(_task_file(tmp_path / "tasks.yaml", dict(task, id="twice"), dict(task, id="twice")))


def test_iob2_conversion_reads_as_seqeval_does() -> None:
    tags = ["I-Chemical", "I-Chemical", "B-Chemical", "O", "I-Disease", "I-Chemical"]
    iob2 = ["B-Chemical", "I-Chemical", "B-Chemical", "O", "B-Disease", "B-Chemical"]
    assert to_iob2(tags, "IOB1", str) == iob2
    bioes = ["S-Chemical", "B-Disease", "E-Disease"]
    assert to_iob2(bioes, "BIOES", str) == ["B-Chemical", "B-Disease", "I-Disease"]
    with pytest.raises(TaskFileError, match=r"^1: field 'scheme': tag 'B-Disease'"):
        to_iob2(["O", "B-Disease", "I-Disease", "O"], "BIOES", str)  # BIOES: a B needs its E
    assert not set(all_tasks()) & {"CDR-typed", "ade"}
