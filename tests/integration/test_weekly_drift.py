"""`leanops weekly-drift` with real Evidently 0.7 and the local GitHub API (the `api_recorder` fixture).

The first tests prove that the verdicts computed on all rows equal those of Evidently's own
``DataDriftPreset`` column by column (every test it picks: Wasserstein, Jensen-Shannon, K-S,
chi-square, z), shifted and unshifted; the rest run the command as a workflow step would.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leanops import cli

from ..conftest import ROOT

EXAMPLE = ROOT / "examples" / "churn"
REFERENCE = EXAMPLE / "data" / "raw" / "churn.csv"
ENV = ("WORKING_DIRECTORY", "REFERENCE", "CURRENT", "THRESHOLD", "MIN_ROWS", "COLUMNS", "IGNORE_COLUMNS",
       "TARGET_COLUMN", "PREDICTION_COLUMN", "RETRAIN_WORKFLOW", "RETRAIN_REF", "OPEN_ISSUE",
       "FAIL_ON_INSUFFICIENT_DATA", "REPORT_DIR", "REPORT_SAMPLE_ROWS", "WORKFLOW", "STALE_AFTER_DAYS")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    for name in ENV:
        monkeypatch.delenv(f"LEANOPS_{name}", raising=False)
    for name in ("GITHUB_REF_NAME", "GITHUB_WORKFLOW_REF", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def churn(tmp_path: Path, name: str, *, shift: float = 0.0, seed: int = 8, rows: int = 5000) -> Path:
    out = tmp_path / name
    subprocess.run([sys.executable, str(EXAMPLE / "generate_data.py"), "--rows", str(rows), "--seed", str(seed),
                    "--shift", str(shift), "--out", str(out)], check=True, capture_output=True)
    return out


def outputs(files: dict[str, Path]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if "=" in line)


def drift(*args: str) -> int:
    return cli.main(["weekly-drift", *args])


# ---------------------------------------------------------------------------- same verdicts as Evidently


def mixed_frame(n: int, shift: float, seed: int):  # type: ignore[no-untyped-def]
    """Every kind of column Evidently tells apart; ``shift`` moves some of them and leaves the others."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    few = np.array([0.3, 0.3, 0.2, 0.2]) if not shift else np.array([0.15, 0.25, 0.3, 0.3])
    with_nulls = rng.integers(0, 4, n).astype("float64")
    with_nulls[rng.random(n) < 0.05] = np.nan
    text_nulls = rng.choice(["red", "green", "blue"], n).astype(object)
    text_nulls[rng.random(n) < 0.1] = None
    return pd.DataFrame({
        "x_float": rng.normal(0.4 * shift, 1.0, n),                          # numerical, moves
        "x_float_still": rng.gamma(2.0, 3.0, n),                             # numerical, stays
        "x_int_many": rng.integers(0, 60 + int(20 * shift), n),              # int, > 10 values: numerical
        "x_int_few": rng.choice(4, n, p=few),                                # int, <= 10 values: categorical
        "x_float_nulls_few": with_nulls,                                     # numerical, 4 values: as categories
        "x_float_three": rng.choice([0.5, 1.5, 2.5], n),                     # numerical, 3 values
        "c_plan": rng.choice(["basic", "plus", "pro", "max"], n, p=few),     # categorical, moves
        "c_yes_no": rng.choice(["yes", "no"], n, p=[0.5 + 0.2 * shift, 0.5 - 0.2 * shift]),  # two values
        "c_flag": rng.random(n) < 0.3,                                       # bool
        "c_colour": text_nulls,                                              # categorical with nulls
    })


