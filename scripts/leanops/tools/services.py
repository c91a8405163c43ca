"""Real services on loopback for the tests, `make demo` and adopters trying the kit: an `mlflow server`
(plain, or ``--app-name basic-auth`` with an admin, a writer and a read-only user), PostgreSQL and an
S3-compatible object store, each started by the project itself in its own session and stopped by its id.

- PostgreSQL: Debian's ``postgresql`` (installed with apt-get when missing, as root), a private cluster from
  ``initdb`` in a temporary folder, run as the ``postgres`` user when we are root (PostgreSQL refuses root),
  on a free loopback port with a password; one database per run (:meth:`Postgres.create_database`).
- Object store: ``moto`` in server mode (``moto_server``, from PyPI's ``moto[server]``). Chosen because it is
  pure Python from PyPI: no MinIO or Ceph binary has to be downloaded (nothing outside the package registries
  can be fetched here, on a developer's machine or in CI), it speaks the S3 API that boto3, MLflow and dvc-s3
  use, and it holds its buckets in memory, so a run leaves nothing behind.
- The production-shaped tracking server (:func:`backend_stack`): ``mlflow server --app-name basic-auth`` with
  its backend store and its users' database in PostgreSQL and ``--artifacts-destination s3://BUCKET/mlflow``
  on the object store (``MLFLOW_S3_ENDPOINT_URL`` and ``AWS_*`` in the server's environment only).

``python -m leanops.tools.services`` starts the whole stack, prints the variables a client needs and runs
until interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InfraError

# variables of the caller's environment that must not reach a server we start (it gets its own)
CLIENT_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                    "MLFLOW_TRACKING_TOKEN", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                    "MLFLOW_REGISTRY_URI", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION")
QUIET = {"DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
         # no job runner: MLflow 3 otherwise starts about eight huey consumer processes, each importing mlflow
         # (30-60 s of both cores at start) and outliving the server
         "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


# ---------------------------------------------------------------------------- processes


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


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _venv_exe(name: str) -> str:
    """A console script of this interpreter's environment, else the one on PATH."""
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


# ---------------------------------------------------------------------------- mlflow server


def _start_mlflow(base: Path, port: int, extra: list[str], env: dict[str, str], what: str,
                  ) -> tuple[subprocess.Popen[bytes], str]:
    uri = f"http://127.0.0.1:{port}"
    with open(base / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [_venv_exe("mlflow"), "server", *extra, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base, start_new_session=True,
        )
    # a new database costs its schema migrations first (PostgreSQL: about a minute on a busy 2-core machine)
    if not wait_for_http(f"{uri}/health", alive=lambda: proc.poll() is None, timeout=300):
        code = proc.poll()
        stop_server(proc)
        why = "timed out after 300 s" if code is None else f"exited {code}"
        raise InfraError(f"{what} did not start on {uri} ({why}): {_tail(base / 'server.log')}")
    return proc, uri


def _server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, **QUIET)
    for name in CLIENT_VARIABLES:
        env.pop(name, None)
    env.update(extra or {})
    return env


