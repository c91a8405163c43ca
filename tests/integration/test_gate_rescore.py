"""gate-metrics re-scores the champion on the candidate's evaluation rows (issue 15, a fair comparison).

The champion was promoted with predictions on its own evaluation rows (easy data: roc_auc about 0.97, recorded
at promotion). New data arrives (other ids, harder): the candidate scores about 0.8 on it. Compared with the
champion's recorded 0.97 the candidate "regressed" by far more than allowed; scored on the same new rows the
champion does no better, so the gate passes, and the report says the champion was re-scored. A champion that
cannot be scored (its input columns are missing, its files do not match their digest) leaves absolute thresholds
only, marked. The embedded sqlite store, real scikit-learn models registered with their digest.
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

MODEL = "rescore-it"
ALLOWED = 0.02
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
      max-regression: {ALLOWED}
    f1:
      min: 0.3
      max-regression: 0.05
  bootstrap:
    predictions: predictions.csv
    evaluation-data: rows.csv
    iterations: 300
  fairness:
    sensitive-column: gender
    min-demographic-parity-ratio: 0.1
"""


def rows(first_id: int, n: int, noise: float, seed: int):  # noqa: ANN201
    """An evaluation set: ids, two features, a label that ``noise`` makes harder to predict."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = ((x[:, 0] + 0.5 * x[:, 1] + noise * rng.normal(size=n)) > 0).astype(int)
    return pd.DataFrame({"customer_id": np.arange(first_id, first_id + n), "a": x[:, 0], "b": x[:, 1],
                         "gender": rng.choice(["f", "m"], n), "churned": y})


def fit(frame):  # noqa: ANN001, ANN201
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(frame[["a", "b"]], frame["churned"])


def write_evaluation(root: Path, model, frame) -> dict[str, float]:  # noqa: ANN001
    """What an evaluation stage writes: predictions.csv (per example) and metrics.json, computed by scikit-learn."""
    from sklearn.metrics import f1_score, roc_auc_score

    score = model.predict_proba(frame[["a", "b"]])[:, 1]
    pred = (score >= 0.5).astype(int)
    lines = ["customer_id,y_true,y_pred,y_score,gender"]
    lines += [f"{i},{t},{p},{s:.6f},{g}" for i, t, p, s, g in zip(frame["customer_id"], frame["churned"], pred, score,
                                                                            frame["gender"], strict=True)]
    (root / "predictions.csv").write_text("\n".join(lines) + "\n")
    metrics = {"roc_auc": float(roc_auc_score(frame["churned"], score)),
               "f1": float(f1_score(frame["churned"], pred))}
    (root / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def register(uri: str, model, frame) -> str:  # noqa: ANN001
    """A version of MODEL with a signature and the digest of its files, as train-with-cache registers it."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(MODEL)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],
                                        signature=infer_signature(frame[["a", "b"]], model.predict(frame[["a", "b"]])))
    tags = {models.TAG_SHA256: logged_digest(info.model_uri, uri)}
    return str(mlflow.register_model(info.model_uri, MODEL, tags=tags).version)


