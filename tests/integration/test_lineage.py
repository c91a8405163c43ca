"""`leanops lineage` against a real mlflow server: the record ties data hashes, validation, commit, params, run,
version, gate report, image and canary together; it is logged to the version's run and tagged on the version;
`lineage image` finds the image again (so ml-pipeline does not rebuild it) and `lineage show` prints it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from leanops import cli

from ..unit.test_gh import parse_outputs

for _key, _value in (("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true")):
    os.environ.setdefault(_key, _value)

MODEL = "lineage-it"
IMAGE = "127.0.0.1:5000/lineage-it@sha256:" + "ab" * 32
GATE_REPORT = {
    "passed": True,
    "candidate": {"label": "candidate", "version": "", "metrics": {"roc_auc": 0.83}},
    "champion": {"label": "champion", "version": "1", "metrics": {"roc_auc": 0.82}},
    "gates": [{"metric": "roc_auc", "direction": "higher", "candidate": 0.83, "champion": 0.82, "delta": 0.01,
               "threshold": ">= 0.6", "verdict": "pass", "reasons": [], "notes": [], "interval": None}],
    "notes": [], "history": [],
}
VALIDATION = {"success": True, "evaluated": 36, "failed": 0, "warnings": 0, "suite": "expectations/churn.json",
              "datasets": [{"path": "data/raw/churn.csv", "rows": 5000, "evaluated": 36}]}


def register(uri: str) -> tuple[str, str]:
    """A training run as train-with-cache leaves it (params, metrics, the DVC hashes) and a version of MODEL."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(MODEL)
    x = np.random.default_rng(0).normal(size=(20, 2))
    with mlflow.start_run() as run:
        mlflow.log_params({"train.C": "1.0", "train.seed": "42"})
        mlflow.log_metrics({"roc_auc": 0.83, "f1": 0.61})
        mlflow.set_tags({"leanops.dvc_lock_sha256": "c0ffee" * 10, "dvc.dep.data/raw/churn.csv": "9" * 32})
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, x[:, 0] > 0), name="model",
                                        pip_requirements=["scikit-learn"])
    return str(mlflow.register_model(info.model_uri, MODEL).version), run.info.run_id


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MLFLOW_TRACKING_URI", "GITHUB_EVENT_PATH", "LEANOPS_MODEL_VERSION", "LEANOPS_IMAGE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("GITHUB_SHA", "1234567890abcdef1234567890abcdef12345678"), ("GITHUB_REF", "refs/heads/main"),
                        ("GITHUB_REPOSITORY", "acme/churn"), ("GITHUB_RUN_ID", "99"), ("GITHUB_ACTOR", "mona"),
                        ("GITHUB_EVENT_NAME", "push")):
        monkeypatch.setenv(name, value)
    (tmp_path / "leanops.yml").write_text(f"version: 1\nmodel:\n  name: {MODEL}\n")
    (tmp_path / "reports/gate-metrics").mkdir(parents=True)  # an artifact that kept its folder's name
    (tmp_path / "reports/gate-metrics/report.json").write_text(json.dumps(GATE_REPORT))
    (tmp_path / "reports/result.json").write_text(json.dumps(VALIDATION))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_record_is_kept_with_the_model_version(project: Path, runner_files: dict[str, Path], mlflow_server: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    version, run_id = register(mlflow_server)
    base = ["lineage", "record", "--tracking-uri", mlflow_server, "--model-version", version]
    assert cli.main([*base, "--image", IMAGE, "--data-valid", "true", "--validation-result", "reports/result.json",
                     "--gate-passed", "true", "--gate-report", "reports/report.json", "--canary-verdict", "promoted",
                     "--champion-version", version]) == 0
    out = parse_outputs(runner_files["GITHUB_OUTPUT"].read_text())
    record_file = Path(out["record-file"])
    assert record_file == project / ".leanops/lineage/lineage.json"
    rec = json.loads(record_file.read_text())
    assert rec["schema"] == "leanops.lineage/v1"
    assert rec["source"]["commit"] == "1234567890abcdef1234567890abcdef12345678"
    assert rec["source"]["workflow_run"] == "https://github.com/acme/churn/actions/runs/99"
    # refreshed: [] is the committed data (train-with-cache --refresh lists what it read, see test_refresh)
    assert rec["data"] == {"dvc_lock_sha256": "c0ffee" * 10, "files": {"data/raw/churn.csv": "9" * 32},
                           "refreshed": []}
    assert rec["validation"]["success"] is True and rec["validation"]["evaluated"] == 36
    assert rec["training"]["run_id"] == run_id and rec["training"]["params"] == {"train.C": "1.0", "train.seed": "42"}
    assert rec["training"]["metrics"]["roc_auc"] == pytest.approx(0.83)
    assert rec["model"] == {"name": MODEL, "version": version, "uri": f"models:/{MODEL}/{version}", "aliases": []}
    assert rec["gate"]["passed"] is True and rec["gate"]["champion_version"] == "1"
    assert rec["gate"]["gates"][0]["metric"] == "roc_auc"
    assert rec["image"] == {"ref": IMAGE, "digest": "sha256:" + "ab" * 32}
    assert rec["canary"] == {"verdict": "promoted"}
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert f"## leanops lineage: {MODEL} version {version}" in summary and f"`{IMAGE}`" in summary
    assert "| approved by | mona |" in summary
    assert record_file.with_suffix(".md").read_text() in summary

    # kept with the model version: the JSON on its run, the tags on the version
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    tags = client.get_model_version(MODEL, version).tags
    assert tags["leanops.image"] == IMAGE and tags["leanops.lineage.canary"] == "promoted"
    assert tags["leanops.lineage.commit"].startswith("1234567890ab")
    logged = [f.path for f in client.list_artifacts(run_id, "lineage")]
    assert logged == [tags["leanops.lineage.record"]]
    kept = json.loads(Path(client.download_artifacts(run_id, logged[0], str(project / "dl"))).read_text())
    assert kept == rec

    # ml-pipeline's lookup: the image of an unchanged model version
    runner_files["GITHUB_OUTPUT"].write_text("")
    assert cli.main(["lineage", "image", "--tracking-uri", mlflow_server, "--model-version", version]) == 0
    assert parse_outputs(runner_files["GITHUB_OUTPUT"].read_text())["image"] == IMAGE

    # an auditor's view
    capsys.readouterr()
    assert cli.main(["lineage", "show", "--tracking-uri", mlflow_server, "--model-version", version]) == 0
    shown = capsys.readouterr().out
    assert f"## leanops lineage: {MODEL} version {version}" in shown and "c0ffeec0ffee" in shown


def test_a_version_without_a_record(project: Path, runner_files: dict[str, Path], mlflow_server: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    version, _run_id = register(mlflow_server)
    assert cli.main(["lineage", "image", "--tracking-uri", mlflow_server, "--model-version", version]) == 0
    assert parse_outputs(runner_files["GITHUB_OUTPUT"].read_text())["image"] == ""
    capsys.readouterr()
    assert cli.main(["lineage", "show", "--tracking-uri", mlflow_server, "--model-version", version]) == 2
    assert "has no lineage record" in capsys.readouterr().err
    assert cli.main(["lineage", "record", "--tracking-uri", mlflow_server]) == 2
    assert "model-version: missing" in capsys.readouterr().err
    assert cli.main(["lineage", "record", "--tracking-uri", mlflow_server, "--model-version", "999"]) == 2
    assert f"{MODEL} has no version 999" in capsys.readouterr().err


def test_missing_reports_are_named_not_fatal(project: Path, runner_files: dict[str, Path], mlflow_server: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    version, _run_id = register(mlflow_server)
    assert cli.main(["lineage", "record", "--tracking-uri", mlflow_server, "--model-version", version,
                     "--gate-report", "nowhere/report.json", "--gate-passed", "true", "--skipped"]) == 0
    rec = json.loads((project / ".leanops/lineage/lineage.json").read_text())
    assert rec["gate"] == {"passed": True, "report": "not available"}
    assert rec["validation"] == {"success": None, "result": "not available"}
    assert rec["training"]["skipped"] is True and rec["image"]["ref"] == ""
    assert "gate-metrics' report: nowhere/report.json not found" in capsys.readouterr().out
