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
import urllib.parse
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


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own process group, and reap it."""
    stop_process_group(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def mlflow_server(base: Path, port: int | None = None) -> Iterator[str]:
    """A real `mlflow server` for the duration of the block; yields its URI."""
    proc, uri = start_mlflow_server(base, port)
    try:
        yield uri
    finally:
        stop_server(proc)


@dataclass(frozen=True)
class User:
    """A user of the basic-auth tracking server."""

    username: str
    password: str

    def env(self) -> dict[str, str]:
        """The variables MLflow's client and ``leanops.tracking`` read the credential from."""
        return {"MLFLOW_TRACKING_USERNAME": self.username, "MLFLOW_TRACKING_PASSWORD": self.password}

    def header(self) -> str:
        import base64

        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


@dataclass
class AuthServer:
    """A running `mlflow server --app-name basic-auth`: its URI and three users.

    ``admin`` (the auth config's admin), ``writer`` (MANAGE on what ``share`` sets up), ``reader`` (READ
    only: the auth config's default permission is READ, and ``share`` grants READ explicitly).
    """

    uri: str
    base: Path
    admin: User
    writer: User
    reader: User

    def call(self, user: User | None, method: str, endpoint: str,
             payload: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
        """One REST call as ``user`` (None: no credential); (HTTP status, JSON body) whatever the status.
        ``endpoint`` is relative to ``/api/``, e.g. ``2.0/mlflow/runs/create``."""
        url = f"{self.uri}/api/{endpoint}"
        data = None
        if payload is not None and method == "GET":
            url += "?" + urllib.parse.urlencode(payload)
        elif payload is not None:
            data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["Authorization"] = user.header()
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, dict(json.loads(body or b"{}"))
        except (json.JSONDecodeError, TypeError, ValueError):
            return status, {"text": body.decode("utf-8", "replace")[:500]}

    def admin_call(self, method: str, endpoint: str, payload: dict[str, object] | None = None) -> dict[str, object]:
        """A REST call as the admin that must succeed."""
        status, body = self.call(self.admin, method, endpoint, payload)
        if status != 200:
            raise RuntimeError(f"{method} {endpoint} as admin: HTTP {status} {body}")
        return body

    def grant(self, user: User, resource_type: str, resource_id: str, permission: str) -> None:
        """``permission`` (READ, EDIT, MANAGE, NO_PERMISSIONS) for ``user`` on one experiment (by id) or
        registered model (by name)."""
        self.admin_call("POST", "3.0/mlflow/users/permissions/grant",
                        {"username": user.username, "resource_type": resource_type, "resource_id": resource_id,
                         "permission": permission})

    def share(self, model: str, experiment: str | None = None) -> str:
        """The experiment (default: the model's name) and the registered model, created by the admin when
        missing; MANAGE for the writer, READ for the reader on both. Returns the experiment's id."""
        name = experiment or model
        found = self.call(self.admin, "GET", "2.0/mlflow/experiments/get-by-name", {"experiment_name": name})
        exp = found[1].get("experiment") if found[0] == 200 else None
        if isinstance(exp, dict):
            exp_id = str(exp["experiment_id"])
        else:
            exp_id = str(self.admin_call("POST", "2.0/mlflow/experiments/create", {"name": name})["experiment_id"])
        status, _ = self.call(self.admin, "GET", "2.0/mlflow/registered-models/get", {"name": model})
        if status != 200:
            self.admin_call("POST", "2.0/mlflow/registered-models/create", {"name": model})
        for user, permission in ((self.writer, "MANAGE"), (self.reader, "READ")):
            self.grant(user, "experiment", exp_id, permission)
            self.grant(user, "registered_model", model, permission)
        return exp_id


AUTH_CONFIG = """\
[mlflow]
default_permission = READ
database_uri = sqlite:///{db}
admin_username = {admin}
admin_password = {password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# a checked password is remembered for a while: PBKDF2 costs about a second per request on a busy 2-core machine
auth_cache_ttl_seconds = 600
"""


def start_mlflow_auth_server(base: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], AuthServer]:
    """Start `mlflow server --app-name basic-auth` on 127.0.0.1 in its own session: sqlite backend and
    artifacts under ``base``, its own auth database, the admin's password through the auth config file
    (``MLFLOW_AUTH_CONFIG_PATH``), no job runner; then the users ``writer`` and ``reader`` (random passwords)."""
    import secrets

    base.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    uri = f"http://127.0.0.1:{port}"
    admin = User("admin", secrets.token_urlsafe(18))
    config = base / "basic_auth.ini"
    config.write_text(AUTH_CONFIG.format(db=base / "basic_auth.db", admin=admin.username, password=admin.password))
    config.chmod(0o600)
    env = dict(os.environ, DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true",
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_AUTH_CONFIG_PATH=str(config),
               MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_TRACKING_TOKEN", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        env.pop(name, None)
    exe = Path(sys.executable).parent / "mlflow"
    with open(base / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [str(exe) if exe.exists() else "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
             "--port", str(port), "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
             "--artifacts-destination", str(base / "artifacts"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base, start_new_session=True,
        )
    try:
        if not wait_for_http(f"{uri}/health", alive=lambda: proc.poll() is None):
            raise RuntimeError(f"mlflow server (basic-auth) did not start: {(base / 'server.log').read_text()[-2000:]}")
        server = AuthServer(uri, base, admin, User("writer", secrets.token_urlsafe(18)),
                            User("reader", secrets.token_urlsafe(18)))
        for user in (server.writer, server.reader):
            server.admin_call("POST", "2.0/mlflow/users/create", {"username": user.username, "password": user.password})
    except BaseException:
        stop_process_group(proc.pid)
        raise
    return proc, server


@contextlib.contextmanager
def mlflow_auth_server(base: Path, port: int | None = None) -> Iterator[AuthServer]:
    """A real basic-auth `mlflow server` for the duration of the block; yields its URI and users."""
    proc, server = start_mlflow_auth_server(base, port)
    try:
        yield server
    finally:
        stop_server(proc)


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
