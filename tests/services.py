"""Real infrastructure processes on localhost for the infra tests: PostgreSQL (Debian's package),
an S3-compatible server (moto in server mode) and the MLflow server of infra/mlflow, each started
in a private folder and stopped at the end."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from conftest import REPO, free_port

BIN = Path(sys.executable).parent


def _wait(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (even 401/404): up
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up: {log.read_text()[-3000:] if log.exists() else ''}")


@dataclass
class Postgres:
    """A private PostgreSQL cluster on 127.0.0.1 (run as the `postgres` user when we are root)."""

    folder: Path
    port: int
    bin_dir: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @classmethod
    def start(cls) -> Postgres:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql "
                               "(make system-deps does)")
        folder = Path(tempfile.mkdtemp(prefix="pubmedlm-pg-"))
        pg = cls(folder, free_port(), Path(found[-1]).parent)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        data = folder / "data"
        subprocess.run([*pg._as_owner, str(pg.bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth-local=trust", "--auth-host=scram-sha-256"], check=True, capture_output=True)
        subprocess.run([*pg._as_owner, str(pg.bin_dir / "pg_ctl"), "-D", str(data), "-l",
                        str(folder / "log"), "-w", "-o",
                        f"-p {pg.port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
        pg.sql(f"CREATE ROLE mlflow LOGIN PASSWORD '{pg.password}'")
        for db in ("mlflow", "mlflow_auth"):
            pg.sql(f"CREATE DATABASE {db} OWNER mlflow")
        return pg

    def sql(self, statement: str) -> str:
        return subprocess.run([*self._as_owner, str(self.bin_dir / "psql"), "-h", str(self.folder),
                               "-p", str(self.port), "-U", "postgres", "-tAc", statement],
                              check=True, capture_output=True, text=True).stdout

    def uri(self, db: str) -> str:
        return f"postgresql://mlflow:{self.password}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        subprocess.run([*self._as_owner, str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"),
                        "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class S3Server:
    """moto's S3-compatible server; its (dummy) keys are what the clients are given."""

    proc: subprocess.Popen
    url: str
    env: dict[str, str]

    @classmethod
    def start(cls, folder: Path, buckets: tuple[str, ...]) -> S3Server:
        import boto3

        port = free_port()
        log = folder / "moto.log"
        with open(log, "w") as f:
            proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=f,
                                    stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        _wait(url, proc, log)
        env = {"AWS_ACCESS_KEY_ID": "pubmedlm-test-key", "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(12),
               "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": url, "AWS_ENDPOINT_URL": url}
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        for b in buckets:
            s3.create_bucket(Bucket=b)
        return cls(proc, url, env)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@dataclass
class MlflowServer:
    """infra/mlflow/start-mlflow.sh: PostgreSQL store, S3 artifacts (proxied), basic auth."""

    env: dict[str, str]
    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        env = {**os.environ, **self.env, "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(self.port),
               "MLFLOW_WORKERS": "1", "MLFLOW_RUNTIME_DIR": str(self.folder / "runtime"),
               "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        log = self.folder / "mlflow-server.log"
        with open(log, "a") as f:
            self.proc = subprocess.Popen([str(REPO / "infra/mlflow/start-mlflow.sh")], env=env, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        _wait(f"{self.url}/health", self.proc, log, 180)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=60)
