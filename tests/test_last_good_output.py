"""A failed or interrupted run never destroys the last good output.

For corpus, vocab, pack and blurb-data, through the CLI on the real mirror: a good run, then a run
with a bad input, then a run stopped by SIGTERM; after each, the good run's output folder and
metrics file are byte-identical, no temporary folder is left, and the killed stage's MLflow run is
KILLED. Plus hermetic tests of the publication swap, the mirror check and `evaluate --name`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import REPO, dvc_files
from pubmedlm.infra.sources import MIRROR_ENV, SourceError, mirror_root
from pubmedlm.project import Interrupted, atomic_dir, publication, stop_on_signals

# stage -> (output folders, metrics file), relative to the project root
OUTPUTS = {
    "blurb_data": (["data/blurb_data"], "metrics/blurb_data.json"),
    "corpus": (["data/corpus"], "metrics/corpus.json"),
    "vocab": (["data/vocab", "reports/vocab"], "metrics/vocab.json"),
    "pack": (["data/pack"], "metrics/pack.json"),
}
# A bad input per stage (override, extra environment) and what the error says.
BAD = {
    "blurb_data": ([], {MIRROR_ENV: "/no/such/dir"}, "PUBMEDLM_DATA_MIRROR=/no/such/dir: no such folder"),
    "corpus": (['corpus.inputs=["corpus/no/such/file.xml"]'], {}, "corpus/no/such/file.xml"),
    "vocab": (["vocab.reference_tokenizer=/no/such/tokenizer"], {}, "vocab.reference_tokenizer"),
    "pack": (["pack.tokenizer=/no/such/tokenizer"], {}, "/no/such/tokenizer"),
}
# Overrides that make the SIGTERM'd run take long enough to be caught while it works.
SLOW = {
    "blurb_data": ["blurb_data.datasets=[BC5-chem, BC5-disease, NCBI-disease, JNLPBA, ChemProt, DDI]"],
    "corpus": ["corpus.max_documents=null"],
    "vocab": [],
    "pack": [],
}


def _snapshot(root: Path, stage: str) -> dict[str, bytes]:
    folders, metrics = OUTPUTS[stage]
    out = {f"{folder}/{rel}": data for folder in folders for rel, data in dvc_files(root / folder).items()}
    return out | {metrics: (root / metrics).read_bytes()}


def _leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for d in ("data", "reports", "metrics")
                  if (root / d).is_dir() for p in (root / d).glob(".*.tmp*"))


def _cli(root: Path, env: dict[str, str], stage: str, sets: list[str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "pubmedlm.cli", stage.replace("_", "-")]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _run(root: Path, env: dict[str, str], stage: str, sets: list[str] = ()) -> tuple[int, str]:
    proc = _cli(root, env, stage, list(sets))
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _statuses(root: Path, stage: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pubmedlm")
    runs = client.search_runs([exp.experiment_id], f"tags.`pubmedlm.stage` = '{stage}'",
                              order_by=["attributes.start_time ASC"])
    return [r.info.status for r in runs]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> tuple[Path, dict[str, str]]:
    """A project whose params make every stage tiny: two small BLURB datasets, one OHSUMED input
    capped at 400 documents, a 1,000-piece vocab, 64-token sequences."""
    root = tmp_path_factory.mktemp("last-good")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["runtime"].update(progress=False)
    params["blurb_data"]["datasets"] = ["BIOSSES", "NCBI-disease"]
    params["finetune"]["datasets"] = ["BIOSSES", "NCBI-disease"]
    params["corpus"].update(inputs=["corpus/pubmed_abstracts/ohsumed_single_23.tar.gz"], min_words=0,
                            exclude_blurb_test=False, max_documents=400)
    params["vocab"].update(vocab_size=1000, heldout_max_documents=100)
    params["pack"].update(seq_lengths=[64], nsp=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBMEDLM_", "MLFLOW_"))}
    env.update(PUBMEDLM_PROJECT_ROOT=str(root), PUBMEDLM_DATA_MIRROR=str(mirror),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    return root, env


@pytest.mark.parametrize("stage", ["blurb_data", "corpus", "vocab", "pack"])  # the DAG's order
def test_bad_input_and_sigterm_keep_the_last_good_output(site: tuple[Path, dict[str, str]],
                                                         stage: str) -> None:
    root, env = site
    rc, out = _run(root, env, stage)
    assert rc == 0, out
    good = _snapshot(root, stage)

    sets, extra_env, message = BAD[stage]
    rc, out = _run(root, env | extra_env, stage, sets)
    assert rc != 0 and message in out, out
    assert _snapshot(root, stage) == good
    assert _leftovers(root) == []

    proc = _cli(root, env, stage, SLOW[stage])
    deadline = time.monotonic() + 120
    # the run is stopped once it builds its new output beside the old one
    while not _leftovers(root) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "interrupted by SIGTERM" in out
    assert _snapshot(root, stage) == good
    assert _leftovers(root) == []
    assert _statuses(root, stage)[-1] == "KILLED"
    assert json.loads((root / OUTPUTS[stage][1]).read_text())  # still the good run's metrics


# Hermetic: the publication swap, signals, the mirror check and `evaluate --name`.


def _tree(folder: Path) -> dict[str, bytes]:
    return dvc_files(folder)


@pytest.fixture
def published(tmp_path: Path) -> Iterator[Path]:
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("old")
    yield final


def test_atomic_dir_replaces_only_on_success(published: Path) -> None:
    with atomic_dir(published) as tmp:
        (tmp / "b.txt").write_text("new")
        assert _tree(published) == {"a.txt": b"old"}  # untouched while the new one is built
    assert _tree(published) == {"b.txt": b"new"}
    assert sorted(p.name for p in published.parent.iterdir()) == ["out"]
    assert published.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("error", [ValueError("bad"), Interrupted(signal.SIGTERM)])
def test_a_failure_keeps_the_old_output_and_removes_the_new(published: Path, error: BaseException) -> None:
    metrics = published.parent / "metrics.json"
    metrics.write_text("{}\n")
    with pytest.raises(type(error)), publication(published) as staged:
        (staged.dirs[0] / "b.txt").write_text("new")
        staged.write_json(metrics, {"n": 1})
        raise error
    assert _tree(published) == {"a.txt": b"old"}
    assert metrics.read_text() == "{}\n"
    assert sorted(p.name for p in published.parent.iterdir()) == ["metrics.json", "out"]


def test_publication_writes_folders_and_metrics_together(published: Path) -> None:
    report, metrics = published.parent / "report", published.parent / "m" / "metrics.json"
    with publication(published, report) as staged:
        (staged.dirs[0] / "b.txt").write_text("new")
        (staged.dirs[1] / "r.md").write_text("report")
        staged.write_json(metrics, {"n": 1})
        assert not metrics.exists() and not report.exists()
    assert _tree(published) == {"b.txt": b"new"} and _tree(report) == {"r.md": b"report"}
    assert json.loads(metrics.read_text()) == {"n": 1}


def test_a_signal_during_publication_waits_until_it_is_complete(published: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM arriving mid-swap: the swap and the metrics file finish, then the stage stops."""
    from pubmedlm import project

    metrics, real = published.parent / "metrics.json", project.write_json

    def signal_then_write(path: Path, data: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered after the folder swap, before the metrics
        real(path, data)

    monkeypatch.setattr(project, "write_json", signal_then_write)
    with stop_on_signals(), pytest.raises(Interrupted), publication(published) as staged:
        (staged.dirs[0] / "b.txt").write_text("new")
        staged.write_json(metrics, {"n": 1})
    assert _tree(published) == {"b.txt": b"new"} and json.loads(metrics.read_text()) == {"n": 1}
    assert sorted(p.name for p in published.parent.iterdir()) == ["metrics.json", "out"]


def test_sigterm_raises_interrupted_only_inside_stop_on_signals() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert info.value.signum == signal.SIGTERM and "SIGTERM" in str(info.value)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_folder_left_aside_by_a_killed_publication_is_restored(tmp_path: Path) -> None:
    final = tmp_path / "out"
    aside = tmp_path / ".out.old-x1" / "out"
    aside.mkdir(parents=True)
    (aside / "a.txt").write_text("old")
    with pytest.raises(ValueError), atomic_dir(final):
        raise ValueError("bad")
    assert _tree(final) == {"a.txt": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_mirror_folder_that_does_not_exist_is_an_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "nope"))
    with pytest.raises(SourceError, match=f"{MIRROR_ENV}=.*nope: no such folder"):
        mirror_root()
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "file"))
    with pytest.raises(SourceError, match="no such folder"):
        mirror_root()
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    assert mirror_root() == tmp_path.resolve()
    monkeypatch.delenv(MIRROR_ENV)
    assert mirror_root() is None


def test_blurb_data_without_datasets_is_a_config_error() -> None:
    from pubmedlm.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"blurb_data\.datasets.*no dataset listed"):
        load_config(REPO / "params.yaml", ["blurb_data.datasets=[]"])


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "blurb", "a\\b", ""])
def test_evaluate_name_must_be_a_plain_name_other_than_the_pipelines(tmp_path: Path, name: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pubmedlm.cli import app

    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(tmp_path))
    (tmp_path / "preds").mkdir()
    result = CliRunner().invoke(app, ["evaluate", "--predictions", str(tmp_path / "preds"), "--name", name])
    assert result.exit_code == 2
    assert "--name" in result.output
    assert not (tmp_path / "reports").exists() and not (tmp_path.parent / "x.json").exists()


def test_evaluate_default_name_is_checked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pubmedlm.cli import app

    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(tmp_path))
    (tmp_path / "blurb").mkdir()
    result = CliRunner().invoke(app, ["evaluate", "--predictions", str(tmp_path / "blurb")])
    assert result.exit_code == 2 and "pipeline's own report" in result.output
