"""train-with-cache --refresh (issue 15, fresh data): real DVC, the embedded MLflow store.

The pipeline's first stage reads a CSV outside the repository (its path is a param), as a table in a
database would be read. A refresh that brings the rows the champion was trained on says "no new data" and
trains nothing; new rows train a new version, and the run records where the data came from and when. A source
that cannot be read exits 3 in one line and the registry is unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from leanops import cli

from ..unit.test_gh import parse_outputs
from .test_train_with_cache import git_init

for _key, _value in (("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1")):
    os.environ.setdefault(_key, _value)

MODEL = "fresh"
FETCH = """\
    import shutil, yaml
    source = yaml.safe_load(open("params.yaml"))["fetch"]["source"]
    shutil.copyfile(source, "data/raw.csv")  # a missing source fails here, as a database that is down would
"""
TRAIN = """\
    import json, pickle
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    df = pd.read_csv("data/raw.csv")
    model = LogisticRegression().fit(df[["x"]], df["y"])
    pickle.dump(model, open("model.pkl", "wb"))
    json.dump({"rows": len(df), "accuracy": float(model.score(df[["x"]], df["y"]))}, open("metrics.json", "w"))
"""


def write_source(path: Path, n: int) -> None:
    path.write_text("x,y\n" + "".join(f"{i},{int(i % 7 > 2)}\n" for i in range(n)))


@pytest.fixture
def repo(tmp_path: Path, runner_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict:  # type: ignore[type-arg]
    for name in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "outside" / "customers.csv"  # not in the repository
    source.parent.mkdir()
    write_source(source, 60)
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "data/.gitkeep").write_text("")
    (root / "fetch.py").write_text(textwrap.dedent(FETCH))
    (root / "train.py").write_text(textwrap.dedent(TRAIN))
    (root / "params.yaml").write_text(f"fetch:\n  source: {source}\ntrain:\n  C: 1.0\n")
    (root / "dvc.yaml").write_text(textwrap.dedent("""\
        stages:
          fetch:
            cmd: python fetch.py
            deps: [fetch.py]
            params: [fetch.source]
            outs: [data/raw.csv]
          train:
            cmd: python train.py
            deps: [train.py, data/raw.csv]
            params: [train.C]
            outs: [model.pkl]
            metrics:
              - metrics.json:
                  cache: false
        """))
    (root / "leanops.yml").write_text(f"version: 1\nmodel:\n  name: {MODEL}\n  path: model.pkl\n"
                                      "train-with-cache:\n  refresh:\n    - fetch\n")
    git_init(root)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    monkeypatch.chdir(root)
    return {"root": root, "source": source, "out": runner_files["GITHUB_OUTPUT"],
            "uri": f"sqlite:///{root / '.leanops/mlflow/mlflow.db'}"}


def train(repo: dict, *extra: str) -> tuple[int, dict[str, str]]:  # type: ignore[type-arg]
    repo["out"].write_text("")
    code = cli.main(["train-with-cache", "--working-directory", str(repo["root"]), *extra])
    return code, parse_outputs(repo["out"].read_text())


def failed_refresh(repo: dict, capsys: pytest.CaptureFixture[str]) -> tuple[str, str, dict[str, str]]:  # type: ignore[type-arg]
    """A refresh whose source cannot be read: exit 3; (the one line naming the stage, all it printed, outputs)."""
    code, out = train(repo, "--refresh", "true")
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert code == 3, err
    line = next(ln for ln in err.splitlines() if "refresh: dvc repro -f -s fetch failed" in ln)
    assert "the data source could not be read" in line
    assert 'File "' + str(Path(cli.__file__).parent) not in err  # no traceback of leanops's own
    return line, err, out


def versions(uri: str) -> list[str]:
    from mlflow import MlflowClient

    return sorted(str(v.version) for v in MlflowClient(uri, registry_uri=uri).search_model_versions(f"name='{MODEL}'"))


def test_same_rows_are_no_new_data_new_rows_a_new_version(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[type-arg]
    from mlflow import MlflowClient

    code, out = train(repo)
    assert code == 0 and out["model-version"] == "1" and out["skipped"] == "false"
    client = MlflowClient(repo["uri"], registry_uri=repo["uri"])
    client.set_registered_model_alias(MODEL, "champion", "1")

    # the source still holds the rows version 1 was trained on: no new data, nothing trained
    code, out = train(repo, "--refresh", "true")
    assert code == 0, capsys.readouterr().err
    assert (out["skipped"], out["reason"], out["model-version"]) == ("true", "no new data", "1")
    assert out["run-id"] == client.get_model_version(MODEL, "1").run_id
    assert versions(repo["uri"]) == ["1"]
    captured = capsys.readouterr()
    notice = "::notice title=leanops train-with-cache::no new data: the refreshed data has the hashes fresh version 1"
    assert notice in captured.out + captured.err

    # ml-pipeline's refresh job: only the refresh and the check
    repo["out"].write_text("")
    assert cli.main(["train-with-cache", "refresh", "--working-directory", str(repo["root"])]) == 0
    out = parse_outputs(repo["out"].read_text())
    assert (out["skipped"], out["reason"], out["refreshed-files"]) == ("true", "no new data", "")

    # new rows in the source: the refresh job ships them (and dvc.lock) for validate and train
    write_source(repo["source"], 90)
    repo["out"].write_text("")
    assert cli.main(["train-with-cache", "refresh", "--working-directory", str(repo["root"])]) == 0
    out = parse_outputs(repo["out"].read_text())
    assert (out["skipped"], out["reason"]) == ("false", "")
    shipped = Path(out["refreshed-files"])
    assert sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()) == [
        "data/raw.csv", "dvc.lock"]
    assert len((shipped / "data/raw.csv").read_text().splitlines()) == 91

    # new rows in the source: a new version, trained on them, with where the data came from and when
    code, out = train(repo, "--refresh", "true")
    assert code == 0, capsys.readouterr().err
    assert (out["skipped"], out["reason"], out["model-version"]) == ("false", "", "2")
    assert json.loads(out["metrics"])["rows"] == 90
    assert versions(repo["uri"]) == ["1", "2"]
    run = client.get_run(out["run-id"])
    record = json.loads(run.data.tags["leanops.refresh"])
    assert [(r["name"], r["how"]) for r in record] == [("fetch", "dvc repro -f -s")]
    assert record[0]["source"]["params"] == {"fetch.source": str(repo["source"])}
    assert record[0]["source"]["command"] == "python fetch.py"
    assert set(record[0]["outputs"]) == {"data/raw.csv"} and record[0]["refreshed_at"].endswith("+00:00")
    summary = Path(os.environ["GITHUB_STEP_SUMMARY"]).read_text()
    assert "### Refreshed data" in summary and "skipped: no new data" in summary
    # the lineage record says where the data came from and when
    assert cli.main(["lineage", "record", "--working-directory", str(repo["root"]), "--model-version", "2",
                     "--tracking-uri", repo["uri"]]) == 0
    lineage = json.loads((repo["root"] / ".leanops/lineage/lineage.json").read_text())
    assert lineage["data"]["refreshed"] == record
    assert f"`fetch` (dvc repro -f -s) at {record[0]['refreshed_at']} from fetch.source={repo['source']}" in (
        Path(os.environ["GITHUB_STEP_SUMMARY"]).read_text())

    # the champion moves to version 2; the same 90 rows again: no new data against it
    client.set_registered_model_alias(MODEL, "champion", "2")
    code, out = train(repo, "--refresh", "true")
    assert (code, out["reason"], out["model-version"]) == (0, "no new data", "2")


def test_an_unreadable_source_exits_3_in_one_line_and_changes_nothing(repo: dict,  # type: ignore[type-arg]
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = train(repo)
    assert code == 0
    capsys.readouterr()
    repo["source"].unlink()  # the database is down, the table is gone
    line, _, out = failed_refresh(repo, capsys)
    assert "the data source could not be read: failed to reproduce 'fetch'" in line
    assert "FileNotFoundError" in line and str(repo["source"]) in line  # the stage's own last words
    assert versions(repo["uri"]) == ["1"] and "model-version" not in out


def test_an_unknown_refresh_stage_is_a_configuration_error(repo: dict, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[type-arg]
    config = repo["root"] / "leanops.yml"
    config.write_text(config.read_text().replace("    - fetch\n", "    - fetch\n    - fecth\n"))
    code, _ = train(repo, "--refresh", "true")
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert code == 2
    assert "refresh: 'fecth' is neither a stage of dvc.yaml (fetch, train) nor a DVC import file" in err
    assert "leanops.yml:8: refresh: 'fecth'" in err
