"""examples/churn's source table (issue 15): its rows live in PostgreSQL, and the DVC stage ``fetch`` reads them.

Real PostgreSQL, real DVC, the embedded MLflow store, the example as an adopter has it (``source.py`` fills the
table, params.yaml's ``fetch.url`` points at it, its password in ``PGPASSWORD``):

- the table filled with the committed rows gives the committed CSV back byte for byte, so a refresh against the
  champion trained on that CSV is "no new data";
- new customers in the table: a refresh trains a new version on them;
- a wrong password: exit 3 in one line naming the table and the database, no password printed, nothing registered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from leanops import config
from leanops.weekly_drift.data import champion_files

from ..services import add_customers, churn_source, copy_example
from .test_refresh import failed_refresh, train  # the same calls: train-with-cache ARGS, its outputs
from .test_train_with_cache import git_init

MODEL = "churn-classifier"


@pytest.fixture
def churn(tmp_path: Path, runner_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
          postgres_server) -> dict:  # type: ignore[no-untyped-def,type-arg]
    for name in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    root = git_init(copy_example(tmp_path / "churn"))
    url, env = churn_source(root, postgres_server)
    monkeypatch.setenv("PGPASSWORD", env["PGPASSWORD"])
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(root)
    return {"root": root, "url": url, "password": env["PGPASSWORD"], "env": env, "out": runner_files["GITHUB_OUTPUT"],
            "uri": f"sqlite:///{root / '.leanops/mlflow/mlflow.db'}"}


def versions(uri: str) -> list[str]:
    from mlflow import MlflowClient

    return sorted(str(v.version) for v in MlflowClient(uri, registry_uri=uri).search_model_versions(f"name='{MODEL}'"))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_table_gives_the_committed_csv_back_and_new_customers_train_a_new_version(
        churn: dict, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[type-arg]
    from mlflow import MlflowClient

    raw = churn["root"] / "data/raw/churn.csv"
    committed = md5(raw)
    code, out = train(churn)
    assert code == 0 and out["model-version"] == "1", capsys.readouterr().err
    client = MlflowClient(churn["uri"], registry_uri=churn["uri"])
    client.set_registered_model_alias(MODEL, "champion", "1")
    # the fetched rows are the training data weekly-drift compares with (a stage's output, not a source dep)
    assert client.get_run(out["run-id"]).data.tags["dvc.dep.data/raw/churn.csv"] == committed
    files, where = champion_files(config.load(str(churn["root"] / "leanops.yml")), churn["root"])
    assert files == [str(raw)] and where == f"models:/{MODEL}/1 (champion): data/raw/churn.csv"

    # the refresh reads the table: the committed rows, the same bytes, no new data
    code, out = train(churn, "--refresh", "true")
    assert code == 0, capsys.readouterr().err
    assert (out["skipped"], out["reason"], out["model-version"]) == ("true", "no new data", "1")
    assert md5(raw) == committed

    # new customers of a shifted population arrive in the table
    added = add_customers(churn["root"], churn["url"], churn["env"], rows=500, first_id=200001, seed=9,
                          out=churn["root"].parent / "new.csv")
    assert "500 rows added, 5500 in all" in added, added
    code, out = train(churn, "--refresh", "true")
    assert code == 0, capsys.readouterr().err
    assert (out["skipped"], out["reason"], out["model-version"]) == ("false", "", "2")
    assert len(raw.read_text().splitlines()) == 5501 and md5(raw) != committed
    lock = yaml.safe_load((churn["root"] / "dvc.lock").read_text())
    assert lock["stages"]["fetch"]["outs"][0]["md5"] == md5(raw)
    assert versions(churn["uri"]) == ["1", "2"]
    assert client.get_run(out["run-id"]).data.tags["dvc.dep.data/raw/churn.csv"] == md5(raw)


def test_a_wrong_password_exits_3_in_one_line_and_registers_nothing(
        churn: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    code, _ = train(churn)
    assert code == 0
    capsys.readouterr()
    monkeypatch.setenv("PGPASSWORD", "not-" + churn["password"])
    line, err, out = failed_refresh(churn, capsys)
    # the stage's own last words, shortened: the server and the refused login (the table's line is in its log)
    port = churn["url"].split(":")[-1].split("/")[0]
    assert f'connection to server at "127.0.0.1", port {port} failed: FATAL: password authentication' in line
    assert churn["password"] not in err
    assert versions(churn["uri"]) == ["1"] and "model-version" not in out
