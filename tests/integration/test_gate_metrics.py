"""gate-metrics against a real `mlflow server` on loopback (the `mlflow_server` fixture).

The test registers versions itself with mlflow, then: gate a first model (no champion yet), promote it, gate a
better candidate against the champion (paired bootstrap on the predictions logged at promotion, latency of the
registered model loaded through mlflow.pyfunc), promote it, gate a regressing candidate, roll back; the
aliases, the tags on the versions and the promotion log on the registered model are checked at each step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from leanops import cli, models
from leanops.train_with_cache.registry import logged_digest

from ..unit.test_gh import parse_outputs

for _key, _value in (("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true")):
    os.environ.setdefault(_key, _value)

MODEL = "gate-it"
CONFIG = f"""\
version: 1
model:
  name: {MODEL}
gate-metrics:
  champion: mlflow
  metrics-file: metrics.json
  gates:
    roc_auc:
      min: 0.6
      max-regression: 0.01
    f1:
      min: 0.3
      max-regression: 0.02
  bootstrap:
    predictions: predictions.csv
    iterations: 400
  fairness:
    sensitive-column: gender
    min-demographic-parity-ratio: 0.2
  latency:
    data: rows.csv
    max-p95-single-ms: 2000
    batch-size: 16
    samples: 20
"""


@pytest.fixture
def client(mlflow_server: str):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server, registry_uri=mlflow_server)


def register(client, uri: str, metrics: dict[str, float]) -> str:  # noqa: ANN001
    """A run with these metrics and a small scikit-learn model, registered as a new version of MODEL."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    rng = np.random.default_rng(len(metrics))
    x = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])  # the columns of rows.csv
    model = LogisticRegression().fit(x, (x["a"] > 0).astype(int))
    mlflow.set_experiment("gate-it")
    with mlflow.start_run():
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    # with the digest of its files on the version, as train-with-cache registers it (loaders check it first)
    tags = {models.TAG_SHA256: logged_digest(info.model_uri, uri)}
    return str(mlflow.register_model(info.model_uri, MODEL, tags=tags).version)


def write_candidate(root: Path, metrics: dict[str, float], flipped: float, seed: int = 0) -> None:
    """metrics.json and predictions.csv of a candidate: ``flipped`` of the predictions made wrong on purpose."""
    rng = np.random.default_rng(100)  # the evaluation set: the same examples and labels for every version
    n = 400
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 + (y - 0.5) * rng.uniform(0.2, 1, n), 0, 1)
    gender = rng.choice(["f", "m"], n)
    flip = np.random.default_rng(seed).random(n) < flipped
    score = np.where(flip, 1 - score, score)
    lines = ["customer_id,y_true,y_pred,y_score,gender"]
    lines += [f"{1000 + i},{y[i]},{int(score[i] >= 0.5)},{score[i]:.4f},{gender[i]}" for i in range(n)]
    (root / "predictions.csv").write_text("\n".join(lines) + "\n")
    (root / "metrics.json").write_text(json.dumps(metrics))


def outputs(files: dict[str, Path]) -> dict[str, str]:
    out = parse_outputs(files["GITHUB_OUTPUT"].read_text())
    files["GITHUB_OUTPUT"].write_text("")
    return out