def evidently_verdicts(reference, current) -> tuple[dict[str, tuple[str, float, bool]], float]:  # type: ignore[no-untyped-def]
    """Evidently's own DataDriftPreset: {column: (method, score, drifted)} and the drifted share."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snap = Report([DataDriftPreset()], include_tests=True).run(current, reference).dict()
    scores = {m["config"]["column"]: (m["config"]["method"], m["value"]) for m in snap["metrics"]
              if m["config"]["type"].endswith("ValueDrift")}
    status = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL" for t in snap["tests"]
              if t["id"] == "drift"}
    share = next(m["value"]["share"] for m in snap["metrics"] if m["config"]["type"].endswith("DriftedColumnsCount"))
    return {c: (method, score, status[c]) for c, (method, score) in scores.items()}, share


@pytest.mark.parametrize(("rows", "shift"), [(20_000, 0.0), (20_000, 1.0), (800, 0.0), (800, 1.0)],
                         ids=["20k-unshifted", "20k-shifted", "800-unshifted", "800-shifted"])
def test_verdicts_equal_evidently_data_drift_preset(tmp_path: Path, runner_files, rows: int, shift: float) -> None:
    import pandas as pd

    reference = mixed_frame(rows, 0.0, seed=1)
    current = mixed_frame(rows, shift, seed=2)
    reference.to_parquet(tmp_path / "reference.parquet")
    current.to_parquet(tmp_path / "current.parquet")
    # Evidently reads the same files as a pandas user would
    theirs, their_share = evidently_verdicts(pd.read_parquet(tmp_path / "reference.parquet"),
                                             pd.read_parquet(tmp_path / "current.parquet"))

    assert drift("--reference", "reference.parquet", "--current", "current.parquet", "--open-issue", "false") == 0
    ours = {c["column"]: c for c in json.loads((tmp_path / "weekly-drift-report/result.json").read_text())["columns"]}

    assert set(ours) == set(theirs) == set(reference.columns)
    for column, (method, score, drifted) in theirs.items():
        mine = ours[column]
        assert mine["statistic"] == method, column
        assert mine["score"] == pytest.approx(score, rel=1e-9, abs=1e-12), column
        assert mine["drifted"] is drifted, column
    result = json.loads((tmp_path / "weekly-drift-report/result.json").read_text())
    assert result["drift_share"] == pytest.approx(their_share)
    methods = {m for m, _, _ in theirs.values()}
    if rows > 1000:
        assert methods == {"Wasserstein distance (normed)", "Jensen-Shannon distance"}
    else:
        assert methods == {"K-S p_value", "chi-square p_value", "Z-test p_value"}
    verdicts = [d for _, _, d in theirs.values()]
    if shift:
        assert any(verdicts) and not all(verdicts), "the shifted data must drift in some columns only"
    else:  # p-value tests at 5% on ten columns may flag one by chance; distances do not
        assert sum(verdicts) <= (0 if rows > 1000 else 2)


# ---------------------------------------------------------------------------- the command, as a step


def test_unshifted_data_opens_no_issue(tmp_path: Path, runner_files, api_recorder) -> None:
    current = churn(tmp_path, "current.csv", seed=8)
    code = drift("--reference", str(REFERENCE), "--current", str(current), "--threshold", "0.3")
    assert code == 0
    out = outputs(runner_files)
    assert out["drift-detected"] == "false"
    assert float(out["drift-share"]) < 0.3
    assert out["issue-number"] == "" and out["retrain-dispatched"] == "false"
    assert api_recorder.fake.requests == []
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert "**No drift**" in summary and "| column | type | statistic | score | threshold | drifted |" in summary
    assert "```mermaid\nxychart-beta" in summary
    html = (tmp_path / "weekly-drift-report/report.html").read_text()
    assert "monthly_charges" in html and "all 5,000 + 5,000 rows" in html and len(html) > 100_000


def test_shifted_data_opens_one_issue_then_comments(tmp_path: Path, runner_files, api_recorder,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    churn(tmp_path, "current.csv", shift=1.0)
    (tmp_path / "leanops.yml").write_text(
        "version: 1\nweekly-drift:\n  threshold: 0.3\n  min-rows: 200\n"
        f"  reference: {REFERENCE}\n  current: current.csv\n  ignore-columns: [customer_id]\n")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    assert drift() == 0
    out = outputs(runner_files)
    assert out["drift-detected"] == "true" and float(out["drift-share"]) >= 0.3
    assert "monthly_charges" in out["drifted-columns"].split(",")
    issues = list(api_recorder.fake.issues.values())
    assert len(issues) == 1
    issue = issues[0]
    assert out["issue-number"] == str(issue["number"])
    assert [label["name"] for label in issue["labels"]] == ["leanops:drift"]
    assert issue["title"].startswith("Data drift: ")
    assert "monthly_charges" in issue["body"] and "/actions/runs/4242" in issue["body"]
    assert "customer_id" not in issue["body"]  # ignored
    result = json.loads((tmp_path / "weekly-drift-report/result.json").read_text())
    assert result["issue_number"] == issue["number"] and result["status"] == "drift"

    # the next week: drift again -> a comment on the same issue, never a second issue
    runner_files["GITHUB_OUTPUT"].write_text("")
    assert drift() == 0
    assert len(api_recorder.fake.issues) == 1
    comments = api_recorder.fake.comments_on(issue["number"])
    assert len(comments) == 1 and "Drift again" in comments[0]["body"]
    assert outputs(runner_files)["issue-number"] == str(issue["number"])
    assert "(commented)" in runner_files["GITHUB_STEP_SUMMARY"].read_text()


def test_two_model_folders_keep_a_drift_issue_each(tmp_path: Path, runner_files, api_recorder,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: one repository, two model folders, both drifting: an issue each (the hidden marker names the
    folder, the title too), and the next week each comments on its own, never on the other's."""
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    current = churn(tmp_path, "current.csv", shift=1.0)
    for folder in ("models/churn", "models/fraud"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "leanops.yml").write_text(
            f"version: 1\nweekly-drift:\n  reference: {REFERENCE}\n  current: {current}\n"
            "  ignore-columns: [customer_id]\n")
    for _week in (1, 2):
        for folder in ("models/churn", "models/fraud"):
            assert drift("--working-directory", str(tmp_path / folder)) == 0
            assert f"artifact-suffix=-{folder.replace('/', '-')}" in runner_files["GITHUB_OUTPUT"].read_text()
    issues = sorted(api_recorder.fake.issues.values(), key=lambda i: i["number"])
    assert [i["title"].split(":")[0] for i in issues] == ["Data drift in models/churn", "Data drift in models/fraud"]
    for issue, folder in zip(issues, ("models-churn", "models-fraud"), strict=True):
        assert issue["body"].startswith(f"<!-- leanops:weekly-drift-{folder} -->")
        comments = api_recorder.fake.comments_on(issue["number"])
        assert len(comments) == 1 and comments[0]["body"].startswith(f"<!-- leanops:weekly-drift-{folder} -->")
        assert f"`weekly-drift-report-{folder}`" in issue["body"]


