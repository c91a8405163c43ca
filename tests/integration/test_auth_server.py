"""Issue 13's read-only credential against a real `mlflow server --app-name basic-auth` (`mlflow_auth_server`).

- the reader reads the champion through ``leanops.tracking.RestReader`` but cannot create a run, register a version
  or move an alias (403); the writer can; without a credential nothing answers (401);
- train-with-cache on a push registers with the writer's credential, and with the reader's stops in one line
  (exit 3) with nothing half-written on the server;
- on a pull request handed the writer's credential, the adopter's stage finds none and writes nothing.

MLflow's basic-auth lets any authenticated user create a new experiment or registered model (and manage what it
created): the reader is read-only on what the admin shared with it, which is what the pipeline writes to.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from leanops import tracking
from leanops.errors import InfraError

from ..services import AuthServer
from .test_train_with_cache import MODEL_STAGE, outputs, tiny_repo, train

CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "MLFLOW_TRACKING_URI")


@pytest.fixture
def server(mlflow_auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch) -> AuthServer:
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    return mlflow_auth_server


def as_user(monkeypatch: pytest.MonkeyPatch, user) -> None:
    for name, value in user.env().items():
        monkeypatch.setenv(name, value)


def run_ids(server: AuthServer, experiment_id: str) -> list[str]:
    found = server.admin_call("POST", "2.0/mlflow/runs/search",
                              {"experiment_ids": [experiment_id], "max_results": 1000, "run_view_type": "ALL"})
    return [r["info"]["run_id"] for r in found.get("runs") or []]  # type: ignore[union-attr]


def versions(server: AuthServer, model: str) -> list[str]:
    found = server.admin_call("GET", "2.0/mlflow/model-versions/search", {"filter": f"name = '{model}'"})
    return sorted(str(v["version"]) for v in found.get("model_versions") or [])  # type: ignore[union-attr]


def aliases(server: AuthServer, model: str) -> dict[str, str]:
    found = server.admin_call("GET", "2.0/mlflow/registered-models/get", {"name": model})
    return {a["alias"]: str(a["version"]) for a in found["registered_model"].get("aliases") or []}  # type: ignore


def test_the_reader_reads_the_champion_but_cannot_write_and_the_writer_can(
        server: AuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    model = f"auth-{uuid.uuid4().hex[:8]}"
    exp = server.share(model)
    writer, reader = server.writer, server.reader

    # the writer: a run, a version, the alias champion
    status, body = server.call(writer, "POST", "2.0/mlflow/runs/create", {"experiment_id": exp})
    assert status == 200, body
    run_id = body["run"]["info"]["run_id"]  # type: ignore[index]
    assert server.call(writer, "POST", "2.0/mlflow/runs/update", {"run_id": run_id, "status": "FINISHED"})[0] == 200
    status, body = server.call(writer, "POST", "2.0/mlflow/model-versions/create",
                               {"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id})
    assert status == 200, body
    assert server.call(writer, "POST", "2.0/mlflow/registered-models/alias",
                       {"name": model, "alias": "champion", "version": "1"})[0] == 200

    # the reader reads the champion with the kit's own REST reader, credentials from MLFLOW_TRACKING_*
    as_user(monkeypatch, reader)
    store = tracking.RestReader(server.uri, attempts=1)
    champion = store.alias(model, "champion")
    assert champion is not None and (champion.version, champion.run_id) == ("1", run_id)
    assert store.experiment_id(model) == exp
    assert [v.version for v in store.versions_of_run(model, run_id)] == ["1"]

    # ... and cannot write: no run, no version, no alias (403), neither raw nor through the kit
    assert server.call(reader, "POST", "2.0/mlflow/runs/create", {"experiment_id": exp})[0] == 403
    assert server.call(reader, "POST", "2.0/mlflow/model-versions/create",
                       {"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id})[0] == 403
    assert server.call(reader, "POST", "2.0/mlflow/registered-models/alias",
                       {"name": model, "alias": "champion", "version": "1"})[0] == 403
    assert server.call(reader, "POST", "2.0/mlflow/runs/set-tag",
                       {"run_id": run_id, "key": "forged", "value": "1"})[0] == 403
    with pytest.raises(InfraError, match=r"refused the credentials \(HTTP 403\)"):
        store.set_alias(model, "challenger", "1")

    # without a credential nothing answers
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InfraError, match=r"HTTP 401"):
        tracking.RestReader(server.uri, attempts=1).alias(model, "champion")

    assert run_ids(server, exp) == [run_id] and versions(server, model) == ["1"]
    assert aliases(server, model) == {"champion": "1"}


def test_train_with_cache_registers_with_the_writer_and_stops_in_one_line_with_the_reader(
        server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files,
        capsys: pytest.CaptureFixture[str]) -> None:
    model = f"auth-train-{uuid.uuid4().hex[:8]}"
    exp = server.share(model)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")

    as_user(monkeypatch, server.writer)
    repo = tiny_repo(tmp_path / "a", stage_code=MODEL_STAGE)
    assert train(repo, server.uri, model) == 0
    out = outputs(runner_files["GITHUB_OUTPUT"])
    assert (out["skipped"], out["model-version"]) == ("false", "1"), out
    assert aliases(server, model) == {"challenger": "1"}
    assert run_ids(server, exp) == [out["run-id"]]

    # another state (the cache key differs: nothing to reuse), the reader's credential: training runs, then the
    # first write is refused, in one line, exit 3; the server holds what it held
    as_user(monkeypatch, server.reader)
    capsys.readouterr()
    other = tiny_repo(tmp_path / "b", stage_code=MODEL_STAGE.replace("0.5", "0.6"))
    code = train(other, server.uri, model)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("leanops ")]
    assert code == 3, err[-3000:]
    assert len(lines) == 1 and "403" in lines[0] and "Permission denied" in lines[0], err[-3000:]
    assert lines[0].startswith("leanops train-with-cache: error: tracking server "), lines[0]
    assert "Traceback" not in err
    assert run_ids(server, exp) == [out["run-id"]]
    assert versions(server, model) == ["1"] and aliases(server, model) == {"challenger": "1"}


SPY_CODE = """\
    import base64, os, urllib.error, urllib.request
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    headers = {{"Content-Type": "application/json"}}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{{user}}:{{password}}".encode()).decode()
    req = urllib.request.Request("{uri}/api/2.0/mlflow/runs/create", method="POST", headers=headers,
                                 data=json.dumps({{"experiment_id": "{exp}"}}).encode())
    try:
        status = urllib.request.urlopen(req, timeout=20).status
    except urllib.error.HTTPError as exc:
        status = exc.code
    json.dump({{"status": status, "user": user}}, open("spy.json", "w"))
"""


def test_a_pull_request_handed_the_writer_credential_writes_nothing_from_its_stage(
        server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files) -> None:
    model = f"auth-pr-{uuid.uuid4().hex[:8]}"
    exp = server.share(model)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"full_name": "o/r"}},
                                                  "base": {"repo": {"full_name": "o/r"}}}}))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    as_user(monkeypatch, server.writer)  # as a workflow that wrongly handed it over would
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    repo = tiny_repo(tmp_path / "r", stage_code=MODEL_STAGE + SPY_CODE.format(uri=server.uri, exp=exp))
    assert train(repo, server.uri, model) == 0
    assert outputs(runner_files["GITHUB_OUTPUT"])["tracking"] == "local"
    spy = json.loads((repo / "spy.json").read_text())
    assert spy == {"status": 401, "user": ""}, spy
    assert run_ids(server, exp) == [] and versions(server, model) == [] and aliases(server, model) == {}
