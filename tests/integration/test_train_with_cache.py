"""train-with-cache against real DVC and a real `mlflow server` on loopback (the `mlflow_server` fixture)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from leanops import cli

from ..conftest import free_port
from ..services import CHURN, copy_example
from ..unit.test_gh import parse_outputs

for _key, _value in (("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1")):
    os.environ.setdefault(_key, _value)

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def git_init(path: Path) -> Path:
    env = dict(os.environ, **GIT_ENV)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)
    return path


def churn_repo(dest: Path) -> Path:
    """examples/churn's committed files (no outputs) in a fresh git repository."""
    return git_init(copy_example(dest))


def tiny_repo(dest: Path, *, stage_code: str, metrics: str = "metrics.json") -> Path:
    """A one-stage DVC project whose stage runs ``stage_code`` (fast: no data, no scikit-learn fit)."""
    dest.mkdir(parents=True)
    (dest / "stage.py").write_text(textwrap.dedent(stage_code))
    (dest / "params.yaml").write_text("train:\n  C: 1.0\n")
    (dest / "dvc.yaml").write_text(textwrap.dedent(f"""\
        stages:
          train:
            cmd: python stage.py
            deps: [stage.py]
            params: [train.C]
            outs: [model.pkl]
            metrics:
              - {metrics}:
                  cache: false
        """))
    (dest / "leanops.yml").write_text("version: 1\nmodel:\n  name: tiny\n  path: model.pkl\n")
    git_init(dest)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=dest, check=True)
    return dest


MODEL_STAGE = """\
    import json, pickle
    from sklearn.dummy import DummyClassifier
    pickle.dump(DummyClassifier().fit([[0], [1]], [0, 1]), open("model.pkl", "wb"))
    json.dump({"roc_auc": 0.5}, open("metrics.json", "w"))
"""


def outputs(path: Path) -> dict[str, str]:
    return parse_outputs(path.read_text())


def train(repo: Path, uri: str, model: str, *extra: str) -> int:
    return cli.main(["train-with-cache", "--working-directory", str(repo), "--tracking-uri", uri,
                     "--model-name", model, *extra])


@pytest.fixture
def client(mlflow_server: str):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server, registry_uri=mlflow_server)


