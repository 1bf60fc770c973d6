"""Where things live: the project root, each stage's output folders, and atomic publication.

A stage's name is also its output folder (`data/<stage>/`), its metrics file
(`metrics/<stage>.json`) and its report folder (`reports/<stage>/`). Outputs are built in a
temporary sibling folder (`.<name>.tmp-*`) and published only on success, together with the
metrics file: the old folder is renamed aside, the new one renamed in, the metrics file replaced,
and only then the old folder deleted. A failure or a signal before that leaves the previous output
and metrics exactly as they were; the publication itself is shielded from SIGTERM/SIGINT
(`stop_on_signals`, installed by the CLI, defers them until it is done).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pubmedlm.errors import UserError


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding dvc.yaml or params.yaml."""
    env = os.environ.get("PUBMEDLM_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() or (folder / "params.yaml").is_file():
            return folder
    return here


def data_dir(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "data" / stage


def metrics_path(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "metrics" / f"{stage}.json"


def reports_dir(stage: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "reports" / stage


class Interrupted(BaseException):
    """A stage stopped by a signal (SIGTERM, SIGINT): raised in the main thread so every context
    manager unwinds (temporary folders removed, the MLflow run ended KILLED). Not a
    KeyboardInterrupt, which click would turn into a bare exit status 1."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def interrupted_by(error: BaseException) -> Interrupted | None:
    """The `Interrupted` behind `error`, if any: a signal handled while a library's compiled code
    waited (Ray's `wait`) comes back wrapped, e.g. as a `SystemError` caused by it."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, Interrupted):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


_shield = {"depth": 0, "pending": None, "received": None}


def _on_signal(signum: int, _frame: object) -> None:
    _shield["received"] = _shield["received"] or signum
    if _shield["depth"]:
        _shield["pending"] = signum  # raised once the publication in progress is complete
        return
    raise Interrupted(signum)


@contextmanager
def stop_on_signals(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """For the duration: these signals raise `Interrupted` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in signums}
    _shield["received"] = None
    try:
        yield
        stop_if_signalled()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_if_signalled() -> None:
    """Raise `Interrupted` if a signal arrived under `stop_on_signals`, even one whose `Interrupted` was
    lost: raised while Python ran a weakref callback or a `__del__`, it is printed and ignored, and the
    run would go on as if nothing had happened. Checked before every publication and at the end."""
    if _shield["received"] is not None:
        signum, _shield["received"] = _shield["received"], None
        raise Interrupted(signum)


@contextmanager
def _shielded() -> Iterator[None]:
    """Defer `stop_on_signals` signals until the (outermost) block is done, then raise one."""
    _shield["depth"] += 1
    try:
        yield
    finally:
        _shield["depth"] -= 1
    if not _shield["depth"] and _shield["pending"] is not None:
        pending, _shield["pending"], _shield["received"] = _shield["pending"], None, None
        raise Interrupted(pending)


class Staging:
    """What one publication will put in place: temporary folders (`dirs`, in the order of the
    finals) and JSON files (`write_json`, written at publication, after the folders)."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs
        self.files: dict[Path, Any] = {}

    def write_json(self, path: Path, data: Any) -> None:
        self.files[path] = data


def _restore_aside(final: Path) -> None:
    """Folders a run killed mid-publication (SIGKILL) left aside: put the old output back if the new
    one never arrived, else delete them."""
    for aside in final.parent.glob(f".{final.name}.old-*"):
        if not final.exists() and (aside / final.name).is_dir():
            (aside / final.name).rename(final)
        shutil.rmtree(aside, ignore_errors=True)


def _swap(tmp: Path, final: Path) -> Path | None:
    """Rename `final` aside (returned, to delete later) and `tmp` in; on failure, `final` is back."""
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; a published output is as readable as any folder
    aside = None
    if final.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        final.rename(aside / final.name)
    try:
        tmp.rename(final)
    except BaseException:
        if aside is not None:
            (aside / final.name).rename(final)
            aside.rmdir()
        raise
    return aside


@contextmanager
def publication(*finals: Path) -> Iterator[Staging]:
    """Yield empty temporary folders beside `finals`; on success they replace them and the staged
    JSON files are written; on error or signal they are removed and nothing is touched."""
    for final in finals:
        final.parent.mkdir(parents=True, exist_ok=True)
        _restore_aside(final)
    staging = Staging([])
    try:
        for final in finals:
            staging.dirs.append(Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent)))
        yield staging
        stop_if_signalled()  # a run told to stop never publishes
        with _shielded():
            asides = [_swap(tmp, final) for tmp, final in zip(staging.dirs, finals, strict=True)]
            for path, data in staging.files.items():
                write_json(path, data)
            for aside in asides:
                if aside is not None:
                    shutil.rmtree(aside, ignore_errors=True)
    finally:
        for tmp in staging.dirs:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already when published


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """`publication` of one folder: yield its temporary folder."""
    with publication(final) as staging:
        yield staging.dirs[0]


class Busy(UserError, RuntimeError):
    """Another run is writing the same outputs."""


@contextmanager
def output_lock(name: str, root: Path | None = None) -> Iterator[None]:
    """While held, no other run in this project may write `name`'s outputs (a stage, `tune@TASK`, a
    `pubmedlm blurb` model): a second run is refused at once with a `Busy` naming the holder. An
    advisory lock (`flock`) on `data/.locks/<name>.lock`, released by the OS however the holder ends,
    so a killed run never leaves a stale lock."""
    folder = (root or project_root()) / "data" / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{name.replace('/', '_')}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip() or "a process starting up"
            raise Busy(f"{name}: another run is writing these outputs ({holder}); wait for it to end "
                       "or stop it, then run again") from None
        command = " ".join(["pubmedlm", *sys.argv[1:]])
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}: `{command}` since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (sorted keys, stable bytes for DVC): a reader sees the old file or the
    new one, never part of one, also with two writers at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=True, allow_unicode=True), encoding="utf-8")
