"""Issue 13's guards in train-with-cache and the model loaders, against a real `mlflow server` on loopback.

- a pull request trains into the embedded store, whatever tracking server and credential it was handed: the
  server gets no run, no version, no alias, and the adopter's stage sees no credential of the kit's;
- on a trusted ref a skip reuses only a run that a trusted job logged (``leanops.trusted``), never one that
  anything else could have written with the same cache key;
- every version train-with-cache registers carries the sha256 of its model files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leanops import models
from leanops.train_with_cache.registry import TAG_KEY, TAG_MODEL, TAG_TRUSTED

from .test_train_with_cache import MODEL_STAGE, outputs, tiny_repo, train

SPY_STAGE = MODEL_STAGE + """\
    import os, pathlib
    seen = {k: v for k, v in os.environ.items() if k.startswith(("MLFLOW", "GITHUB_TOKEN", "GH_TOKEN", "ACTIONS_"))}
    home = pathlib.Path.home()
    files = [str(p) for p in (home / ".mlflow" / "credentials", home / ".netrc") if p.exists()]
    json.dump({"env": seen, "files": files}, open("seen.json", "w"))
"""


@pytest.fixture
def client(mlflow_server: str):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server, registry_uri=mlflow_server)


def _pr_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"full_name": "o/r"}},
                                                  "base": {"repo": {"full_name": "o/r"}}}}))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))


def test_a_pull_request_writes_nothing_to_the_server_and_its_stage_sees_no_credential(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files, mlflow_server: str, client) -> None:
    repo = tiny_repo(tmp_path / "r", stage_code=SPY_STAGE)
    _pr_event(tmp_path, monkeypatch)
    for key, value in (("MLFLOW_TRACKING_URI", mlflow_server), ("MLFLOW_REGISTRY_URI", mlflow_server),
                       ("MLFLOW_TRACKING_USERNAME", "writer"),
                       ("MLFLOW_TRACKING_PASSWORD", "s3cret-pass12"), ("MLFLOW_READ_PASSWORD", "r3ad"),
                       ("GITHUB_TOKEN", "ghs_x")):
        monkeypatch.setenv(key, value)
    assert train(repo, mlflow_server, "pr-model") == 0
    out = outputs(runner_files["GITHUB_OUTPUT"])
    assert out["tracking"] == "local" and out["model-version"] == "1"
    seen = json.loads((repo / "seen.json").read_text())
    secrets = {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
               "MLFLOW_READ_PASSWORD", "GITHUB_TOKEN"}
    assert not secrets & set(seen["env"]) and seen["files"] == [], seen
    assert not {"s3cret-pass12", "r3ad", "ghs_x", mlflow_server} & set(seen["env"].values()), seen
    assert client.search_registered_models(filter_string="name = 'pr-model'") == []
    assert client.search_experiments(filter_string="name = 'pr-model'") == []


def test_a_skip_on_a_trusted_ref_reuses_only_a_trusted_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_files, mlflow_server: str, client) -> None:
    repo = tiny_repo(tmp_path / "r", stage_code=MODEL_STAGE)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    # what the state's cache key will be, then a forged run and version carrying it (as a pull request with a
    # write credential could have made before this change): the trusted run must not reuse it
    assert cli_key(repo) == 0
    key = outputs(runner_files["GITHUB_OUTPUT"])["cache-key"]
    exp = client.create_experiment("forged-model")
    forged = client.create_run(exp, tags={TAG_KEY: key, TAG_MODEL: "forged-model", "leanops.trusted": "false"})
    client.log_metric(forged.info.run_id, "roc_auc", 0.99)
    client.set_terminated(forged.info.run_id, "FINISHED")
    client.create_registered_model("forged-model")
    client.create_model_version("forged-model", f"runs:/{forged.info.run_id}/model", run_id=forged.info.run_id)
    (repo / "model.pkl").unlink(missing_ok=True)  # nothing to vouch for the outputs: the cache key decides
    assert train(repo, mlflow_server, "forged-model") == 0
    out = outputs(runner_files["GITHUB_OUTPUT"])
    assert out["skipped"] == "false" and out["run-id"] != forged.info.run_id, out
    run = client.get_run(out["run-id"])
    assert run.data.tags[TAG_TRUSTED] == "true"
    version = client.get_model_version("forged-model", out["model-version"])
    assert version.run_id == out["run-id"]
    # the digest of the registered files is on the version, and matches what the registry serves
    recorded = version.tags[models.TAG_SHA256]
    fetched = models.fetch(f"models:/forged-model/{out['model-version']}", tmp_path / "dl" / "model", mlflow_server)
    assert models.check_recorded(fetched) == recorded == run.data.tags[models.TAG_SHA256]
    # and the next run on the same state reuses the trusted one
    assert train(repo, mlflow_server, "forged-model") == 0
    again = outputs(runner_files["GITHUB_OUTPUT"])
    assert (again["skipped"], again["run-id"]) == ("true", out["run-id"]), again


def cli_key(repo: Path) -> int:
    from leanops import cli

    return cli.main(["train-with-cache", "key", "--working-directory", str(repo)])