def test_gate_promote_gate_again_and_roll_back(tmp_path: Path, runner_files: dict[str, Path], mlflow_server: str,
                                                client, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_EVENT_PATH", "GITHUB_BASE_REF", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_ACTOR", "octo")
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    (root / "leanops.yml").write_text(CONFIG)
    (root / "rows.csv").write_text("a,b\n" + "\n".join(f"{i / 10},{-i / 10}" for i in range(30)) + "\n")
    summary = runner_files["GITHUB_STEP_SUMMARY"]

    def run(*argv: str) -> int:
        summary.write_text("")
        return cli.main(["gate-metrics", *argv, "--working-directory", str(root), "--tracking-uri", mlflow_server,
                         "--comment", "false"])

    # 1: the first model: no champion yet, absolute gates only, said plainly
    v1 = register(client, mlflow_server, {"roc_auc": 0.80, "f1": 0.70})
    write_candidate(root, {"roc_auc": 0.80, "f1": 0.70}, flipped=0.10, seed=1)
    assert run("--model-version", v1) == 0
    out = outputs(runner_files)
    assert (out["passed"], out["candidate-version"], out["champion-version"]) == ("true", v1, "")
    text = summary.read_text()
    assert "none yet (mlflow)" in text and "only the absolute gates (min/max) apply" in text
    assert "latency: p95 of models:/gate-it/1's predict on rows.csv (30 rows)" in text

    assert run("promote", "--model-version", v1) == 0
    out = outputs(runner_files)
    assert (out["champion-version"], out["previous-champion-version"], out["promoted"]) == (v1, "", "true")
    mv1 = client.get_model_version_by_alias(MODEL, "champion")
    assert mv1.version == v1 and mv1.tags["leanops.promoted_by"] == "octo"
    assert mv1.tags["leanops.promoted_commit"] == "a" * 40 and mv1.tags["leanops.previous_champion"] == ""
    recorded = json.loads(mv1.tags["leanops.metrics"])
    assert recorded["roc_auc"] == 0.80 and 0 < recorded["demographic_parity_ratio"] <= 1
    assert mv1.tags["leanops.predictions_artifact"] == "gate-metrics/predictions.csv"

    # 2: a better candidate against the champion: the bootstrap runs on the champion's logged predictions
    v2 = register(client, mlflow_server, {"roc_auc": 0.85, "f1": 0.75})
    write_candidate(root, {"roc_auc": 0.85, "f1": 0.75}, flipped=0.0)
    assert run("--model-version", v2) == 0
    out = outputs(runner_files)
    assert (out["passed"], out["candidate-version"], out["champion-version"]) == ("true", v2, v1)
    text = summary.read_text()
    assert f"{MODEL} version {v1} (@champion)" in text
    assert "paired bootstrap: 400 resamples of the 400 examples" in text
    assert "gate-metrics/predictions.csv of run" in text
    report = json.loads(Path(out["report-file"]).read_text())
    auc = next(g for g in report["gates"] if g["metric"] == "roc_auc")
    assert auc["champion"] == 0.80 and auc["delta"] == pytest.approx(0.05) and auc["interval"]["low"] > 0

    assert run("promote", "--model-version", v2) == 0
    out = outputs(runner_files)
    assert (out["champion-version"], out["previous-champion-version"]) == (v2, v1)
    assert client.get_model_version_by_alias(MODEL, "champion").version == v2
    assert client.get_model_version_by_alias(MODEL, "previous-champion").version == v1
    old = client.get_model_version(MODEL, v1)
    assert old.tags["leanops.replaced_by"] == v2 and old.tags["leanops.demoted_at"]
    assert old.tags["leanops.promoted_at"]  # its own promotion stays recorded
    assert client.get_model_version(MODEL, v2).tags["leanops.previous_champion"] == v1

    # 3: a regressing candidate fails: significant on the bootstrap, with the history of champions charted
    v3 = register(client, mlflow_server, {"roc_auc": 0.70, "f1": 0.60})
    write_candidate(root, {"roc_auc": 0.70, "f1": 0.60}, flipped=0.3, seed=3)
    assert run("--model-version", v3) == 1
    out = outputs(runner_files)
    assert (out["passed"], out["candidate-version"], out["champion-version"]) == ("false", v3, v2)
    text = summary.read_text()
    assert "❌ failed" in text and "significant" in text
    assert f'x-axis ["v{v1}", "v{v2}", "candidate"]' in text and "line [0.8, 0.85, 0.7]" in text
    assert client.get_model_version_by_alias(MODEL, "champion").version == v2  # nothing moved

    # 4: roll back: previous-champion becomes the champion again, and the log keeps every change
    assert run("promote", "--rollback", "true") == 0
    assert client.get_model_version_by_alias(MODEL, "champion").version == v1
    assert client.get_model_version_by_alias(MODEL, "previous-champion").version == v2
    assert client.get_model_version(MODEL, v1).tags["leanops.promotion"] == "rollback"
    log = json.loads(client.get_registered_model(MODEL).tags["leanops.promotions"])
    assert [(e["version"], e["previous"], e["kind"], e["by"]) for e in log] == [
        (v1, "", "promote", "octo"), (v2, v1, "promote", "octo"), (v1, v2, "rollback", "octo")]

    # promoting the champion again changes nothing
    assert run("promote", "--model-version", v1) == 0
    assert outputs(runner_files)["promoted"] == "false"
    assert len(json.loads(client.get_registered_model(MODEL).tags["leanops.promotions"])) == 3