@pytest.fixture
def project(tmp_path: Path, runner_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A champion promoted with predictions on its own (old, easy) rows; the candidate's new (harder) rows."""
    for name in ("GITHUB_EVENT_PATH", "MLFLOW_TRACKING_URI", "GITHUB_BASE_REF"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    root = tmp_path / "project"
    (root / ".leanops/mlflow").mkdir(parents=True)
    monkeypatch.chdir(root)
    (root / "leanops.yml").write_text(CONFIG)
    uri = f"sqlite:///{root / '.leanops/mlflow/mlflow.db'}"
    old = rows(1000, 400, noise=0.1, seed=1)
    champion = fit(old)
    recorded = write_evaluation(root, champion, old)
    v1 = register(uri, champion, old)
    base = ["gate-metrics", "--working-directory", str(root), "--comment", "false"]
    assert cli.main([*base, "promote", "--model-version", v1]) == 0  # logs predictions.csv (ids 1000..1399)
    runner_files["GITHUB_OUTPUT"].write_text("")

    new = rows(5000, 400, noise=1.0, seed=2)  # new customers, a harder problem
    new.to_csv(root / "rows.csv", index=False)
    candidate = fit(new)
    cand_metrics = write_evaluation(root, candidate, new)
    return {"root": root, "uri": uri, "v1": v1, "base": base, "recorded": recorded, "candidate": cand_metrics,
            "champion": champion, "new": new, "files": runner_files}


def report_of(files: dict[str, Path]) -> dict:  # type: ignore[type-arg]
    out = parse_outputs(files["GITHUB_OUTPUT"].read_text())
    return json.loads(Path(out["report-file"]).read_text())


def test_the_champion_is_rescored_on_the_candidates_rows_and_paired(project) -> None:  # noqa: ANN001
    from sklearn.metrics import roc_auc_score

    # the old behaviour: the champion's recorded roc_auc (its own easy rows) against the candidate's (new rows)
    drop = project["recorded"]["roc_auc"] - project["candidate"]["roc_auc"]
    assert drop > 5 * ALLOWED, "the setup must make a comparison of different data fail"
    code = cli.main(project["base"])
    report = report_of(project["files"])
    assert code == 0, report
    new = project["new"]
    on_new = roc_auc_score(new["churned"], project["champion"].predict_proba(new[["a", "b"]])[:, 1])
    gate = {g["metric"]: g for g in report["gates"]}
    # the champion's value is its score on the candidate's 400 rows, not the 0.97 recorded on its own rows
    assert gate["roc_auc"]["champion"] == pytest.approx(on_new, abs=1e-9)
    assert abs(gate["roc_auc"]["champion"] - project["recorded"]["roc_auc"]) > 0.05
    assert gate["roc_auc"]["interval"]["n"] == 400  # the paired bootstrap ran on the same examples
    assert gate["f1"]["interval"] is not None
    # fairness too: measured on the champion's predictions for the new rows, not the value recorded at promotion
    from fairlearn.metrics import demographic_parity_ratio

    pred = project["champion"].predict(new[["a", "b"]])
    expected = demographic_parity_ratio(new["churned"], pred, sensitive_features=new["gender"])
    assert report["champion"]["metrics"]["demographic_parity_ratio"] == pytest.approx(expected, abs=1e-9)
    notes = "\n".join(report["notes"])
    assert "champion re-scored on 400 rows of the candidate's evaluation set (rows.csv)" in notes
    assert "paired bootstrap: 300 resamples of the 400 examples" in notes
    assert "re-scored on 400 rows" in report["champion"]["from"]
    assert (project["root"] / ".leanops/gate-metrics/report.md").read_text().count("champion re-scored on 400") == 1


def test_a_champion_that_cannot_be_scored_leaves_absolute_thresholds_only(project) -> None:  # noqa: ANN001
    import pandas as pd

    # the columns differ: the new rows lack the champion's input column b
    pd.read_csv(project["root"] / "rows.csv").drop(columns=["b"]).to_csv(project["root"] / "rows.csv", index=False)
    assert cli.main(project["base"]) == 0  # the absolute thresholds pass; nothing compared with the champion
    report = report_of(project["files"])
    notes = "\n".join(report["notes"])
    assert "⚠️ absolute thresholds only: the champion could not be re-scored" in notes
    assert "the columns differ: rows.csv lacks the champion's input columns b" in notes
    for gate in report["gates"]:
        assert gate["champion"] is None and gate["interval"] is None
    for gate in report["gates"][:2]:  # roc_auc and f1, the gates with a max-regression
        assert any("regression not checked: absolute thresholds only" in n for n in gate["notes"]), gate
    assert "absolute thresholds only" in (project["root"] / ".leanops/gate-metrics/report.md").read_text()


def test_a_champion_whose_files_fail_their_digest_is_not_loaded(project) -> None:  # noqa: ANN001
    from mlflow import MlflowClient

    client = MlflowClient(project["uri"], registry_uri=project["uri"])
    client.set_model_version_tag(MODEL, project["v1"], models.TAG_SHA256, "0" * 64)
    project["files"]["GITHUB_OUTPUT"].write_text("")
    assert cli.main(project["base"]) == 0
    notes = "\n".join(report_of(project["files"])["notes"])
    assert "absolute thresholds only: the champion could not be re-scored" in notes
    assert "the model does not load" in notes and "do not match the digest" in notes


def test_an_absolute_threshold_still_fails_when_the_champion_cannot_be_scored(project) -> None:  # noqa: ANN001
    (project["root"] / "rows.csv").unlink()
    config = project["root"] / "leanops.yml"
    config.write_text(config.read_text().replace("min: 0.6", "min: 0.99"))
    assert cli.main(project["base"]) == 1
    report = report_of(project["files"])
    assert "the evaluation rows rows.csv are not in the workspace" in "\n".join(report["notes"])
    assert {g["metric"]: g["verdict"] for g in report["gates"]}["roc_auc"] == "fail"


def test_a_gate_in_its_own_job_reads_the_candidates_files_that_training_shipped(project, tmp_path: Path) -> None:  # noqa: ANN001
    """The gate job of ml-pipeline has neither the DVC outputs nor the training job's store: train-with-cache
    stages the predictions and the evaluation rows (here the input of the stage writing the predictions), the
    workflow ships them as the artifact leanops-gate-inputs, and the gate reads them with candidate-files."""
    import pickle
    import shutil

    from leanops import config as cfgmod
    from leanops.dvcproject import Project
    from leanops.train_with_cache.report import GATE_INPUTS, stage_gate_inputs
    from leanops.train_with_cache.settings import Settings as TrainSettings

    root = project["root"]
    config = root / "leanops.yml"
    config.write_text(config.read_text().replace("    evaluation-data: rows.csv\n", "")
                      .replace("model:\n", "model:\n  path: model.pkl\n")
                      + "  latency:\n    max-p95-single-ms: 5000\n    samples: 20\n"
                      "    exclude-columns: [customer_id, gender, churned]\n")
    with (root / "model.pkl").open("wb") as out:  # the candidate's model file, committed or pulled beside the gate
        pickle.dump(fit(project["new"]), out)
    (root / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: python evaluate.py\n    deps:\n      - evaluate.py\n"
                                   "      - rows.csv\n    outs:\n      - predictions.csv:\n          cache: false\n")
    cfg = cfgmod.load(str(config))
    train = TrainSettings(root=root, target="", model_name=MODEL, model_path="model.pkl", experiment=MODEL,
                          params_file="params.yaml", metrics=[], overrides={}, tracking_uri=None, configured_uri=None,
                          push="false", select_metric="", select_direction="higher", batch="", cfg=cfg)
    folder = stage_gate_inputs(train, Project.load(root))
    assert folder == str(root / GATE_INPUTS)
    assert sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) == ["predictions.csv", "rows.csv"]
    shipped = tmp_path / "artifact"  # what the gate job downloads
    shutil.copytree(folder, shipped)
    for name in ("predictions.csv", "rows.csv"):  # the gate's checkout: DVC outputs are not in it
        (root / name).unlink()
    assert cli.main(project["base"]) == 2  # the failure an adopter saw: bootstrap.predictions ... not found
    project["files"]["GITHUB_OUTPUT"].write_text("")
    assert cli.main([*project["base"], "--candidate-files", str(shipped)]) == 0
    notes = "\n".join(report_of(project["files"])["notes"])
    assert "champion re-scored on 400 rows of the candidate's evaluation set (rows.csv (train-with-cache's" in notes
    assert "predictions.csv (train-with-cache's gate inputs) vs the champion re-scored" in notes
    # latency is timed on the same shipped rows (it once said "not in the workspace" in this job)
    assert "latency: p95 of " + str(root / "model.pkl") + "'s predict on rows.csv (train-with-cache's gate inputs) " \
        "(400 rows)" in notes
    (root / "model.pkl").unlink()  # no tracking server and no model file: the candidate is not in this job
    project["files"]["GITHUB_OUTPUT"].write_text("")
    assert cli.main([*project["base"], "--candidate-files", str(shipped)]) == 0
    notes = "\n".join(report_of(project["files"])["notes"])
    assert "latency not measured: the candidate model is not in this job (no model-version, model.path model.pkl" \
        in notes


def test_a_retraining_candidate_worse_than_the_rescored_champion_keeps_the_champion_green(project) -> None:  # noqa: ANN001
    """A scheduled (or drift-dispatched) retraining: the candidate is clearly worse than the champion on the
    same new rows. Without keep-champion the gate fails (exit 1); with it, the run ends green: champion kept."""
    from sklearn.linear_model import LogisticRegression

    new = project["new"]
    weak = LogisticRegression().fit(new[["a"]].assign(b=0.0), new["churned"])  # blind to b
    frame = new.assign(b=0.0)
    write_evaluation(project["root"], weak, frame)
    files = project["files"]
    assert cli.main(project["base"]) == 1
    files["GITHUB_OUTPUT"].write_text("")
    assert cli.main([*project["base"], "--keep-champion", "true"]) == 0
    out = parse_outputs(files["GITHUB_OUTPUT"].read_text())
    assert (out["passed"], out["champion-kept"]) == ("false", "true")
    report = json.loads(Path(out["report-file"]).read_text())
    assert report["notes"][0].startswith(f"**champion kept**: {MODEL} version {project['v1']} (@champion) stays")
    assert "significant" in " ".join(r for g in report["gates"] for r in g["reasons"])
