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
