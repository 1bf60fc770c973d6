"""Experiment tracking: stage runs, child runs and metric logging in MLflow (the Model Registry side
is `pubmedlm.registry`; the hashes behind lineage tags are `infra.lineage`).

Every stage runs inside `stage_run(stage, cfg)`: one MLflow run named after the stage, in the
project's experiment, carrying the flattened params of the sections the stage depends on, its
metrics and report artifacts, and lineage tags:

- `git.commit`, `git.dirty`: the code that ran;
- `dvc.<path>`: the DVC hash (md5, `.dir` for folders) of each DVC-tracked input;
- `source.<path>.sha256`: every external source read;
- `pubmedlm.version`, `pubmedlm.stage`, `pubmedlm.profile` (the params file).

The tracking URI and its check before a stage are `infra.tracking_uri`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pubmedlm import __version__
from pubmedlm.config import Config
from pubmedlm.infra.lineage import git_state, lineage_hash
from pubmedlm.infra.tracking_uri import tracking_uri
from pubmedlm.project import interrupted_by, project_root


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {"a.b.c": "value"} with lists as JSON (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, ensure_ascii=False)
        else:
            out[name] = str(value)
    return out


@dataclass(frozen=True)
class RunRef:
    """Where a run lives, in plain data a Ray worker or trial can take along."""

    uri: str
    experiment_id: str
    run_id: str


class StageRun:
    """Handle passed to a stage while its MLflow run is active."""

    def __init__(self, mlflow_module: Any, root: Path) -> None:
        self._mlflow = mlflow_module
        self.root = root
        self.run_id: str = mlflow_module.active_run().info.run_id
        self.experiment_id: str = mlflow_module.active_run().info.experiment_id
        self.uri: str = mlflow_module.get_tracking_uri()
        self.cost_logged = False

    @property
    def ref(self) -> RunRef:
        return RunRef(self.uri, self.experiment_id, self.run_id)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        numeric = {k: float(v) for k, v in flatten(metrics).items() if _is_number(v)}
        if numeric:
            self._mlflow.log_metrics(numeric, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        else:
            self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_cost(self, entry: Mapping[str, Any], prefix: str = "") -> None:
        """The stage's cost-ledger entry (`infra.cost`): `<prefix>cost/*` metrics and the device kind
        (a task's run holds both its search's and its seeds': `tune/cost/*`, `finetune/cost/*`)."""
        from pubmedlm.infra import cost

        self._mlflow.log_metrics(cost.as_metrics(dict(entry), prefix))
        self.set_tags({"cost.device": entry["device"]})
        self.cost_logged = True

    def add_sources(self, sha256_by_path: Mapping[str, str]) -> None:
        self.set_tags({f"source.{p}.sha256": h for p, h in sha256_by_path.items()})

    def add_inputs(self, paths: list[Path]) -> None:
        """Tag the DVC hash of each DVC-tracked input (paths relative to the project root)."""
        tags = {}
        for p in paths:
            rel = p.resolve().relative_to(self.root).as_posix() if p.is_absolute() else p.as_posix()
            h = lineage_hash(self.root, rel)
            if h:
                tags[f"dvc.{rel}"] = h
        self.set_tags(tags)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value not in ("True", "False")


@contextmanager
def stage_run(stage: str, cfg: Config, sections: tuple[str, ...], params_file: str | Path, *,
              run_name: str | None = None, experiment: str | None = None,
              resume_run_id: str | None = None, tags: Mapping[str, Any] | None = None) -> Iterator[StageRun]:
    """Open the MLflow run of one stage; the run ends FAILED if the stage raises, KILLED if it is
    interrupted (KeyboardInterrupt, `project.Interrupted`, also wrapped by a library).

    `run_name` (default: the stage) and `experiment` (default: runtime.mlflow_experiment) name it;
    `resume_run_id` reopens an existing run instead (fine-tuning adds its seeds to the task's run
    that the tune stage opened)."""
    import mlflow

    root = project_root()
    mlflow.set_tracking_uri(tracking_uri(cfg, root))
    if resume_run_id:
        mlflow.set_experiment(experiment_id=mlflow.get_run(resume_run_id).info.experiment_id)
    else:
        mlflow.set_experiment(experiment or cfg.runtime.mlflow_experiment)
    params: dict[str, str] = {}
    for name in sections:
        params.update(flatten(cfg.section(name), f"{name}."))
    start = {"run_id": resume_run_id} if resume_run_id else {"run_name": run_name or stage}
    with mlflow.start_run(**start) as run:
        if not resume_run_id:
            mlflow.log_params(params)
        mlflow.set_tags(
            {
                "pubmedlm.stage": stage,
                "pubmedlm.version": __version__,
                "pubmedlm.params_file": str(params_file),
                **git_state(root),
                **{k: str(v) for k, v in (tags or {}).items()},
            }
        )
        handle = StageRun(mlflow, root)
        assert handle.run_id == run.info.run_id
        started = time.perf_counter()
        try:
            yield handle
            if not handle.cost_logged:  # a stage in this process on one core (its own entry if it has one)
                from pubmedlm.infra.cost import host_entry

                handle.log_cost(host_entry(time.perf_counter() - started))
        except BaseException as e:  # Ctrl-C, SIGTERM under `project.stop_on_signals`: KILLED
            stop = interrupted_by(e)
            if stop is None and not isinstance(e, KeyboardInterrupt):
                raise
            mlflow.end_run("KILLED")
            if stop is not None and stop is not e:
                raise stop from None  # unwrapped: the caller sees the signal, not the library's wrapper
            raise


class RunLogger:
    """Logs metrics to an existing run from another process (a Ray worker), without fluent state.

    Metrics are queued and sent by a background thread, so a tracking server that is down or slow
    delays them but never the training step. A batch that fails stays first in the queue and is
    retried every `retry_seconds`: metrics logged while the server was away arrive, in order, once
    it is back. `flush(timeout)` waits for the queue to empty (end of training); `failures` counts
    the attempts that failed.
    """

    def __init__(self, run_id: str, uri: str, retry_seconds: float = 2.0) -> None:
        import threading
        from collections import deque

        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=uri)
        self.failures = 0
        self.retry_seconds = retry_seconds
        self._pending: deque[list[Any]] = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        import threading
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in flatten(metrics).items() if _is_number(v)]
        if not batch:
            return
        with self._cv:
            self._pending.append(batch)
            self._cv.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._send, name="mlflow-metrics", daemon=True)
                self._thread.start()

    def _send(self) -> None:
        import time

        while True:
            with self._cv:
                while not self._pending:
                    self._cv.wait()
                batch = self._pending[0]
            try:
                self.client.log_batch(self.run_id, metrics=batch)
            except Exception:
                self.failures += 1
                time.sleep(self.retry_seconds)
                continue
            with self._cv:
                self._pending.popleft()
                self._cv.notify_all()

    @property
    def pending(self) -> int:
        """Metric batches not yet delivered."""
        return len(self._pending)

    def flush(self, timeout: float = 600.0) -> bool:
        """Wait until every queued metric is sent (True) or `timeout` seconds pass (False)."""
        import time

        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._cv.wait(left)
            return not self._pending


