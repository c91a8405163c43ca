"""Shared fixtures: runner files in temporary places, and one harness (engine, image, store) per run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .services import backend_stack as backend_stack_at
from .services import free_port, wait_for_http
from .services import mlflow_auth_server as mlflow_auth_server_at
from .services import mlflow_server as mlflow_server_at
from .services import object_store as object_store_at
from .services import postgres as postgres_at

__all__ = ["free_port", "wait_for_http"]  # imported from here by the tests

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runner_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_PATH and GITHUB_ENV as empty temporary files."""
    files = {}
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_PATH", "GITHUB_ENV"):
        path = tmp_path / name.lower()
        path.write_text("")
        monkeypatch.setenv(name, str(path))
        files[name] = path
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    return files


@pytest.fixture
def no_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_PATH", "GITHUB_ENV", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api_recorder(monkeypatch: pytest.MonkeyPatch):
    """A local GitHub REST API that records requests; GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_TOKEN point at it."""
    from .api_recorder import Recorder

    with Recorder() as rec:
        monkeypatch.setenv("GITHUB_API_URL", rec.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "example/caller")
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_testtoken")
        yield rec


def require_e2e() -> bool:
    return os.environ.get("LEANOPS_REQUIRE_E2E") == "1"


@pytest.fixture(scope="session")
def harness():
    """The local act harness; e2e tests skip without a Docker engine unless LEANOPS_REQUIRE_E2E=1."""
    from leanops.tools import harness as h

    if not h.engine_ready() and not require_e2e():
        pytest.skip("no Docker engine (set LEANOPS_REQUIRE_E2E=1 to make this a failure)")
    hn = h.Harness(kit=ROOT, home=h.default_home())
    hn.prepare(install=require_e2e())
    return hn


def make_repo(path: Path, files: dict[str, str], *, origin: str = "https://github.com/example/caller.git") -> Path:
    """A throwaway git repository with the given files committed and an origin remote."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git = shutil.which("git") or "git"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"],
                 ["remote", "add", "origin", origin]):
        subprocess.run([git, *args], cwd=path, check=True, env=env)
    return path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on 127.0.0.1 (free port, sqlite backend, artifacts in a tmp dir); yields its URI."""
    with mlflow_server_at(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server --app-name basic-auth` on 127.0.0.1 with the users admin, writer and reader
    (``tests.services.AuthServer``: ``uri``, the users, ``call``, ``grant``, ``share``)."""
    with mlflow_auth_server_at(tmp_path_factory.mktemp("mlflow-auth-server")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster on 127.0.0.1 (``tests.services.Postgres``: ``url``, ``create_database``)."""
    with postgres_at() as pg:
        yield pg


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory):
    """An S3-compatible store (``moto_server``) on 127.0.0.1 (``tests.services.ObjectStore``: ``env``,
    ``client``, ``create_bucket``, ``keys``)."""
    with object_store_at(tmp_path_factory.mktemp("object-store")) as store:
        yield store


@pytest.fixture(scope="session")
def backend_stack(tmp_path_factory: pytest.TempPathFactory):
    """The production-shaped stack (``tests.services.Stack``): PostgreSQL, the object store with a bucket,
    and `mlflow server --app-name basic-auth` keeping its runs and users in PostgreSQL and its artifacts in
    ``s3://BUCKET/mlflow``. Starting it costs a minute or more (the two databases' schema migrations)."""
    with backend_stack_at(tmp_path_factory.mktemp("backend-stack")) as stack:
        yield stack
