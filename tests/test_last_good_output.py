"""A failed or interrupted run never destroys the last good output; two runs at once never corrupt one.

For blurb-data, corpus, vocab, pack, tune and finetune, through the CLI on the real mirror: a good
run, then a run with a bad input, then a run stopped by SIGTERM, then a rerun; after the failures
the good run's output folders and metrics file are byte-identical, no temporary folder is left, the
killed stage's MLflow run is KILLED and the processes it started (Ray's included) are gone; the
rerun succeeds. Two blurb-data runs started together: the second is refused naming the first, or
runs after it; the output is whole either way. Plus hermetic tests of the publication swap, the
output lock, the mirror check and `evaluate --name`.
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
from pubmedlm.project import Busy, Interrupted, atomic_dir, output_lock, publication, stop_on_signals

# stage -> (output folders, metrics file), relative to the project root
OUTPUTS = {
    "blurb_data": (["data/blurb_data"], "metrics/blurb_data.json"),
    "corpus": (["data/corpus"], "metrics/corpus.json"),
    "vocab": (["data/vocab", "reports/vocab"], "metrics/vocab.json"),
    "pack": (["data/pack"], "metrics/pack.json"),
    "tune": (["data/tune/BIOSSES"], "metrics/tune/BIOSSES.json"),
    "finetune": (["data/finetune/BIOSSES"], "metrics/finetune/BIOSSES.json"),
}
TASK_ARGS = {"tune": ["--task", "BIOSSES"], "finetune": ["--task", "BIOSSES"]}
# A bad input per stage (override, extra environment) and what the error says.
BAD = {
    "blurb_data": ([], {MIRROR_ENV: "/no/such/dir"}, "PUBMEDLM_DATA_MIRROR=/no/such/dir: no such folder"),
    "corpus": (['corpus.inputs=["corpus/no/such/file.xml"]'], {}, "corpus/no/such/file.xml"),
    "vocab": (["vocab.reference_tokenizer=/no/such/tokenizer"], {}, "vocab.reference_tokenizer"),
    "pack": (["pack.tokenizer=/no/such/tokenizer"], {}, "/no/such/tokenizer"),
    "tune": (["finetune.model=/no/such/model"], {}, "/no/such/model"),
    "finetune": (["finetune.model=/no/such/model"], {}, "was searched for model 'minilm'"),
}
# Overrides that make the SIGTERM'd run take long enough to be caught while it works.
SLOW = {
    "blurb_data": ["blurb_data.datasets=[BC5-chem, BC5-disease, NCBI-disease, JNLPBA, ChemProt, DDI]"],
    "corpus": ["corpus.max_documents=null"],
    "vocab": [],
    "pack": [],
    "tune": ["tune.num_samples=4", "tune.search.epochs=[4, 4]", "finetune.max_train_examples=null"],
    "finetune": ["finetune.seeds={default: 4}", "finetune.max_train_examples=null"],
}


def _snapshot(root: Path, stage: str) -> dict[str, bytes]:
    folders, metrics = OUTPUTS[stage]
    out = {f"{folder}/{rel}": data for folder in folders for rel, data in dvc_files(root / folder).items()}
    return out | {metrics: (root / metrics).read_bytes()}


def _leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for d in ("data", "reports", "metrics")
                  if (root / d).is_dir() for p in (root / d).glob(".*.tmp*"))


def _cli(root: Path, env: dict[str, str], stage: str, sets: list[str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "pubmedlm.cli", stage.replace("_", "-"), *TASK_ARGS.get(stage, [])]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _run(root: Path, env: dict[str, str], stage: str, sets: list[str] = ()) -> tuple[int, str]:
    proc = _cli(root, env, stage, list(sets))
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _descendants(pid: int) -> set[int]:
    """Processes started by `pid`, however deep (Ray's GCS, raylet and workers included)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _working(root: Path, proc: subprocess.Popen, stage: str) -> bool:
    """The run is building its new output: a temporary folder exists, or (tune, finetune) its
    MLflow run is open and a Ray worker runs a trial or seed (named `ray::<task>`, not IDLE)."""
    if _leftovers(root):
        return True
    if stage not in TASK_ARGS or not (root / "mlflow.db").exists():
        return False
    idle = (b"ray::IDLE", b"ray::DashboardAgent", b"ray::RuntimeEnvAgent")
    workers = [pid for pid in _descendants(proc.pid)
               if _cmdline(pid).startswith(b"ray::") and not _cmdline(pid).startswith(idle)]
    try:
        return bool(workers) and _statuses(root, stage)[-1] == "RUNNING"
    except Exception:  # the store is being written by the run
        return False


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _statuses(root: Path, stage: str | None) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pubmedlm")
    if exp is None:
        return []
    where = f"tags.`pubmedlm.stage` = '{stage}'" if stage else ""
    runs = client.search_runs([exp.experiment_id], where, order_by=["attributes.start_time ASC"])
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
    params["finetune"].update(model="minilm", seeds={"default": 1}, max_train_examples=32, max_length=64)
    params["tune"].update(num_samples=1, startup_trials=1,
                          search=params["tune"]["search"] | {"epochs": [1, 1], "batch_size": [16]})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBMEDLM_", "MLFLOW_"))}
    env.update(PUBMEDLM_PROJECT_ROOT=str(root), PUBMEDLM_DATA_MIRROR=str(mirror),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}")
    return root, env


@pytest.mark.parametrize("stage", ["blurb_data", "corpus", "vocab", "pack", "tune", "finetune"])  # DAG order
def test_bad_input_and_sigterm_keep_the_last_good_output(site: tuple[Path, dict[str, str]],
                                                         stage: str) -> None:
    root, env = site
    rc, out = _run(root, env, stage)
    assert rc == 0, out
    good = _snapshot(root, stage)

    sets, extra_env, message = BAD[stage]
    rc, out = _run(root, env | extra_env, stage, sets)
    assert rc == 2 and message in out, out
    assert _snapshot(root, stage) == good
    assert _leftovers(root) == []

    proc = _cli(root, env, stage, SLOW[stage])
    deadline = time.monotonic() + 180
    while not _working(root, proc, stage) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    started = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "interrupted by SIGTERM" in out
    assert _snapshot(root, stage) == good
    assert _leftovers(root) == []
    assert _statuses(root, stage)[-1] == "KILLED"
    assert json.loads((root / OUTPUTS[stage][1]).read_text())  # still the good run's metrics
    deadline = time.monotonic() + 30  # what the run started (Ray's processes too) stops with it
    while _alive(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(started), [_cmdline(p)[:80] for p in _alive(started)]

    rc, out = _run(root, env, stage)  # and a rerun succeeds
    assert rc == 0, out
    assert _statuses(root, stage)[-1] == "FINISHED"


def test_two_runs_at_once_leave_a_whole_output(site: tuple[Path, dict[str, str]]) -> None:
    """The second of two simultaneous blurb-data runs is refused naming the first (or, when the first
    is already done, runs after it); the output is the same complete output either way."""
    root, env = site
    assert _run(root, env, "blurb_data")[0] == 0
    good = dvc_files(root / "data/blurb_data")
    procs = [_cli(root, env, "blurb_data", []) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read()) for p in procs]
    assert any(rc == 0 for rc, _ in results), results
    for rc, out in results:
        assert rc == 0 or (rc == 2 and "another run is writing these outputs (pid" in out), out
    assert dvc_files(root / "data/blurb_data") == good
    assert _leftovers(root) == []


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


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_whose_interrupted_python_ignored_still_stops_the_publication(tmp_path: Path) -> None:
    """SIGTERM handled while Python runs a weakref callback: the handler's Interrupted is printed and
    ignored there (seen in a pack run that then published and exited 0); the run must stop anyway."""
    import weakref

    class Resource:
        pass

    def callback() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here, inside the callback: its exception goes nowhere

    final = tmp_path / "out"
    with pytest.raises(Interrupted), stop_on_signals(), publication(final) as staged:
        (staged.dirs[0] / "a.txt").write_text("new")
        resource = Resource()
        weakref.finalize(resource, callback)
        del resource  # the callback runs (and swallows the Interrupted) here
        reached = True
    assert reached and not final.exists() and list(tmp_path.iterdir()) == []


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


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    held = rf"tune@BIOSSES: another run is writing these outputs \(pid {os.getpid()} "
    with output_lock("tune@BIOSSES", tmp_path):
        with pytest.raises(Busy, match=held), output_lock("tune@BIOSSES", tmp_path):
            pass
        with output_lock("tune@NCBI-disease", tmp_path):  # another output: no conflict
            pass
    with output_lock("tune@BIOSSES", tmp_path):  # released on exit
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path; from pubmedlm.project import output_lock\n"
            "with output_lock('corpus', Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Busy, match=rf"pid {holder.pid} on .*`pubmedlm "), output_lock("corpus", tmp_path):
        pass
    holder.kill()
    holder.wait()
    with output_lock("corpus", tmp_path):
        pass


def test_the_cli_refuses_a_stage_whose_outputs_are_being_written(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pubmedlm.cli import app

    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with output_lock("corpus", tmp_path):
        result = CliRunner().invoke(app, ["corpus", "--params", str(tmp_path / "params.yaml")])
    assert isinstance(result.exception, Busy) and "corpus: another run is writing" in str(result.exception)
    assert not (tmp_path / "data" / "corpus").exists()
