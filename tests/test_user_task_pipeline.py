"""A user's task through the pipeline a BLURB dataset takes: declared in a task file, prepared by
blurb-data, tuned (fixed configuration), fine-tuned (one seed), evaluated, registered and served.

The end-to-end test cuts a typed NER collection (`Chemical` / `Disease`) from the mirror's BC5CDR
files (`test_user_tasks.cut_typed_cdr`, MTL layout with a `devel` split), runs the CLI commands
in a temporary project with the real MiniLM, and checks what the stages wrote against references
computed here: mention counts against the source files' B lines, the per-type and micro F1 against
seqeval on the saved predictions, the BLURB score against `blurb_score` of the BLURB dataset alone; a
JSONL sentence-classification task (GAD's rows under the user's own column names) takes the same path
and scores sklearn's positive-class F1 on its predictions; the registered typed-NER version serves
typed spans over HTTP (`mlflow models serve`), the same as the saved model's in-process.
The serving decode (typed BIO tags -> typed character spans) is checked hermetically on fixed logits.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import yaml
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2
from sklearn.metrics import f1_score as sk_f1
from test_user_tasks import MTL, cut_typed_cdr
from typer.testing import CliRunner

from conftest import REPO, post_json, served_model

SENTENCES = 40  # per split; fine-tuning reads 32 of train, scores 32 of dev and test
FIXED = {"learning_rate": 3e-4, "batch_size": 8, "epochs": 2, "warmup_ratio": 0.1, "weight_decay": 0.0,
         "dropout": 0.0}


def _project(root: Path, mirror: Path) -> tuple[Path, dict]:
    """params.yaml (tiny caps, tune.fixed, one seed, BC5-chem beside the user task) and the task file."""
    cut = cut_typed_cdr(mirror, root / "pipelines" / "tasks" / "user-data" / "BC5CDR-IOB", SENTENCES)
    task = {"id": "CDR-typed", "task_type": "ner", "format": "conll", "tag_column": 1,
            "files": {s: f"user-data/BC5CDR-IOB/{name}.tsv" for s, name in MTL.items()},
            "labels": ["Chemical", "Disease"], "metric": "typed_entity_f1", "max_length": 128}
    tasks = [task, _gad_jsonl(root, mirror)]
    (root / "pipelines" / "tasks" / "mine.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["blurb_data"]["datasets"] = ["BC5-chem"]
    params["tasks"] = {"files": ["pipelines/tasks/mine.yaml"]}
    params["finetune"].update(model="minilm", datasets=["BC5-chem", "CDR-typed", "GAD-jsonl"],
                              max_train_examples=32, max_eval_examples=32, max_length=64,
                              seeds={"default": 1})
    params["tune"]["fixed"] = FIXED
    params["runtime"].update(progress=False, cpus_per_worker=1, micro_batch_size=16)
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return root / "params.yaml", cut


def _gad_jsonl(root: Path, mirror: Path) -> dict:
    """A JSONL sentence-classification task: the first SENTENCES rows of each of the mirror's GAD
    splits, rewritten as JSON Lines with the user's own column names; its task row."""
    folder = root / "pipelines" / "tasks" / "user-data" / "gad"
    folder.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        lines = (mirror / "blurb" / "GAD" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        rows = [dict(zip(("pmid", "sentence", "gold"), line.split("\t"), strict=True))
                for line in lines[:SENTENCES]]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"id": "GAD-jsonl", "task_type": "re", "format": "jsonl",
            "files": {s: f"user-data/gad/{s}.jsonl" for s in ("train", "dev", "test")},
            "columns": {"id": "pmid", "text": "sentence", "label": "gold"}, "labels": ["0", "1"],
            "input": {"layout": "single", "fields": ["text"], "entity_tokens": ["@GENE$", "@DISEASE$"]},
            "metric": "positive_f1", "metric_args": {"positive": "1"}, "max_length": 128}