def test_a_missing_version_and_an_unknown_run_are_configuration_errors(tmp_path: Path, runner_files, mlflow_server,
                                                                       monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leanops.yml").write_text(CONFIG.replace(MODEL, "nobody"))
    (tmp_path / "metrics.json").write_text('{"roc_auc": 0.8, "f1": 0.7}')
    base = ["gate-metrics", "--working-directory", str(tmp_path), "--tracking-uri", mlflow_server, "--comment", "false"]
    assert cli.main([*base, "--model-version", "99"]) == 2
    assert "model-version: nobody has no version 99" in capsys.readouterr().err
    assert cli.main([*base, "promote"]) == 2
    assert "no version of nobody has the alias challenger" in capsys.readouterr().err


def test_the_embedded_sqlite_store_is_read_without_a_server(tmp_path: Path, runner_files: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The store train-with-cache keeps in .leanops/mlflow when no server is configured: read with sqlite3."""
    from mlflow import MlflowClient

    for name in ("GITHUB_EVENT_PATH", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    root = tmp_path / "project"
    (root / ".leanops/mlflow").mkdir(parents=True)
    monkeypatch.chdir(root)
    uri = f"sqlite:///{root / '.leanops/mlflow/mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    (root / "leanops.yml").write_text(CONFIG.replace("  latency:\n    data: rows.csv\n    max-p95-single-ms: 2000\n"
                                                     "    batch-size: 16\n    samples: 20\n", ""))
    v1 = register(client, uri, {"roc_auc": 0.80, "f1": 0.70})
    v2 = register(client, uri, {"roc_auc": 0.83, "f1": 0.72, "nan_metric": float("nan")})
    write_candidate(root, {"roc_auc": 0.80, "f1": 0.70}, flipped=0.1, seed=1)
    # no --tracking-uri: the embedded store under the working directory
    base = ["gate-metrics", "--working-directory", str(root), "--comment", "false"]
    assert cli.main([*base, "promote", "--model-version", v1]) == 0
    write_candidate(root, {"roc_auc": 0.83, "f1": 0.72}, flipped=0.0)
    assert cli.main([*base, "--run-id", client.get_model_version(MODEL, v2).run_id, "--metrics-file", ""]) == 0
    out = parse_outputs(runner_files["GITHUB_OUTPUT"].read_text())
    assert (out["passed"], out["candidate-version"], out["champion-version"]) == ("true", v2, v1)
    report = json.loads(Path(out["report-file"]).read_text())
    assert report["candidate"]["from"] == "metrics.json"  # leanops.yml's metrics-file wins over the run's metrics
    assert report["champion"]["metrics"]["roc_auc"] == 0.80
    assert "demographic_parity_ratio" in report["champion"]["metrics"]  # recorded at promotion
    assert [h["label"] for h in report["history"]] == [f"v{v1}"]
    assert any("paired bootstrap: 400 resamples" in n for n in report["notes"])
    assert cli.main([*base, "promote", "--model-version", v2]) == 0
    assert str(client.get_model_version_by_alias(MODEL, "previous-champion").version) == v1
    assert client.get_model_version(MODEL, v1).tags["leanops.replaced_by"] == v2
