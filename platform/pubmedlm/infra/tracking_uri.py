"""Where MLflow records runs: the tracking URI and its check before a stage runs any compute.

Tracking URI: `MLFLOW_TRACKING_URI` if set, else `runtime.mlflow_uri`, else a SQLite store
`mlflow.db` in the project root. `check_tracking` turns what would fail late (an unknown scheme, a
SQLite file in a folder that cannot be written, an unreachable or refusing server) into one
`TrackingError` naming the URI, before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pubmedlm.config import Config
from pubmedlm.errors import UserError
from pubmedlm.project import project_root

# The schemes MLflow's tracking-store registry serves ('' and file: a local folder); a database
# scheme may name its driver (`postgresql+psycopg2://`).
SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


def tracking_uri(cfg: Config, root: Path | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if cfg.runtime.mlflow_uri:
        return cfg.runtime.mlflow_uri
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


class TrackingError(UserError, RuntimeError):
    """The tracking store cannot be used (unknown scheme, unwritable SQLite folder, unreachable
    server, refused credentials)."""


def check_scheme(uri: str) -> None:
    scheme = urlsplit(uri).scheme.lower() if "://" in uri or uri.startswith("file:") else ""
    if scheme and scheme.split("+", 1)[0] not in SCHEMES:
        raise TrackingError(f"MLflow tracking URI {uri}: unsupported scheme '{scheme}'; nothing was run. "
                            f"Accepted: {', '.join(s + '://' for s in SCHEMES)} or a local folder path "
                            "(set MLFLOW_TRACKING_URI / runtime.mlflow_uri)")


def check_sqlite(uri: str) -> None:
    """A `sqlite:///path` store must lie in an existing folder this process can write (SQLite writes
    its journal beside the file): otherwise MLflow retries for minutes before it fails."""
    if not uri.lower().startswith("sqlite:///"):
        return
    name = uri[len("sqlite:///"):].split("?", 1)[0]
    if not name or name == ":memory:":
        return
    path = Path(name)
    folder = path.parent
    problem = ("its folder does not exist" if not folder.is_dir()
               else "its folder cannot be written" if not os.access(folder, os.W_OK | os.X_OK)
               else "the file cannot be written" if path.exists() and not os.access(path, os.R_OK | os.W_OK)
               else "")
    if problem:
        raise TrackingError(f"MLflow tracking store {path} ({uri}): {problem}; nothing was run. Point "
                            "MLFLOW_TRACKING_URI / runtime.mlflow_uri at a writable place")


def check_tracking(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before any compute: the scheme must be one MLflow serves, a SQLite store must be
    writable, an http(s) tracking server must answer and accept the credentials of the environment
    (MLFLOW_TRACKING_USERNAME / _PASSWORD or _TOKEN)."""
    check_scheme(uri)
    check_sqlite(uri)
    if not uri.startswith(("http://", "https://")):
        return
    _check_server(uri, timeout)


def _check_server(uri: str, timeout: float) -> None:
    import requests

    auth = None
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    headers = ({"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
               if os.environ.get("MLFLOW_TRACKING_TOKEN") else {})
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    try:
        # connecting must succeed within `timeout`; a slow answer from a busy server is no reason to stop
        resp = requests.post(url, json={"max_results": 1}, auth=auth, headers=headers, timeout=(timeout, 300))
    except requests.ReadTimeout:
        return
    except requests.RequestException as e:
        raise TrackingError(f"MLflow tracking server {uri} is unreachable ({type(e).__name__}); "
                            "nothing was run. Start it, or point MLFLOW_TRACKING_URI / runtime.mlflow_uri "
                            "elsewhere") from None
    if resp.status_code in (401, 403):
        who = f"user {auth[0]!r}" if auth else "no credentials"
        raise TrackingError(f"MLflow tracking server {uri} refused the request ({resp.status_code}, {who}); "
                            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (environment or "
                            "~/.mlflow/credentials), never in params")