def _cli(*args: str) -> str:
    from pubmedlm.cli import app

    result = CliRunner().invoke(app, list(args))
    trace = "".join(traceback.format_exception(result.exception)) if result.exception else ""
    assert result.exit_code == 0, f"pubmedlm {' '.join(args)}:\n{result.output[-3000:]}\n{trace[-3000:]}"
    return result.output


def _saved(root: Path, task: str, target: str = "tags", seed: int = 0) -> tuple[list, list]:
    """Gold targets (`tags`, `label`) and the saved test predictions of a seed, aligned by row id."""
    gold = {}
    for line in (root / "data" / "blurb_data" / task / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        gold[row["id"]] = row[target]
    path = root / "data" / "finetune" / task / "predictions" / f"seed-{seed}" / "test" / f"{task}.jsonl"
    preds = [json.loads(line) for line in path.read_text().splitlines()]
    return [gold[p["id"]] for p in preds], [p["prediction"] for p in preds]


def test_typed_ner_task_runs_the_blurb_path(project: Path, mirror: Path) -> None:
    from pubmedlm.blurb import tasks
    from pubmedlm.blurb.score import blurb_score
    from pubmedlm.registry.serving import TaskPredictor

    params, cut = _project(project, mirror)
    _cli("blurb-data", "--params", str(params))
    prepared = json.loads((project / "metrics" / "blurb_data.json").read_text())
    assert prepared["tasks"]["CDR-typed"]["mentions"] == cut["b_lines"]  # the source files' B lines
    assert prepared["prepared"] == ["BC5-chem"]  # user tasks are not BLURB datasets
    meta = json.loads((project / "data" / "blurb_data" / "CDR-typed" / "meta.json").read_text())
    assert meta["origin"] == "user"
    assert meta["task"]["labels"] == ["B-Chemical", "I-Chemical", "B-Disease", "I-Disease", "O"]
    assert "Your tasks" in (project / "data" / "blurb_data" / "README.md").read_text()

    for task in ("BC5-chem", "CDR-typed", "GAD-jsonl"):
        _cli("tune", "--task", task, "--params", str(params))
        _cli("finetune", "--task", task, "--params", str(params))
    _cli("evaluate", "--params", str(params))

    results = json.loads((project / "data" / "finetune" / "CDR-typed" / "results.json").read_text())
    summary = json.loads((project / "metrics" / "evaluate.json").read_text())
    gold, pred = _saved(project, "CDR-typed")
    assert len(gold) == 32 and all(len(g) == len(p) for g, p in zip(gold, pred, strict=True))
    assert {t[2:] for p in pred for t in p if t != "O"} <= {"Chemical", "Disease"}  # typed tags learned
    micro = 100 * f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0)
    assert results["metric"] == "typed_entity_f1"
    assert results["test"]["mean"] == pytest.approx(micro)
    mine = summary["tasks"]["CDR-typed"]
    direct = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    for kind in ("Chemical", "Disease"):
        assert mine["per_type"][kind]["f1"] == pytest.approx(direct[kind]["f1-score"])
        assert mine["per_type"][kind]["support"] == direct[kind]["support"]
    assert 100 * mine["per_type"]["micro"]["f1"] == pytest.approx(micro)
    # The JSONL task: its test score is sklearn's positive-class F1 on its saved predictions.
    gad = json.loads((project / "data" / "finetune" / "GAD-jsonl" / "results.json").read_text())
    labels, predicted = _saved(project, "GAD-jsonl", "label")
    assert len(labels) == 32 and set(predicted) <= {"0", "1"}
    expected = 100 * sk_f1(labels, predicted, pos_label="1", zero_division=0)
    assert gad["metric"] == "positive_f1" and gad["test"]["mean"] == pytest.approx(expected)
    assert summary["tasks"]["GAD-jsonl"]["metric"] == "positive_f1"
    # `pubmedlm blurb -d <your id>` scores it the same way outside the DAG, to the same test score.
    out = _cli("blurb", "--model", "minilm", "-d", "GAD-jsonl", "--params", str(params))
    again = json.loads((project / "data/blurb/minilm/finetune/GAD-jsonl/results.json").read_text())
    assert again["test"]["mean"] == pytest.approx(gad["test"]["mean"]) and "GAD-jsonl" in out
    # BLURB's score is BC5-chem's alone: the user tasks are listed beside it, never inside it.
    assert set(summary["datasets"]) == {"BC5-chem"} and set(summary["results"]) == {"BC5-chem"}
    chem = json.loads((project / "data" / "finetune" / "BC5-chem" / "results.json").read_text())
    assert chem["metric"] == "entity_f1"
    assert summary["blurb"]["blurb"] == pytest.approx(blurb_score({"BC5-chem": chem["test"]["mean"]}).value)
    page = (project / "reports" / "evaluate" / "blurb.md").read_text()
    assert "## Your tasks" in page and "| CDR-typed | typed_entity_f1 |" in page

    # The saved model serves typed spans from raw text, without the task files (its task row is kept).
    tasks.use_user_tasks({})
    predictor = TaskPredictor(project / "data" / "finetune" / "CDR-typed" / "model")
    assert predictor.task.labels == tuple(meta["task"]["labels"])
    text = "Cisplatin induced nephrotoxicity and hypotension in rats treated with lithium ."
    spans, = predictor.predict_table([{"text": text}])
    assert all(s["type"] in ("Chemical", "Disease") and text[s["start"]:s["end"]] == s["text"] for s in spans)

    # register logs it as <prefix>-CDR-typed with the task's own metric; the registered version
    # serves the same typed spans over HTTP (`mlflow models serve`, raw text in, typed spans out).
    _cli("register", "--params", str(params))
    registered = json.loads((project / "metrics" / "register.json").read_text())["models"]
    mine, = (m for m in registered if m["name"] == "pubmedlm-CDR-typed")
    assert mine["version"] and mine["score"] == pytest.approx(micro)
    texts = [text, *(" ".join(tokens) for tokens, _ in cut["expected"]["test"][:20])]
    local = predictor.predict_table([{"text": t} for t in texts])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with served_model(f"models:/pubmedlm-CDR-typed/{mine['version']}", project, env) as url:
        served = post_json(f"{url}/invocations", {"dataframe_records": [{"text": t} for t in texts]})
    assert served["predictions"] == local
    assert {s["type"] for row in local for s in row} <= {"Chemical", "Disease"}