def test_retrain_dispatch_is_sent_when_enabled(tmp_path: Path, runner_files, api_recorder,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    current = churn(tmp_path, "current.csv", shift=1.0)
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.setenv("LEANOPS_RETRAIN_WORKFLOW", "train.yml")  # as the composite action passes it
    assert drift("--reference", str(REFERENCE), "--current", str(current), "--threshold", "0.3") == 0
    assert api_recorder.fake.dispatches == [{"workflow": "train.yml", "ref": "main", "inputs": {"refresh": "true"}}]
    out = outputs(runner_files)
    assert out["retrain-dispatched"] == "true" and out["issue-number"] != ""
    assert "retraining dispatched: `train.yml` on `main`" in next(iter(api_recorder.fake.issues.values()))["body"]


def test_refused_dispatch_still_opens_the_issue_and_exits_2(tmp_path: Path, runner_files, api_recorder,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    current = churn(tmp_path, "current.csv", shift=1.0)
    api_recorder.fake.fail_next = [403]  # the dispatch: no actions: write
    code = drift("--reference", str(REFERENCE), "--current", str(current), "--threshold", "0.3",
                 "--retrain-workflow", "train.yml")
    assert code == 2
    assert "dispatch refused (HTTP 403); the job needs permissions: actions: write" in capsys.readouterr().err
    assert len(api_recorder.fake.issues) == 1
    out = outputs(runner_files)
    assert out["retrain-dispatched"] == "false" and out["drift-detected"] == "true"


def test_unreachable_api_exits_3(tmp_path: Path, runner_files, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from ..conftest import free_port

    current = churn(tmp_path, "current.csv", shift=1.0)
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GITHUB_REPOSITORY", "example/caller")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_x")
    code = drift("--reference", str(REFERENCE), "--current", str(current), "--threshold", "0.3")
    assert code == 3
    err = capsys.readouterr().err
    assert "unreachable after 3 tries" in err and "Traceback" not in err
    assert outputs(runner_files)["drift-detected"] == "true"  # the verdict is still out


def test_too_few_rows_gives_no_verdict(tmp_path: Path, runner_files, api_recorder,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    current = churn(tmp_path, "current.csv", shift=1.0, rows=50)
    args = ["--reference", str(REFERENCE), "--current", str(current), "--min-rows", "200"]
    assert drift(*args) == 0
    out = outputs(runner_files)
    assert out["drift-detected"] == "unknown" and out["drift-share"] == "" and out["issue-number"] == ""
    stdout = capsys.readouterr().out
    assert "::notice title=leanops weekly-drift::too few rows for a drift verdict: current has 50" in stdout
    assert "**No verdict**" in runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert api_recorder.fake.requests == []

    runner_files["GITHUB_OUTPUT"].write_text("")
    assert drift(*args, "--fail-on-insufficient-data") == 1
    assert outputs(runner_files)["drift-detected"] == "unknown"
    assert "fail-on-insufficient-data is true" in capsys.readouterr().err


def test_different_columns_exit_2_listing_the_differences(tmp_path: Path, runner_files,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    current = churn(tmp_path, "current.csv")
    lines = current.read_text().splitlines()
    header = lines[0].replace("gender", "sex").replace(",churned", "")
    body = [",".join(row.split(",")[:-1]) for row in lines[1:]]
    current.write_text("\n".join([header + ",region", *[r + ",north" for r in body]]) + "\n")
    code = drift("--reference", str(REFERENCE), "--current", str(current))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert ("reference and current data have different columns: only in the reference: gender, churned; "
            "only in the current data: sex, region") in err[0]


def test_missing_file_exits_2(tmp_path: Path, runner_files, capsys: pytest.CaptureFixture[str]) -> None:
    assert drift("--reference", str(REFERENCE), "--current", "logs/*.jsonl") == 2
    assert "current: no file matches the glob 'logs/*.jsonl'" in capsys.readouterr().err
    assert drift("--reference", "nope.csv", "--current", str(REFERENCE)) == 2
    assert "nope.csv: reference: file not found" in capsys.readouterr().err


def test_serve_prediction_logs_as_current(tmp_path: Path, runner_files, api_recorder) -> None:
    """JSON lines written by `leanops serve --log-predictions`, with prediction drift against the labels."""
    import pyarrow.csv as pcsv

    current = pcsv.read_csv(churn(tmp_path, "shifted.csv", shift=1.0)).to_pylist()
    features = ["tenure_months", "monthly_charges", "total_charges", "contract", "payment_method",
                "internet_service", "support_calls", "senior_citizen"]
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "predictions-1.jsonl", "w") as fh:
        for start in range(0, 3000, 30):  # requests of 30 records
            batch = current[start:start + 30]
            fh.write(json.dumps({"ts": 1.7e9 + start, "model_name": "churn", "model_version": "3",
                                 "inputs": [{k: r[k] for k in features} for r in batch],
                                 "predictions": [r["churned"] for r in batch]}) + "\n")
    with open(logs / "predictions-2.jsonl", "w") as fh:  # the other two shapes
        for r in current[3000:3500]:
            fh.write(json.dumps({"inputs": {k: r[k] for k in features}, "prediction": r["churned"]}) + "\n")
        for r in current[3500:4000]:
            fh.write(json.dumps({**{k: r[k] for k in features}, "prediction": r["churned"]}) + "\n")
    code = drift("--reference", str(REFERENCE), "--current", "logs/*.jsonl", "--target-column", "churned",
                 "--ignore-columns", "customer_id,gender", "--threshold", "0.3", "--open-issue", "false")
    assert code == 0
    result = json.loads((tmp_path / "weekly-drift-report/result.json").read_text())
    assert result["current"]["rows"] == 4000
    assert {c["column"] for c in result["columns"] if c["role"] == "feature"} == set(features)
    pred = next(c for c in result["columns"] if c["role"] == "prediction")
    assert pred["column"] == "prediction" and pred["statistic"] == "Jensen-Shannon distance"
    assert result["prediction_drift"] == ("true" if pred["drifted"] else "false")
    assert outputs(runner_files)["prediction-drift"] == result["prediction_drift"]
    assert "(prediction)" in runner_files["GITHUB_STEP_SUMMARY"].read_text()


# ---------------------------------------------------------------------------- the champion's training data


def test_reference_defaults_to_the_champions_training_data(tmp_path: Path, runner_files, api_recorder,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """model.name's alias champion -> its run's dvc.dep.* tag -> the file at that MD5 (work tree, then DVC cache)."""
    import hashlib

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / ".dvc").mkdir()
    train = project / "data" / "train.csv"
    shutil.copy(REFERENCE, train)
    md5 = hashlib.md5(train.read_bytes()).hexdigest()
    churn(project, "current.csv", shift=1.0)
    (project / "leanops.yml").write_text("version: 1\nmodel:\n  name: churn\nweekly-drift:\n  current: current.csv\n"
                                         "  threshold: 0.3\n  ignore-columns: [customer_id]\n")
    db = project / ".leanops" / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")  # not the process's registry
    exp = client.create_experiment("churn", artifact_location=(project / "artifacts").as_uri())
    run = client.create_run(exp, tags={"dvc.dep.data/train.csv": md5, "dvc.dep.src/train.py": "0" * 32,
                                       "mlflow.source.git.commit": "a" * 40})
    client.set_terminated(run.info.run_id)
    client.create_registered_model("churn")
    version = client.create_model_version("churn", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("churn", "champion", version.version)

    assert drift("--working-directory", str(project), "--open-issue", "false") == 0
    result = json.loads((project / "weekly-drift-report/result.json").read_text())
    assert result["reference"]["source"] == "models:/churn/1 (champion): data/train.csv"
    assert result["reference"]["rows"] == 5000 and result["status"] == "drift"

    # the work tree moved on; the champion's version is still in the DVC cache
    cached = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    shutil.copy(train, cached)
    train.write_text(train.read_text().splitlines()[0] + "\n" + "\n".join(train.read_text().splitlines()[1:50]) + "\n")
    assert drift("--working-directory", str(project), "--open-issue", "false") == 0
    result = json.loads((project / "weekly-drift-report/result.json").read_text())
    assert result["reference"]["rows"] == 5000
    with sqlite3.connect(db) as con:  # nothing was written to the tracking store
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_no_reference_and_no_champion_is_bad_input(tmp_path: Path, runner_files,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    churn(tmp_path, "current.csv")
    (tmp_path / "leanops.yml").write_text("version: 1\nmodel:\n  name: churn\nweekly-drift:\n  current: current.csv\n")
    assert drift() == 2
    err = capsys.readouterr().err
    assert "no reference data: set weekly-drift.reference in " in err and "leanops.yml:4 (or the reference" in err
    assert "no tracking server (MLFLOW_TRACKING_URI) or local store" in err


# ---------------------------------------------------------------------------- stale-check


def _run(days_ago: float, conclusion: str, event: str = "schedule") -> dict[str, object]:
    when = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return {"id": int(days_ago * 1000), "event": event, "status": "completed", "conclusion": conclusion,
            "created_at": when, "updated_at": when}


def test_stale_check_opens_an_issue_when_the_last_success_is_old(runner_files, api_recorder,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WORKFLOW_REF", "example/caller/.github/workflows/drift.yml@refs/heads/main")
    api_recorder.fake.workflow_runs["drift.yml"] = [
        _run(2, "failure"), _run(3, "success", event="push"), _run(9, "failure"), _run(10, "success")]
    assert drift("stale-check") == 0
    out = outputs(runner_files)
    assert out["stale"] == "true" and out["issue-number"] != ""
    issue = api_recorder.fake.issues[int(out["issue-number"])]
    assert [label["name"] for label in issue["labels"]] == ["leanops:drift-stale"]
    assert "the last successful drift run was 10 days ago" in issue["body"]
    assert "gh workflow enable drift.yml" in issue["body"]
    # a second stale check comments, never a second issue
    assert drift("stale-check") == 0
    assert len(api_recorder.fake.issues) == 1 and len(api_recorder.fake.comments_on(issue["number"])) == 1


def test_stale_check_is_quiet_when_a_recent_run_succeeded(runner_files, api_recorder) -> None:
    api_recorder.fake.workflow_runs["weekly-drift.yml"] = [_run(1, "success", event="workflow_dispatch"),
                                                           _run(20, "success")]
    assert drift("stale-check", "--stale-after-days", "8") == 0
    out = outputs(runner_files)
    assert out["stale"] == "false" and out["issue-number"] == ""
    assert api_recorder.fake.issues == {}
    assert "Fresh: the last successful drift run" in runner_files["GITHUB_STEP_SUMMARY"].read_text()


def test_dispatch_subcommand(runner_files, api_recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REF_NAME", "release")
    assert drift("dispatch", "--retrain-workflow", "train-with-cache.yml") == 0
    assert api_recorder.fake.dispatches == [{"workflow": "train-with-cache.yml", "ref": "release",
                                             "inputs": {"refresh": "true"}}]  # fresh data in first (issue 15)
    assert outputs(runner_files)["retrain-dispatched"] == "true"


def test_a_retrain_workflow_without_the_refresh_input_is_dispatched_without_it(
        runner_files, api_recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    api_recorder.fake.fail_next = [422]  # GitHub: Unexpected inputs provided: ["refresh"]
    assert drift("dispatch", "--retrain-workflow", "old.yml") == 0
    assert api_recorder.fake.dispatches == [{"workflow": "old.yml", "ref": "main", "inputs": {}}]
    captured = capsys.readouterr()
    assert "retrain-workflow old.yml: it has no input refresh" in captured.out + captured.err


def test_scores_are_finite_in_the_json(tmp_path: Path, runner_files) -> None:
    current = churn(tmp_path, "current.csv", shift=0.5)
    assert drift("--reference", str(REFERENCE), "--current", str(current), "--open-issue", "false") == 0
    result = json.loads((tmp_path / "weekly-drift-report/result.json").read_text())
    assert all(math.isfinite(c["score"]) for c in result["columns"])
    snapshot = json.loads((tmp_path / "weekly-drift-report/evidently.json").read_text())
    assert snapshot["metrics"][0]["value"]["share"] == pytest.approx(result["drift_share"])