def runs_of(client, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_trains_registers_skips_and_retrains_on_a_param_change(
    tmp_path: Path, runner_files: dict[str, Path], mlflow_server: str, client, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = churn_repo(tmp_path / "churn")
    monkeypatch.chdir(repo)
    out_file, summary = runner_files["GITHUB_OUTPUT"], runner_files["GITHUB_STEP_SUMMARY"]
    model = "churn-it"

    # 1: cold, everything runs; version 1 with the alias challenger
    assert train(repo, mlflow_server, model) == 0
    first = outputs(out_file)
    assert first["skipped"] == "false" and first["model-version"] == "1"
    assert first["model-uri"] == f"models:/{model}/1" and first["cache-key"].startswith("leanops-dvc-")
    assert '"roc_auc": 0.822012' in first["metrics"]
    assert client.get_model_version_by_alias(model, "challenger").version == "1"
    run = client.get_run(first["run-id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.C"] == "1.0" and run.data.params["prepare.test_size"] == "0.2"
    assert run.data.metrics["roc_auc"] == pytest.approx(0.822012)
    assert run.data.tags["mlflow.source.git.commit"] and run.data.tags["dvc.dep.data/raw/churn.csv"]
    assert len(run.data.tags["leanops.dvc_lock_sha256"]) == 64
    # the signature (what build-push-image and the server check requests against): the model's own inputs,
    # inferred from the train stage's CSV narrowed to feature_names_in_ (no label, no key)
    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    inputs = mlflow.models.get_model_info(first["model-uri"]).signature.inputs.input_names()
    assert inputs == ["contract", "payment_method", "internet_service", "tenure_months", "monthly_charges",
                      "total_charges", "support_calls", "senior_citizen"]
    text = summary.read_text()
    assert "| prepare | ran |" in text and "| train | ran |" in text and "| roc_auc | 0.822012 |" in text
    # the predictions gate-metrics compares travel with the run: a gate in a job of its own (no DVC outputs in
    # its work tree) fetches them from the candidate's run
    version = client.get_model_version(model, "1")
    assert version.tags["leanops.predictions_artifact"] == "gate-metrics/predictions.csv"
    elsewhere = tmp_path / "gate-job"
    elsewhere.mkdir()
    shutil.copy2(repo / "leanops.yml", elsewhere / "leanops.yml")
    out_file.write_text("")
    summary.write_text("")
    assert cli.main(["gate-metrics", "--working-directory", str(elsewhere), "--tracking-uri", mlflow_server,
                     "--model-name", model, "--model-version", "1", "--run-id", first["run-id"],
                     "--comment", "false"]) == 0
    assert "candidate predictions: gate-metrics/predictions.csv of run" in capsys.readouterr().out
    monkeypatch.chdir(repo)

    # 2: nothing changed: skipped, no new run, outputs point at run 1. The cache key is the one a workflow's
    # restore step computes for this state (`train-with-cache key`); it is run 1's own when the training
    # reproduced the committed dvc.lock bit for bit (BLAS kernels differ between CPUs, and with them the
    # pickled model's bytes)
    out_file.write_text("")
    assert cli.main(["train-with-cache", "key", "--working-directory", str(repo)]) == 0
    restore_key = outputs(out_file)["cache-key"]
    out_file.write_text("")
    summary.write_text("")
    assert train(repo, mlflow_server, model) == 0
    second = outputs(out_file)
    assert second["skipped"] == "true"
    assert (second["run-id"], second["model-version"]) == (first["run-id"], "1")
    assert second["cache-key"] == restore_key
    if (repo / "dvc.lock").read_bytes() == (CHURN / "dvc.lock").read_bytes():
        assert second["cache-key"] == first["cache-key"]
    assert len(runs_of(client, model)) == 1
    assert len(client.search_model_versions(f"name = '{model}'")) == 1
    assert "skipped: nothing changed" in summary.read_text()

    # 3: one param changes: only train and evaluate run; version 2 becomes the challenger
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.05"))
    out_file.write_text("")
    summary.write_text("")
    assert train(repo, mlflow_server, model) == 0
    third = outputs(out_file)
    assert third["skipped"] == "false" and third["model-version"] == "2"
    assert third["run-id"] != first["run-id"] and third["cache-key"] != first["cache-key"]
    assert client.get_model_version_by_alias(model, "challenger").version == "2"
    assert client.get_run(third["run-id"]).data.params["train.C"] == "0.05"
    text = summary.read_text()
    assert "| prepare | unchanged |" in text and "| train | ran |" in text


def test_no_dvc_yaml_is_bad_input(tmp_path: Path, runner_files, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "leanops.yml").write_text("version: 1\nmodel:\n  name: m\n  path: model.pkl\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train-with-cache", "--tracking-uri", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dvc.yaml" in err[0] and "Traceback" not in err[0]


def test_bad_param_overrides_are_bad_input(tmp_path: Path, runner_files, capsys, monkeypatch) -> None:
    repo = tiny_repo(tmp_path / "tiny", stage_code=MODEL_STAGE)
    monkeypatch.chdir(repo)
    sqlite = f"sqlite:///{tmp_path / 'store.db'}"
    assert train(repo, sqlite, "tiny", "--param-overrides", "{not json") == 2
    assert train(repo, sqlite, "tiny", "--param-overrides", '{"train.gamma": 1}') == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "param-overrides: not JSON" in err[0] and "train.gamma not in params.yaml" in err[1]


def test_metrics_file_that_is_not_json_or_yaml_is_bad_input(
    tmp_path: Path, runner_files, capsys, mlflow_server: str, client, monkeypatch
) -> None:
    stage = MODEL_STAGE.replace('json.dump({"roc_auc": 0.5}, open("metrics.json", "w"))',
                                'open("metrics.txt", "w").write("roc_auc: [0.5\\n")')
    repo = tiny_repo(tmp_path / "tiny", stage_code=stage, metrics="metrics.txt")
    monkeypatch.chdir(repo)
    assert train(repo, mlflow_server, "tiny-badmetrics") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("leanops train-with-cache: error: metrics.txt: not a JSON or YAML mapping")
    assert "Traceback" not in "\n".join(err)
    assert runs_of(client, "tiny-badmetrics") == []  # nothing recorded


def test_unreachable_server_exits_3_naming_the_masked_uri(
    tmp_path: Path, runner_files, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tiny_repo(tmp_path / "tiny", stage_code=MODEL_STAGE)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("LEANOPS_TRACKING_RETRIES", "3")
    monkeypatch.setenv("LEANOPS_TRACKING_BACKOFF", "0.1")
    port = free_port()  # nothing listens there
    uri = f"http://ci-user:s3cr3t-pw@127.0.0.1:{port}"
    assert train(repo, uri, "tiny") == 3
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert f"http://***:***@127.0.0.1:{port}" in err[0] and "unreachable after 3 attempts" in err[0]
    assert "::add-mask::s3cr3t-pw" in captured.out  # the runner hides it from the log too
    assert "s3cr3t" not in captured.err + captured.out.replace("::add-mask::s3cr3t-pw", "")
    assert not (repo / "model.pkl").exists()  # nothing trained before the server answered


def test_failing_stage_exits_1_with_its_name_and_stderr_tail(
    tmp_path: Path, runner_files, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = """\
        import sys
        print("loading the data", file=sys.stderr)
        print("ValueError: column 'tenure' has NaN", file=sys.stderr)
        sys.exit(1)
    """
    repo = tiny_repo(tmp_path / "tiny", stage_code=stage)
    monkeypatch.chdir(repo)
    assert train(repo, f"sqlite:///{tmp_path / 'store.db'}", "tiny") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("leanops train-with-cache: error: stage train failed")
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert "stage `train` failed" in summary and "ValueError: column 'tenure' has NaN" in summary
    assert "| train | failed |" in summary


def test_failure_before_registration_leaves_no_half_registered_version(
    tmp_path: Path, runner_files, capsys, mlflow_server: str, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tiny_repo(tmp_path / "tiny", stage_code=MODEL_STAGE)
    monkeypatch.chdir(repo)
    model = "tiny-faults"

    # a failure after logging, before registering: the run is FAILED, no version exists
    monkeypatch.setenv("LEANOPS_TRAIN_FAULT", "before-register")
    assert train(repo, mlflow_server, model) == 3
    assert [r.info.status for r in runs_of(client, model)] == ["FAILED"]
    assert client.search_model_versions(f"name = '{model}'") == []

    # a failure after the version was created, before the alias: the version is deleted again
    monkeypatch.setenv("LEANOPS_TRAIN_FAULT", "before-alias")
    assert train(repo, mlflow_server, model) == 3
    assert sorted(r.info.status for r in runs_of(client, model)) == ["FAILED", "FAILED"]
    assert client.search_model_versions(f"name = '{model}'") == []
    err = capsys.readouterr().err
    assert "injected fault at before-alias" in err

    # the next run (nothing to retrain) records and registers properly
    monkeypatch.delenv("LEANOPS_TRAIN_FAULT")
    runner_files["GITHUB_OUTPUT"].write_text("")
    assert train(repo, mlflow_server, model) == 0
    out = outputs(runner_files["GITHUB_OUTPUT"])
    assert out["skipped"] == "true"  # nothing trained: DVC had everything
    versions = client.search_model_versions(f"name = '{model}'")
    assert [v.version for v in versions] == [out["model-version"]]
    assert client.get_model_version_by_alias(model, "challenger").version == out["model-version"]
    assert client.get_run(out["run-id"]).info.status == "FINISHED"


SCORED_STAGE = """\
    import json, pickle, yaml
    from sklearn.dummy import DummyClassifier
    c = yaml.safe_load(open("params.yaml"))["train"]["C"]
    pickle.dump(DummyClassifier().fit([[0], [1]], [0, 1]), open("model.pkl", "wb"))
    json.dump({"roc_auc": c / 10}, open("metrics.json", "w"))
"""


def test_matrix_legs_then_select_points_challenger_at_the_best(
    tmp_path: Path, runner_files, mlflow_server: str, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = "tiny-matrix"
    results = tmp_path / "results"
    versions = {}
    for i, c in enumerate((5.0, 2.0)):  # the better leg registers first; the second takes the alias
        repo = tiny_repo(tmp_path / f"leg{i}", stage_code=SCORED_STAGE)
        monkeypatch.chdir(repo)
        runner_files["GITHUB_OUTPUT"].write_text("")
        assert train(repo, mlflow_server, model, "--param-overrides", json.dumps({"train.C": c}),
                     "--batch", "42-1") == 0
        out = outputs(runner_files["GITHUB_OUTPUT"])
        versions[c] = out["model-version"]
        (results / f"leanops-train-{i}").mkdir(parents=True)
        shutil.copy(out["result-file"], results / f"leanops-train-{i}" / "result.json")
        assert client.get_run(out["run-id"]).data.tags["leanops.batch"] == "42-1"
    assert client.get_model_version_by_alias(model, "challenger").version == versions[2.0]

    runner_files["GITHUB_OUTPUT"].write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert cli.main(["train-with-cache", "select", "--results", str(results), "--select-metric", "roc_auc",
                     "--model-name", model]) == 0
    out = outputs(runner_files["GITHUB_OUTPUT"])
    assert out["model-version"] == versions[5.0] and json.loads(out["metrics"]) == {"roc_auc": 0.5}
    assert client.get_model_version_by_alias(model, "challenger").version == versions[5.0]
    assert "best of 2 by roc_auc" in runner_files["GITHUB_STEP_SUMMARY"].read_text()
