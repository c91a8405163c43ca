"""Issue 17: the kit against a production-shaped tracking server (`backend_stack`): `mlflow server --app-name
basic-auth` keeping runs, models and users in PostgreSQL and artifacts in an S3-compatible store (moto).

- train-with-cache on a push, as the writer: the run and the version are rows in PostgreSQL, the model's files are
  objects in the bucket (listed with boto3), and nothing of them is on the server's disk; the job held only the
  tracking credential (the server proxies the artifacts: the client needs no storage credential);
- the read-only user: no run, no version, no artifact upload (403), and the bucket is unchanged.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..services import Stack
from .test_train_with_cache import MODEL_STAGE, outputs, tiny_repo, train

CLIENT = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI",
          "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
          "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


@pytest.fixture
def stack(backend_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for name in CLIENT:
        monkeypatch.delenv(name, raising=False)
    return backend_stack


def rows(stack: Stack, query: str, *params: object) -> list[tuple[object, ...]]:
    with stack.postgres.connect(stack.database) as conn:
        return list(conn.execute(query.encode(), params).fetchall())


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_the_writer_trains_into_postgresql_and_the_bucket_and_nothing_lands_on_the_servers_disk(
        stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files) -> None:
    model = f"backends-{uuid.uuid4().hex[:8]}"
    stack.mlflow.share(model)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    for name, value in stack.mlflow.writer.env().items():
        monkeypatch.setenv(name, value)
    before = set(stack.store.keys(stack.bucket))

    repo = tiny_repo(tmp_path / "repo", stage_code=MODEL_STAGE)
    assert train(repo, stack.mlflow.uri, model) == 0
    out = outputs(runner_files["GITHUB_OUTPUT"])
    run_id = out["run-id"]
    assert (out["skipped"], out["model-version"]) == ("false", "1"), out

    # the run and the version are rows of the tracking database in PostgreSQL
    assert rows(stack, "SELECT status FROM runs WHERE run_uuid = %s", run_id) == [("FINISHED",)]
    assert rows(stack, "SELECT version FROM model_versions WHERE name = %s", model) == [(1,)]
    (location,) = rows(stack, "SELECT artifact_uri FROM runs WHERE run_uuid = %s", run_id)[0]
    assert str(location).startswith("mlflow-artifacts:/"), location  # proxied: the client never saw the bucket

    # the run's files and the model's are objects in the bucket (MLflow 3 keeps a model under models/m-ID/)
    new = sorted(set(stack.store.keys(stack.bucket)) - before)
    assert new and all(k.startswith("mlflow/") for k in new), new
    assert any(run_id in k and k.endswith("/metrics.json") for k in new), new
    models = [k for k in new if "/models/" in k]
    assert any(k.endswith("/model.pkl") for k in models) and any(k.endswith("/MLmodel") for k in models), new

    # ... and not on the server's disk: its folder holds its config and its log, nothing else
    assert stack.mlflow.artifacts == f"s3://{stack.bucket}/mlflow"
    assert files_under(stack.mlflow.base) == ["basic_auth.ini", "server.log"]
    assert not list(tmp_path.glob("**/mlruns"))


def test_the_reader_writes_nothing_to_postgresql_or_the_bucket(stack: Stack) -> None:
    model = f"backends-ro-{uuid.uuid4().hex[:8]}"
    exp = stack.mlflow.share(model)
    writer, reader = stack.mlflow.writer, stack.mlflow.reader
    status, body = stack.mlflow.call(writer, "POST", "2.0/mlflow/runs/create", {"experiment_id": exp})
    assert status == 200, body
    run_id = str(body["run"]["info"]["run_id"])  # type: ignore[index]
    before = sorted(stack.store.keys(stack.bucket))
    runs_before = rows(stack, "SELECT run_uuid FROM runs WHERE experiment_id = %s", int(exp))

    assert stack.mlflow.call(reader, "POST", "2.0/mlflow/runs/create", {"experiment_id": exp})[0] == 403
    assert stack.mlflow.call(reader, "POST", "2.0/mlflow/model-versions/create",
                             {"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id})[0] == 403
    assert stack.mlflow.call(reader, "POST", "2.0/mlflow/runs/log-metric",
                             {"run_id": run_id, "key": "forged", "value": 1.0, "timestamp": 0})[0] == 403
    # an artifact straight through the server's artifact proxy, into the writer's run
    put = urllib.request.Request(
        f"{stack.mlflow.uri}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run_id}/artifacts/forged.txt",
        data=b"forged", method="PUT", headers={"Authorization": reader.header()})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=30)  # noqa: S310 - loopback
    assert refused.value.code == 403

    assert sorted(stack.store.keys(stack.bucket)) == before
    assert rows(stack, "SELECT run_uuid FROM runs WHERE experiment_id = %s", int(exp)) == runs_before
    assert rows(stack, "SELECT count(*) FROM model_versions WHERE name = %s", model) == [(0,)]


@contextlib.contextmanager
def own_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
              model: str) -> Iterator[tuple[Stack, Path]]:
    """A stack of its own (one of its services is about to stop), the writer's credential in the environment of
    a push, and a tiny repository to train; what was printed so far is dropped."""
    from ..services import backend_stack

    for name in CLIENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    with backend_stack(tmp_path / "stack") as own:
        own.mlflow.share(model)
        for name, value in own.mlflow.writer.env().items():
            monkeypatch.setenv(name, value)
        repo = tiny_repo(tmp_path / "repo", stage_code=MODEL_STAGE)
        capsys.readouterr()
        yield own, repo


def test_the_database_down_behind_the_tracking_server_stops_before_any_work_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files, capsys: pytest.CaptureFixture[str]) -> None:
    """A stack of its own whose PostgreSQL stops: the server answers 503, train-with-cache retries, then exits 3
    with one error line naming the tracking server, before anything trains or is written."""
    with own_stack(tmp_path, monkeypatch, capsys, "down") as (own, repo):
        own.postgres.stop()
        assert train(repo, own.mlflow.uri, "down") == 3
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert errors == [f"leanops train-with-cache: error: tracking server {own.mlflow.uri} unreachable after 5 "
                      "attempts: HTTP 503"], err
    assert "Traceback" not in err and own.postgres.password not in err
    assert not (repo / "model.pkl").exists()  # nothing trained


def test_the_object_store_down_behind_the_tracking_server_exits_3_in_one_line_and_registers_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files, capsys: pytest.CaptureFixture[str]) -> None:
    """A stack of its own whose object store stops: the tracking server takes the run's rows but cannot store
    the model's files. train-with-cache exits 3 with one line, and the registry holds no version of the model."""
    with own_stack(tmp_path, monkeypatch, capsys, "no-bucket") as (own, repo):
        own.store.stop()
        code = train(repo, own.mlflow.uri, "no-bucket")
        err = capsys.readouterr().err
        versions = rows(own, "SELECT count(*) FROM model_versions WHERE name = %s", "no-bucket")
        statuses = rows(own, "SELECT status FROM runs")
    assert code == 3, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(
        f"leanops train-with-cache: error: tracking server {own.mlflow.uri}: logging run "), err
    assert "failed (its artifact store)" in errors[0] and errors[0].endswith(
        "the run is marked FAILED, no version registered"), errors[0]
    assert "Traceback" not in err and own.mlflow.writer.password not in err
    assert versions == [(0,)] and statuses == [("FAILED",)]  # nothing half-written in the registry


def test_a_postgresql_tracking_store_that_does_not_answer_stops_before_any_work_in_one_line(
        postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files,
        capsys: pytest.CaptureFixture[str]) -> None:
    """MLFLOW_TRACKING_URI=postgresql://... (MLflow's SQLAlchemy store, no server): nothing listening, or a refused
    login, is exit 3 with one line naming the store (its password masked) before anything trains."""
    from ..services import free_port

    for name in CLIENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    repo = tiny_repo(tmp_path / "repo", stage_code=MODEL_STAGE)
    secret = postgres_server.password
    port = free_port()
    for uri, expected in ((f"postgresql://leanops:{secret}@127.0.0.1:{port}/mlflow", "Connection refused"),
                          (f"postgresql://leanops:wrong-{secret[:6]}@127.0.0.1:{postgres_server.port}/postgres",
                           "password authentication failed")):
        capsys.readouterr()
        assert train(repo, uri, "down") == 3
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("leanops train-with-cache: error: tracking store "
                                                       "postgresql://***:***@127.0.0.1:"), err
        assert expected in lines[0] and secret[:6] not in err and "Traceback" not in err, err
        assert not (repo / "model.pkl").exists()  # nothing trained
