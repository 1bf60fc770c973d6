"""Bad input that used to end in a traceback ends in one line naming what to fix (CLI: `error: ...`,
exit 2): a prediction file that is not UTF-8, an unknown tracking-URI scheme, a SQLite tracking
store in a folder that cannot be written, a corpus shard cut mid-line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from pubmedlm.blurb.formats import json_lines
from pubmedlm.blurb.predictions import PredictionError
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.shards import iter_texts
from pubmedlm.errors import UserError
from pubmedlm.infra.tracking_uri import TrackingError, check_tracking


def test_these_errors_are_user_errors() -> None:
    assert all(issubclass(e, UserError) for e in (PredictionError, TrackingError, CorpusError))


def test_a_prediction_file_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "NCBI-disease.jsonl"
    path.write_bytes(b'{"id": "a", "prediction": "x"}\n{"id": "b", "prediction": "caf\xe9"}\n')
    with pytest.raises(PredictionError, match=rf"{path}:2: not UTF-8 text \(byte 0xe9 at column 31\)"):
        list(json_lines(path, PredictionError))


@pytest.mark.parametrize("uri", ["bogus://x", "ftp://host/path", "s3://bucket"])
def test_an_unknown_tracking_scheme_names_the_uri_and_the_accepted_ones(uri: str) -> None:
    with pytest.raises(TrackingError) as err:
        check_tracking(uri)
    assert uri in str(err.value) and "sqlite://" in str(err.value) and "https://" in str(err.value)


@pytest.mark.parametrize("uri", ["sqlite:///:memory:", "/tmp/mlruns", "file:///tmp/mlruns",
                                 "postgresql+psycopg2://u@h/db"])
def test_accepted_tracking_uris_pass(uri: str) -> None:
    check_tracking(uri)


def test_a_sqlite_store_that_cannot_be_written_fails_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    db = blocker / "mlflow.db"
    with pytest.raises(TrackingError, match=f"{db}.*its folder does not exist"):
        check_tracking(f"sqlite:///{db}")
    check_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder is only refused for others
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(TrackingError, match="its folder cannot be written"):
            check_tracking(f"sqlite:///{locked / 'mlflow.db'}")


@pytest.mark.parametrize("uri", ["bogus://x", "sqlite:////nonexistent-folder-pubmedlm/mlflow.db"])
def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path, uri: str) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(tmp_path), "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", "vocab"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert "error:" in out and uri in "".join(out.split())


def test_a_shard_cut_mid_line_names_shard_and_line(tmp_path: Path) -> None:
    shard = tmp_path / "train-00000.jsonl"
    shard.write_text('{"id": "1", "source": "pubmed", "text": "one"}\n{"id": "2", "source": "pub',
                     encoding="utf-8")
    texts = iter_texts([shard])
    assert next(texts) == "one"
    with pytest.raises(CorpusError, match=rf"{shard}:2: not a complete JSON record"):
        next(texts)
