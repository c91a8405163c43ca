"""Real services on loopback shared by the tests and `make demo`: a free port, readiness, an `mlflow server`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, *, alive: Callable[[], bool] = lambda: True, timeout: float = 120.0) -> bool:
    """Poll ``url`` until it answers 200; False when ``alive()`` turns false or the time is up."""
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def start_mlflow_server(base: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a real `mlflow server` on 127.0.0.1 (sqlite backend and artifacts under ``base``) in its own
    session; returns the process and its URI once ``/health`` answers."""
    base.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    uri = f"http://127.0.0.1:{port}"
    # no job runner: MLflow 3 otherwise starts about eight huey consumer processes, each importing mlflow
    # (30-60 s of both cores at start) and outliving the server
    env = dict(os.environ, DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true",
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    exe = Path(sys.executable).parent / "mlflow"
    with open(base / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [str(exe) if exe.exists() else "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}", "--artifacts-destination",
             str(base / "artifacts"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base, start_new_session=True,
        )
    if not wait_for_http(f"{uri}/health", alive=lambda: proc.poll() is None):
        stop_process_group(proc.pid)
        raise RuntimeError(f"mlflow server did not start: {(base / 'server.log').read_text()[-2000:]}")
    return proc, uri


def stop_process_group(pid: int, wait: float = 20) -> None:
    """SIGTERM to a process started in its own session and its children, SIGKILL after ``wait`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def mlflow_server(base: Path, port: int | None = None) -> Iterator[str]:
    """A real `mlflow server` for the duration of the block; yields its URI."""
    proc, uri = start_mlflow_server(base, port)
    try:
        yield uri
    finally:
        stop_process_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


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
