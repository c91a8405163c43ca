"""Real services on loopback shared by the tests and `make demo`.

The servers themselves (an `mlflow server`, plain or basic-auth, PostgreSQL, the S3-compatible object store and
the stack of all three) live in ``leanops.tools.services``, which adopters and the harness use too; this module
re-exports them for the tests and adds what only tests need (load, example data, engine clean-up).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from leanops.tools.services import (
    AuthServer,
    ObjectStore,
    Postgres,
    Stack,
    User,
    backend_stack,
    free_port,
    mlflow_auth_server,
    mlflow_server,
    object_store,
    postgres,
    start_mlflow_auth_server,
    start_mlflow_server,
    start_object_store,
    start_postgres,
    stop_process_group,
    stop_server,
    wait_for_http,
)

__all__ = ["AuthServer", "ObjectStore", "Postgres", "Stack", "User", "backend_stack", "free_port",
           "mlflow_auth_server", "mlflow_server", "object_store", "postgres", "start_mlflow_auth_server",
           "start_mlflow_server", "start_object_store", "start_postgres", "stop_process_group", "stop_server",
           "wait_for_http"]


def remove_deployment(name: str) -> None:
    """Every container, the network and the state volume of one canary deployment (the engine is shared)."""
    import docker

    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"io.leanops.canary.app={name}"}):
        c.remove(force=True)
    for n in client.networks.list(names=[f"leanops-{name}"]):
        n.remove()
    try:
        client.volumes.get(f"leanops-{name}-state").remove(force=True)
    except docker.errors.NotFound:
        pass


CHURN = Path(__file__).resolve().parents[1] / "examples" / "churn"
CHURN_FEATURES = ["contract", "payment_method", "internet_service", "tenure_months", "monthly_charges",
                  "total_charges", "support_calls", "senior_citizen"]


def copy_example(dest: Path) -> Path:
    """The churn example's committed files (no pipeline outputs) copied into ``dest``."""
    kit = CHURN.parents[1]
    names = subprocess.run(["git", "-C", str(kit), "ls-files", "examples/churn"], capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        target = dest / Path(name).relative_to("examples/churn")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kit / name, target)
    return dest


def churn_source(repo: Path, pg: Postgres, *, message: str = "the source table") -> tuple[str, dict[str, str]]:
    """examples/churn's source table in a new database of ``pg``, filled with the committed rows (``source.py``);
    params.yaml's fetch.url points at it and the lock records fetch as it is (the table holds the committed
    rows, so only a refresh reads it), committed in ``repo`` (a git repository of the example). Returns the URL
    (no password) and the environment holding its password (``PGPASSWORD``)."""
    import os
    import re
    import sys

    url = f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{pg.create_database('churn')}"
    env = {"PGPASSWORD": pg.password}
    full = dict(os.environ, DVC_NO_ANALYTICS="1", **env)
    subprocess.run([sys.executable, "source.py", url, "data/raw/churn.csv"], cwd=repo, env=full, check=True,
                   capture_output=True)
    params = repo / "params.yaml"
    text, found = re.subn(r'(?m)^  url: "[^"]*"', f'  url: "{url}"', params.read_text(), count=1)
    if found != 1:
        raise RuntimeError(f"{params}: no fetch.url line to point at the source table")
    params.write_text(text)
    subprocess.run([sys.executable, "-m", "dvc", "commit", "-f", "-q", "fetch"], cwd=repo, env=full, check=True,
                   capture_output=True)
    git_env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=git_env)
    subprocess.run(["git", "commit", "-qm", message, "--allow-empty"], cwd=repo, check=True, env=git_env)
    return url, env


def add_customers(repo: Path, url: str, env: dict[str, str], *, rows: int, first_id: int, seed: int,
                  out: Path) -> str:
    """New customers of a shifted population (``generate_data.py --shift 1``) into the source table; the CSV
    of those rows is left at ``out``. Returns source.py's line ("N rows added, M in all")."""
    import os
    import sys

    subprocess.run([sys.executable, "generate_data.py", "--rows", str(rows), "--shift", "1", "--seed", str(seed),
                    "--first-id", str(first_id), "--out", str(out)], cwd=repo, check=True, capture_output=True)
    res = subprocess.run([sys.executable, "source.py", url, str(out)], cwd=repo, check=True, capture_output=True,
                         text=True, env=dict(os.environ, **env))
    return res.stderr.strip()


def remove_images(repository: str) -> None:
    """Every local image of ``repository`` (REGISTRY/NAMESPACE/NAME): the engine is shared between tests."""
    import docker

    client = docker.from_env()
    for image in client.images.list(name=repository):
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.APIError:
            pass


def churn_records(n: int = 200) -> list[dict[str, object]]:
    """The first ``n`` rows of the churn example, as the model server's request records."""
    import pandas as pd

    frame = pd.read_csv(CHURN / "data" / "raw" / "churn.csv", nrows=n)[CHURN_FEATURES]
    return list(json.loads(frame.to_json(orient="records")))


@dataclass
class Load:
    """About ``rate`` requests per second to ``url`` (one row each, a new connection each) until stopped."""

    url: str
    rate: float = 100.0
    timeout: float = 10.0
    results: list[tuple[float, object]] = field(default_factory=list)  # (start, status or exception name)
    records: list[dict[str, object]] = field(default_factory=list)  # request rows; default: the churn example's

    def __post_init__(self) -> None:
        self._rows = self.records or churn_records(200)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._workers: list[threading.Thread] = []

    def _one(self, i: int) -> None:
        body = json.dumps({"records": [self._rows[i % len(self._rows)]]}).encode()
        start = time.monotonic()
        status: object
        try:
            req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except Exception as exc:  # noqa: BLE001 - a client failure, counted by its kind
            status = type(exc).__name__
        with self._lock:
            self.results.append((start, status))

    def _run(self) -> None:
        t0, i = time.monotonic(), 0
        while not self._stop.is_set():
            worker = threading.Thread(target=self._one, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)
            i += 1
            time.sleep(max(0.0, t0 + i / self.rate - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for w in self._workers:
            w.join(self.timeout + 5)

    @property
    def failures(self) -> list[tuple[float, object]]:
        return [(t, s) for t, s in self.results if s != 200]

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for _, s in self.results:
            kinds[str(s)] = kinds.get(str(s), 0) + 1
        return f"{len(self.results)} requests: {kinds}"