def start_mlflow_server(base: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a real `mlflow server` on 127.0.0.1 (sqlite backend and artifacts under ``base``) in its own
    session; returns the process and its URI once ``/health`` answers."""
    base.mkdir(parents=True, exist_ok=True)
    return _start_mlflow(base, port or free_port(),
                         ["--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
                          "--artifacts-destination", str(base / "artifacts")],
                         _server_env(), "mlflow server")


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
    artifacts: str = ""  # where the server keeps artifacts: a folder under ``base`` or s3://BUCKET/PREFIX

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
        req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - loopback
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
            raise InfraError(f"{self.uri}: {method} {endpoint} as admin: HTTP {status} {body}")
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
database_uri = {database}
admin_username = {admin}
admin_password = {password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# a checked password is remembered for a while: PBKDF2 costs about a second per request on a busy 2-core machine
auth_cache_ttl_seconds = 600
"""


def start_mlflow_auth_server(base: Path, port: int | None = None, *, backend_store_uri: str | None = None,
                             auth_database_uri: str | None = None, artifacts_destination: str | None = None,
                             env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[bytes], AuthServer]:
    """Start `mlflow server --app-name basic-auth` on 127.0.0.1 in its own session, then create the users
    ``writer`` and ``reader`` (random passwords). By default everything lives under ``base`` (sqlite backend,
    sqlite users' database, artifacts in a folder); ``backend_store_uri`` (e.g. ``postgresql://...``),
    ``auth_database_uri`` and ``artifacts_destination`` (e.g. ``s3://bucket/prefix``) put them elsewhere, and
    ``env`` adds to the server's environment (e.g. ``MLFLOW_S3_ENDPOINT_URL`` and ``AWS_*``). The admin's
    password reaches the server through the auth config file (``MLFLOW_AUTH_CONFIG_PATH``, mode 0600) and the
    backend store's URI through ``MLFLOW_BACKEND_STORE_URI``: no password in the process list."""
    base.mkdir(parents=True, exist_ok=True)
    admin = User("admin", secrets.token_urlsafe(18))
    config = base / "basic_auth.ini"
    config.touch(mode=0o600)
    config.write_text(AUTH_CONFIG.format(database=auth_database_uri or f"sqlite:///{base / 'basic_auth.db'}",
                                         admin=admin.username, password=admin.password))
    artifacts = artifacts_destination or str(base / "artifacts")
    server_env = _server_env({"MLFLOW_AUTH_CONFIG_PATH": str(config),
                              "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
                              "MLFLOW_BACKEND_STORE_URI": backend_store_uri or f"sqlite:///{base / 'mlflow.db'}",
                              **(env or {})})
    proc, uri = _start_mlflow(base, port or free_port(),
                              ["--app-name", "basic-auth", "--artifacts-destination", artifacts],
                              server_env, "mlflow server (basic-auth)")
    try:
        server = AuthServer(uri, base, admin, User("writer", secrets.token_urlsafe(18)),
                            User("reader", secrets.token_urlsafe(18)), artifacts)
        for user in (server.writer, server.reader):
            server.admin_call("POST", "2.0/mlflow/users/create", {"username": user.username, "password": user.password})
    except BaseException:
        stop_server(proc)
        raise
    return proc, server


@contextlib.contextmanager
def mlflow_auth_server(base: Path, port: int | None = None, **kwargs: Any) -> Iterator[AuthServer]:
    """A real basic-auth `mlflow server` for the duration of the block; yields its URI and users
    (keywords as :func:`start_mlflow_auth_server`)."""
    proc, server = start_mlflow_auth_server(base, port, **kwargs)
    try:
        yield server
    finally:
        stop_server(proc)


# ---------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (initdb, postgres); as root, Debian's ``postgresql`` is
    installed when there is none."""
    for _ in range(2):
        found = shutil.which("initdb")
        if found:
            return Path(found).resolve().parent
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                          key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
        if versions:
            return versions[-1].parent
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            break
        from .harness import _apt_install

        _apt_install("postgresql")
    raise InfraError("PostgreSQL: no initdb on PATH or under /usr/lib/postgresql; install Debian's postgresql")


@dataclass
class Postgres:
    """A private PostgreSQL cluster on 127.0.0.1: ``user`` with ``password`` owns it."""

    proc: subprocess.Popen[bytes] | None  # None: a cluster another process started (make demo's, left running)
    root: Path
    port: int
    user: str
    password: str
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres", *, driver: str = "postgresql") -> str:
        """``postgresql://USER:PASSWORD@127.0.0.1:PORT/DATABASE`` (the password URL-quoted)."""
        return (f"{driver}://{self.user}:{urllib.parse.quote(self.password, safe='')}@127.0.0.1:{self.port}/"
                f"{database}")

    def connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                               dbname=database, connect_timeout=5, autocommit=True)

    def create_database(self, prefix: str = "leanops") -> str:
        """A new, empty database (``PREFIX_<random>``); returns its name."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        self.databases.append(name)
        return name

    def stop(self) -> None:
        if self.proc is None:
            raise InfraError("PostgreSQL: this cluster was started by another process; stop it there")
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        stop_server(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)


def _as_user() -> tuple[str | None, int | None, int | None]:
    """(name, uid, gid) of the unprivileged user the cluster runs as when we are root; else Nones."""
    if os.geteuid() != 0:
        return None, None, None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pw = pwd.getpwnam("nobody")
    return pw.pw_name, pw.pw_uid, pw.pw_gid


def start_postgres(port: int | None = None, *, timeout: float = 60.0) -> Postgres:
    """``initdb`` a cluster in a new temporary folder and start ``postgres`` on 127.0.0.1 (its socket in that
    folder, fsync off: the data is thrown away); as root, as the ``postgres`` user."""
    binaries = postgres_bin()
    name, uid, gid = _as_user()
    root = Path(tempfile.mkdtemp(prefix="leanops-pg-"))
    data, log = root / "data", root / "postgres.log"
    user, password = "leanops", secrets.token_urlsafe(18)
    pwfile = root / "pwfile"
    pwfile.touch(mode=0o600)
    pwfile.write_text(password + "\n")
    if uid is not None and gid is not None:
        os.chown(root, uid, gid)
        os.chown(pwfile, uid, gid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
    try:
        res = subprocess.run([str(binaries / "initdb"), "-D", str(data), "-U", user, "--pwfile", str(pwfile),
                              "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8",
                              "--no-instructions"],
                             capture_output=True, text=True, env=env, user=name, cwd=root, check=False)
        pwfile.unlink()
        if res.returncode != 0:
            raise InfraError(f"PostgreSQL: initdb failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
        port = port or free_port()
        with open(log, "ab") as fh:
            if uid is not None:
                os.chown(log, uid, gid or 0)
            proc = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(data), "-k", str(root), "-h", "127.0.0.1", "-p", str(port),
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=fh, stderr=subprocess.STDOUT, env=env, user=name, cwd=root, start_new_session=True)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    pg = Postgres(proc, root, port, user, password)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            pg.connect().close()
            return pg
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            time.sleep(0.3)
    message = _tail(log, 600).strip().splitlines()[-1:] or [last]
    pg.stop()
    raise InfraError(f"PostgreSQL did not start on 127.0.0.1:{port}: {message[0]}")


@contextlib.contextmanager
def postgres(port: int | None = None) -> Iterator[Postgres]:
    """A private PostgreSQL cluster for the duration of the block."""
    pg = start_postgres(port)
    try:
        yield pg
    finally:
        pg.stop()


# ---------------------------------------------------------------------------- object store


@dataclass
class ObjectStore:
    """A running S3-compatible store (``moto_server``) on 127.0.0.1 and the credential it accepts."""

    proc: subprocess.Popen[bytes]
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """What a client (boto3, dvc-s3, MLflow's S3 artifact repository) reads to reach this store."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def create_bucket(self, prefix: str = "leanops") -> str:
        """A new, empty bucket (``PREFIX-<random>``); returns its name."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        out: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [obj["Key"] for obj in page.get("Contents", [])]
        return out

    def stop(self) -> None:
        stop_server(self.proc)


def start_object_store(base: Path, port: int | None = None) -> ObjectStore:
    """``moto_server`` on 127.0.0.1 in its own session (buckets in memory), its log under ``base``."""
    base.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = _server_env({"AWS_ACCESS_KEY_ID": "leanops", "AWS_SECRET_ACCESS_KEY": "leanops"})
    with open(base / "moto.log", "ab") as log:
        proc = subprocess.Popen([_venv_exe("moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=base, start_new_session=True)
    if not wait_for_http(f"{endpoint}/moto-api/data.json", alive=lambda: proc.poll() is None, timeout=60):
        stop_server(proc)
        raise InfraError(f"object store (moto_server) did not start on {endpoint}: {_tail(base / 'moto.log', 600)}")
    # moto accepts any credential; a random one keeps a client honest about passing it
    return ObjectStore(proc, endpoint, f"AKIA{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30))


@contextlib.contextmanager
def object_store(base: Path, port: int | None = None) -> Iterator[ObjectStore]:
    """An S3-compatible store for the duration of the block."""
    store = start_object_store(base, port)
    try:
        yield store
    finally:
        store.stop()


# ---------------------------------------------------------------------------- the production-shaped stack


@dataclass
class Stack:
    """PostgreSQL, the object store and a basic-auth tracking server on both (``bucket``: its artifacts and a
    DVC remote's home)."""

    postgres: Postgres
    store: ObjectStore
    mlflow: AuthServer
    bucket: str
    database: str

    def client_env(self, user: User) -> dict[str, str]:
        """What a job needs to reach the tracking server as ``user`` and the object store."""
        return {"MLFLOW_TRACKING_URI": self.mlflow.uri, **user.env(), **self.store.env()}


def start_backend_stack(base: Path, pg: Postgres, bucket_prefix: str = "leanops",
                        ) -> tuple[Stack, subprocess.Popen[bytes]]:
    """On ``pg`` (a database for the tracking store and one for the users): moto with a new bucket and
    ``mlflow server --app-name basic-auth`` with ``--artifacts-destination s3://BUCKET/mlflow``, left running
    (``make demo`` keeps them for the next demo); returns the stack and the tracking server's process."""
    store = start_object_store(base / "s3")
    try:
        tracking_db, auth_db = pg.create_database("mlflow"), pg.create_database("mlflow_auth")
        bucket = store.create_bucket(bucket_prefix)
        proc, server = start_mlflow_auth_server(
            base / "mlflow", backend_store_uri=pg.url(tracking_db), auth_database_uri=pg.url(auth_db),
            artifacts_destination=f"s3://{bucket}/mlflow", env=store.env())
    except BaseException:
        store.stop()
        raise
    return Stack(pg, store, server, bucket, tracking_db), proc


@contextlib.contextmanager
def backend_stack(base: Path) -> Iterator[Stack]:
    """PostgreSQL and ``start_backend_stack`` on it, for the duration of the block."""
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres())
        own, proc = start_backend_stack(base, pg)
        stack.callback(own.store.stop)
        stack.callback(stop_server, proc)  # the tracking server first, then the store, then PostgreSQL
        yield own


def main(argv: list[str] | None = None) -> int:
    """Start the stack, print what a client needs (export lines), run until interrupted."""
    base = Path(argv[0] if argv else tempfile.mkdtemp(prefix="leanops-stack-"))
    with backend_stack(base) as stack:
        for user in (stack.mlflow.admin, stack.mlflow.writer, stack.mlflow.reader):
            print(f"# {user.username}: MLFLOW_TRACKING_USERNAME={user.username} "
                  f"MLFLOW_TRACKING_PASSWORD={user.password}")
        for key, value in {"MLFLOW_TRACKING_URI": stack.mlflow.uri, **stack.store.env()}.items():
            print(f"export {key}={value}")
        print(f"# bucket: s3://{stack.bucket}   (Ctrl-C stops everything)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