def test_bad_task_file_is_one_line_cli_error(project: Path, capsys: pytest.CaptureFixture) -> None:
    from pubmedlm.cli import main

    (project / "mine.yaml").write_text(yaml.safe_dump({"tasks": [{"id": "x", "task_type": "ner"}]}))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tasks"] = {"files": ["mine.yaml"]}
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    for args in (["blurb-data"], ["tune", "--task", "x"]):
        with pytest.MonkeyPatch.context() as mp, pytest.raises(SystemExit) as stop:
            mp.setattr(sys, "argv", ["pubmedlm", *args, "--params", str(project / "params.yaml")])
            main()
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "Traceback" not in err, err
        assert f"{project / 'mine.yaml'}:2: task 1 (x)" in " ".join(err.split()), err


def test_unknown_dataset_names_the_task_files(project: Path) -> None:
    from pubmedlm.blurb import tasks
    from pubmedlm.config import load_config
    from pubmedlm.errors import UserError
    from pubmedlm.usertasks.declared import activate

    task = {"id": "ade", "task_type": "re", "format": "jsonl", "metric": "accuracy",
            "files": {s: f"{s}.jsonl" for s in ("train", "dev", "test")}}
    for split in ("train", "dev", "test"):
        (project / f"{split}.jsonl").write_text('{"id": "1", "text": "Rash.", "label": "1"}\n')
    (project / "mine.yaml").write_text(yaml.safe_dump({"tasks": [task]}))
    cfg = load_config(REPO / "params.yaml", [f"tasks.files=[{project / 'mine.yaml'}]",
                                             "finetune.datasets=[GAD, ade, adverse]"])
    with pytest.raises(UserError, match=r"finetune\.datasets: adverse is neither.*ade \(.*mine\.yaml\)"):
        activate(cfg, project)
    cfg.finetune.datasets = ["GAD", "ade"]
    assert set(activate(cfg, project)) == {"ade"}
    tasks.use_user_tasks({})  # the lookup is per process: leave none declared for later tests


