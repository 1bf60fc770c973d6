"""Registry, report, compare and serving, on a real fine-tuned NER model.

One project fine-tunes the real MiniLM on real NCBI-disease rows through the real stages (tune,
finetune, evaluate, register, report as commands, one MLflow SQLite store), then:
- the registry holds the encoder (partial BLURB score: never champion) and the task model
  (champion: its dev mean beats the NER sanity baseline, all O, on the same dev rows), with their
  lineage tags; the model loaded back from `models:/...@champion`
  predicts exactly the finetune stage's prediction file;
- the gate keeps a champion against a worse model, a partial score, a capped run against a full
  one, a model not above its sanity baseline, and promotes a better one;
- `mlflow models serve` answers real NCBI-disease test sentences over HTTP with spans whose text
  is the input at the returned offsets;
- the report opens in headless Chromium: a non-blank screenshot, the leaderboard's cells and flags;
- `compare`: a paired bootstrap on the model's real predictions that tells the gold from the model
  and a run from itself, and the command on two runs.

The project is a git checkout, so every run and version carries its commit. The gate's rules, the
BLURB weights and Welch's interval are checked hermetically in test_registry_gate.py and
test_blurb_compare.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import post_json, prepare_blurb, served_model

pytestmark = pytest.mark.integration

TASK = "NCBI-disease"
PARAMS = {
    "corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]},
    "blurb_data": {"datasets": [TASK]},
    "finetune": {"model": "minilm", "datasets": [TASK], "max_train_examples": 300, "max_eval_examples": 100,
                 "max_length": 64, "seeds": {"default": 1}, "attention_dropout": 0.0},
    "tune": {"num_samples": 1, "search": {"epochs": [2, 2], "batch_size": [16],
                                          "learning_rate": {"low": 3e-4, "high": 3e-4}}},
    "runtime": {"progress": False, "cpus_per_worker": 2, "micro_batch_size": 16},
}


def _env(root: Path, mirror: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "PUBMEDLM_DATA_MIRROR": str(mirror),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "COLUMNS": "200",
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def _cli(root: Path, mirror: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", *args], cwd=root, env=_env(root, mirror),
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("registry")
    (root / "README").write_text("a project under git: its runs and versions carry the commit\n")
    _git(root, "init", "-q")
    _git(root, "add", "README")
    _git(root, "commit", "-qm", "project")
    prepare_blurb(root, mirror, PARAMS)
    for stage in (["tune", "--task", TASK], ["finetune", "--task", TASK], ["evaluate"], ["register"],
                  ["report"]):
        _cli(root, mirror, *stage)
    yield root


@pytest.fixture
def client(root: Path, monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.chdir(root)
    return MlflowClient()


def _test_rows(root: Path) -> tuple[list[dict], list[list[str]]]:
    """The capped test rows the finetune stage predicted, and its predicted tags, in file order."""
    from pubmedlm.blurb.normalized import read_jsonl

    preds = [json.loads(line)
             for line in (root / "data/finetune" / TASK / "predictions/seed-0/test" / f"{TASK}.jsonl")
             .read_text().splitlines()]
    gold = {r["id"]: r for r in read_jsonl(root / "data/blurb_data" / TASK / "test.jsonl")}
    return [gold[p["id"]] for p in preds], [p["prediction"] for p in preds]


def test_registry_holds_encoder_and_task_model_with_lineage(root: Path, client) -> None:
    import mlflow
    import pandas as pd

    decisions = {d["name"]: d for d in json.loads((root / "metrics/register.json").read_text())["models"]}
    enc = decisions["pubmedlm-encoder"]
    assert not enc["promoted"] and "partial" in enc["reason"]  # 1 of 13 datasets: a partial BLURB score
    task_model = decisions[f"pubmedlm-{TASK}"]
    assert task_model["promoted"]  # the first version of a task model, above its sanity baseline
    summary = json.loads((root / "metrics/evaluate.json").read_text())["datasets"][TASK]
    sanity = summary["sanity"]
    assert sanity["dev"] == sanity["test"] == 0.0 and sanity["rows"] == {"dev": 100, "test": 100}
    assert task_model["sanity"] == 0.0 and summary["dev_mean"] > 0.0
    assert task_model["dev"] == pytest.approx(summary["dev_mean"])
    # No champion of the demo's registry at or below its sanity baseline on dev.
    for d in decisions.values():
        assert not d["promoted"] or d["dev"] > d["sanity"], d

    encoder = client.get_model_version_by_alias("pubmedlm-encoder", "candidate")
    with pytest.raises(Exception, match="champion"):
        client.get_model_version_by_alias("pubmedlm-encoder", "champion")
    model = client.get_model_version_by_alias(f"pubmedlm-{TASK}", "champion")
    head = _git(root, "rev-parse", "HEAD")
    for version in (encoder, model):
        tags = version.tags
        assert tags["git.commit"] == head
        assert tags["dvc.data/blurb_data"].endswith(".dir")
        assert tags["dvc.params.yaml"] and tags["gate.reason"]
        assert f"score.{TASK}" in tags or "score.test" in tags
    assert model.tags["pubmedlm.task"] == TASK and float(model.tags["cost.finetune_device_hours"]) > 0
    assert any(k.startswith(f"source.blurb/{TASK}/") and len(v) == 64 for k, v in model.tags.items())
    results = json.loads((root / "data/finetune" / TASK / "results.json").read_text())
    assert float(model.tags["gate.score"]) == pytest.approx(results["test"]["mean"], abs=1e-5)
    assert "BLURB" in encoder.tags["blurb.label"] and encoder.description

    # Loaded back from the registry, the model predicts exactly the finetune stage's file.
    rows, tags = _test_rows(root)
    loaded = mlflow.pyfunc.load_model(f"models:/pubmedlm-{TASK}@champion")
    served = loaded.predict(pd.DataFrame({"tokens": [r["tokens"] for r in rows]}))
    assert [list(t) for t in served] == tags
    assert sum(t != "O" for row in tags for t in row) > 0, (
        "the model tags no mention: the comparison proves little")
    fill = mlflow.transformers.load_model("models:/pubmedlm-encoder@candidate")
    assert fill("the patient has [MASK] cancer.")[0]["token_str"]


def test_gate_keeps_champion_against_worse_partial_and_capped(root: Path, client) -> None:
    from pubmedlm.registry.gate import Standing, register_version

    name = "gate-test"
    source = client.get_model_version_by_alias(f"pubmedlm-{TASK}", "champion").source
    tasks = ("BC5-chem", "NCBI-disease")

    def reg(standing: Standing) -> dict:
        return register_version(source, name, standing, tags={}, description="gate test")

    def above(score: float, **kw) -> Standing:  # dev above its sanity baseline
        return Standing(score, tasks, **{"dev": 60.0, "sanity": 50.0, **kw})

    unknown = reg(Standing(99.0, tasks))
    assert not unknown["promoted"] and "sanity baseline" in unknown["reason"]
    first = reg(above(70.0))
    assert first["promoted"] and first["reason"] == "no champion yet"
    v = client.get_model_version(name, first["version"])
    assert (v.tags["gate.dev"], v.tags["gate.sanity"]) == ("60.000000", "50.000000")
    at_sanity = reg(above(99.0, dev=50.0))
    assert not at_sanity["promoted"] and at_sanity["reason"] == (
        "dev 50.00 not above the sanity baseline's 50.00: never champion")
    worse = reg(above(69.5))
    assert not worse["promoted"] and "not above" in worse["reason"]
    partial = reg(above(95.0, partial=True))
    assert not partial["promoted"] and "partial" in partial["reason"]
    proxy = reg(above(95.0, proxy=True))
    assert not proxy["promoted"]
    capped = reg(above(90.0, capped=True))
    assert not capped["promoted"] and "capped" in capped["reason"]
    other_tasks = reg(Standing(90.0, ("NCBI-disease",), dev=60.0, sanity=50.0))
    assert not other_tasks["promoted"] and "task set" in other_tasks["reason"]
    assert client.get_model_version_by_alias(name, "champion").version == first["version"]
    assert client.get_model_version_by_alias(name, "candidate").version == other_tasks["version"]
    v = client.get_model_version(name, worse["version"])
    assert v.tags["gate.promoted"] == "false" and "not above" in v.tags["gate.reason"]
    better = reg(above(71.0))
    assert better["promoted"] and better["previous_champion"] == first["version"]
    assert client.get_model_version_by_alias(name, "champion").version == better["version"]


def test_ner_model_served_over_http(root: Path, mirror: Path) -> None:
    from pubmedlm.blurb.normalized import read_jsonl

    with served_model(f"models:/pubmedlm-{TASK}@champion", root, _env(root, mirror)) as url:
        texts = [" ".join(r["tokens"])
                 for r in read_jsonl(root / "data/blurb_data" / TASK / "test.jsonl")[:40]]
        out = post_json(f"{url}/invocations", {"dataframe_records": [{"text": t} for t in texts]})
        spans = out["predictions"]
        assert len(spans) == len(texts)
        found = 0
        for text, row in zip(texts, spans, strict=True):
            for s in row:
                assert text[s["start"]:s["end"]] == s["text"] and s["text"].strip() == s["text"] and s["text"]
                assert s["type"] == "NCBI-disease"
                found += 1
        assert found >= 5, f"only {found} spans in 40 test sentences"
        with pytest.raises(urllib.error.HTTPError):  # a table without text or tokens is refused
            post_json(f"{url}/invocations", {"dataframe_records": [{"sentence": "x"}]})


def test_report_renders_in_chromium(root: Path, tmp_path: Path, client) -> None:
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium package is required (make system-deps installs it)"
    page = root / "reports/report/index.html"
    text = page.read_text()
    assert "<img" in text and not any(ref in text for ref in ("src='http", 'src="http', "<link", "<script"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-extensions", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1400,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    img = Image.open(shot).convert("L")
    hist = img.histogram()
    white = sum(hist[250:]) / sum(hist)
    assert img.size == (1400, 1600) and 0.3 < white < 0.98, (
        f"blank or unreadable screenshot ({white:.2%} white)")
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.table = None
            self.cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.table = dict(attrs).get("id")
            if self.table == "leaderboard":
                if tag == "tr":
                    self.rows.append([])
                elif tag in ("td", "th"):
                    self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None and self.rows:
                self.rows[-1].append(" ".join("".join(self.cell).split()))
                self.cell = None
            if tag == "table":
                self.table = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Cells()
    parser.feed(dom)
    header, *body = parser.rows
    by_label = {r[0]: r for r in body}
    results = json.loads((root / "data/finetune" / TASK / "results.json").read_text())
    ours = header[1]
    assert "partial" in ours and "not comparable" in ours
    sanity = next(i for i, h in enumerate(header) if h.startswith("sanity baseline"))
    assert "partial" in header[sanity] and "not comparable" in header[sanity]
    assert by_label["NCBI-disease"][sanity] == "0.00" and by_label["BC2GM"][sanity] == "–"
    assert "This page is a demo: `dvc repro` with `params.yaml`" in text  # the first screen says what ran
    assert "cp pipelines/profiles/paper.yaml params.yaml &amp;&amp; dvc repro" in text
    assert by_label["NCBI-disease"][1].startswith(f"{results['test']['mean']:.2f}")
    assert by_label["NCBI-disease"][header.index("PubMedBERT")] == "87.82"
    assert by_label["BC2GM"][1] == "–" and by_label["BLURB"][header.index("PubMedBERT")] == "81.16"
    assert len(body) == 13 + 3 + 1  # datasets, the averages of the 3 multi-dataset types, BLURB
    run = client.get_run(json.loads((root / "metrics/evaluate.json").read_text())["run_id"])
    listed = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/index.html", "report/scores.png"} <= listed
    from pubmedlm.infra.tracking import find_task_run

    uri = f"sqlite:///{root / 'mlflow.db'}"
    task_run = find_task_run(uri, "pubmedlm", TASK,
                             json.loads((root / "data/tune" / TASK / "best.json").read_text())["model"])
    assert ([a.path for a in client.list_artifacts(task_run.run_id, "report/hpo")]
            == [f"report/hpo/{TASK}.png"])


def test_compare_on_real_predictions(root: Path, mirror: Path, tmp_path: Path) -> None:
    from pubmedlm.blurb.compare import compare, load_run, paired_bootstrap

    # Paired bootstrap on real predictions: the gold beats the model; a run does not beat itself.
    run_dir = root / "data/finetune" / TASK
    rows, _ = _test_rows(root)
    gold_preds = tmp_path / "gold.jsonl"
    gold_preds.write_text("".join(json.dumps({"id": r["id"], "prediction": r["tags"]}) + "\n" for r in rows))
    model_preds = run_dir / "predictions/seed-0/test" / f"{TASK}.jsonl"
    gold_dir = root / "data/blurb_data"
    better = paired_bootstrap(TASK, gold_dir, gold_preds, model_preds, 200)
    assert better["diff"] > 0 and better["low"] > 0 and better["rows"] == len(rows)
    same = paired_bootstrap(TASK, gold_dir, model_preds, model_preds, 50)
    assert same["diff"] == same["low"] == same["high"] == 0

    # The command: a run against a copy whose seeds score 10 points more.
    other = tmp_path / "other" / "finetune"
    shutil.copytree(run_dir, other / TASK)
    res = json.loads((other / TASK / "results.json").read_text())
    for s in res["seeds"]:
        s["test_score"] += 10
    (other / TASK / "results.json").write_text(json.dumps(res))
    out = compare(load_run(str(other.parent), root), load_run("pipeline", root))
    # 1 seed: no Welch interval
    assert out["rows"][0]["diff"] == pytest.approx(10) and "low" not in out["rows"][0]
    text = _cli(root, mirror, "compare", str(other.parent), "pipeline", "--bootstrap", "100")
    assert "NCBI-disease" in text and "BLURB" in text