class ChildRun(RunLogger):
    """A run nested under a parent (a tuning trial, a fine-tuning seed), created from any process.

    Created RUNNING with its parameters and tags; `end(status)` closes it (FINISHED, FAILED or
    KILLED). A tracking server that cannot be reached at creation is an error (nothing has been
    computed yet); later metrics are queued and retried, as in `RunLogger`."""

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str, name: str,
                 params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        all_tags = {"mlflow.parentRunId": parent_run_id, "mlflow.runName": name,
                    **{k: str(v) for k, v in (tags or {}).items()}}
        run = client.create_run(experiment_id, run_name=name, tags=all_tags)
        super().__init__(run.info.run_id, uri)
        if params:
            from mlflow.entities import Param

            client.log_batch(self.run_id, params=[Param(k, v) for k, v in flatten(params).items()])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=status)


def end_run(uri: str, run_id: str, status: str, tags: Mapping[str, Any] | None = None) -> None:
    """Close a run from outside it (trials that Ray stopped or that crashed)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, str(value))
    client.set_terminated(run_id, status=status)


def child_runs(uri: str, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """The runs nested under a parent: id, name, status, tags, params and latest metrics."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracking_uri=uri).search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=5000)
    return [{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
             "tags": dict(r.data.tags), "params": dict(r.data.params), "metrics": dict(r.data.metrics)}
            for r in runs]