# -- hermetic: serving decodes typed tags into typed spans ---------------------------------------------
def test_serving_turns_typed_bio_logits_into_typed_spans() -> None:
    from pubmedlm.blurb.tasks import Task
    from pubmedlm.finetune.features import CodecOptions, TaskCodec
    from pubmedlm.registry.serving import split_words, text_spans
    from pubmedlm.text.models import load_tokenizer

    labels = ("B-Chemical", "I-Chemical", "B-Disease", "I-Disease", "O")
    task = Task(id="CDR-typed", paper_name="CDR-typed", folder="CDR-typed", task_type="ner",
                head="token_classification", format="conll", files={}, labels=labels,
                metric="typed_entity_f1", max_length=128, unit="mentions", paper_counts={},
                input={"layout": "tokens", "fields": ["tokens"], "tags": "BIO"})
    codec = TaskCodec(task, load_tokenizer("minilm"), CodecOptions(tagging="BIO"))
    text = "Lithium carbonate caused renal failure, not aspirin."
    words = split_words(text)
    wanted = ["B-Chemical", "I-Chemical", "O", "B-Disease", "I-Disease", "O", "O", "B-Chemical", "O"]
    assert [w for w, _, _ in words] == ["Lithium", "carbonate", "caused", "renal", "failure", ",", "not",
                                        "aspirin", "."]
    encoded = codec.encode([{"id": "0", "tokens": [w for w, _, _ in words], "tags": ["O"] * len(words)}])
    logits = np.zeros((len(encoded.inputs[0]["input_ids"]), codec.num_labels), dtype=np.float32)
    for word, piece in enumerate(encoded.first_pieces[0]):
        logits[piece, codec.label_index[wanted[word]]] = 5.0
    tags, = codec.decode(encoded, [logits])
    assert tags == wanted
    assert text_spans(text, words, tags, "CDR-typed") == [
        {"type": "Chemical", "start": 0, "end": 17, "text": "Lithium carbonate"},
        {"type": "Disease", "start": 25, "end": 38, "text": "renal failure"},
        {"type": "Chemical", "start": 44, "end": 51, "text": "aspirin"}]
    assert text_spans("Aspirin helps.", split_words("Aspirin helps."), ["B", "O", "O"], "BC5-chem") == [
        {"type": "BC5-chem", "start": 0, "end": 7, "text": "Aspirin"}]  # untyped: the dataset's name


def test_report_shows_user_tasks_apart_from_blurb() -> None:
    from pubmedlm.report.leaderboard import html_page, markdown, published_columns

    per_type = {"Chemical": {"f1": 0.7}, "Disease": {"f1": 0.5}, "micro": {"f1": 0.615}}
    yours = {"CDR-typed": {"metric": "typed_entity_f1", "mean": 61.5, "std": 0.0, "seeds": 1,
                           "dev_mean": 60.0, "per_type": per_type}}
    columns = published_columns(["PubMedBERT"])
    page = markdown(columns, {}, yours=yours)
    blurb_table, block = page.split("## Your tasks")
    assert "CDR-typed" not in blurb_table
    row = ("| CDR-typed | typed_entity_f1 | 61.50 ± 0.00 | 1 | 60.00 | "
           "Chemical 70.00, Disease 50.00, micro 61.50 |")
    assert row in block
    assert '<table id="yours">' in html_page(columns, {}, yours=yours)
    assert "Your tasks" not in markdown(columns, {})