def latest_stage_run(uri: str, experiment: str, stage: str) -> Any | None:
    """The latest finished run of a pipeline stage in an experiment (None: never ran there)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id],
                              f"tags.`pubmedlm.stage` = '{stage}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def task_run_tags(task: str, model_label: str) -> dict[str, str]:
    """The tags that make a run a task's parent run (trials and seeds are its children)."""
    return {"pubmedlm.kind": "task", "pubmedlm.task": task, "pubmedlm.model": model_label}


def find_task_run(uri: str, experiment: str, task: str, model_label: str,
                  extra: Mapping[str, str] | None = None) -> RunRef | None:
    """The latest parent run of `task` fine-tuning `model_label` on this tracking server (found by
    its tags: versioned outputs hold no run ids, so a project moved to another server finds its
    runs there, or none); `extra` tags narrow it (a study's variant: study, variant, group run)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    tags = {**task_run_tags(task, model_label), **(extra or {})}
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([exp.experiment_id], where, order_by=["attributes.start_time DESC"],
                              max_results=1)
    return RunRef(uri, exp.experiment_id, runs[0].info.run_id) if runs else None


def open_group_run(uri: str, experiment: str, name: str, key: Mapping[str, str],
                   tags: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None) -> RunRef:
    """A parent run grouping others (a study's variant: its tasks' runs nest under it through the
    `mlflow.parentRunId` tag): the latest run carrying the `key` tags, set RUNNING again, or a new
    one with `key`, `tags` and `params`. Closed with `end_run`."""
    from contextlib import suppress

    from mlflow import MlflowClient
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri)
    if client.get_experiment_by_name(experiment) is None:
        with suppress(MlflowException):  # or created meanwhile by a variant running beside this one
            client.create_experiment(experiment)
    exp = client.get_experiment_by_name(experiment)
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in key.items())
    found = client.search_runs([exp.experiment_id], where, order_by=["attributes.start_time DESC"],
                               max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return RunRef(uri, exp.experiment_id, found[0].info.run_id)
    run = client.create_run(exp.experiment_id, run_name=name,
                            tags={**key, **{k: str(v) for k, v in (tags or {}).items()}})
    if params:
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flatten(params).items()])
    return RunRef(uri, exp.experiment_id, run.info.run_id)


def metric_history(uri: str, run_id: str, names: list[str]) -> dict[str, list[tuple[int, float]]]:
    """`{metric: [(step, value), ...]}` of a run (metrics it never logged are left out)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    out = {}
    for name in names:
        points = client.get_metric_history(run_id, name)
        if points:
            out[name] = [(m.step, m.value) for m in points]
    return out


def training_history(uri: str, run: Any, names: list[str]) -> dict[str, list[tuple[int, float]]]:
    """A pretraining run's curves, including the attempts before it: a stage rerun after a crash
    (or on a finished Ray run) resumes the same Ray run (tag `ray.run_name`) in a new MLflow run,
    so its history is spread over several runs; later attempts win at the same step."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    name = run.data.tags.get("ray.run_name")
    runs = [run]
    if name:
        runs = client.search_runs([run.info.experiment_id], f"tags.`ray.run_name` = '{name}'",
                                  order_by=["attributes.start_time ASC"], max_results=100)
    merged: dict[str, dict[int, float]] = {}
    for r in runs:
        for metric, points in metric_history(uri, r.info.run_id, names).items():
            merged.setdefault(metric, {}).update(dict(points))
    return {m: sorted(points.items()) for m, points in merged.items()}


def log_artifact_to(uri: str, run_id: str, path: Path, artifact_path: str | None = None) -> None:
    """Attach a file to an existing run (finished or not): a report to the run it describes."""
    from mlflow import MlflowClient

    MlflowClient(uri).log_artifact(run_id, str(path), artifact_path)
