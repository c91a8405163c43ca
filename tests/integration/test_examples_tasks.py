"""examples/multiclass and examples/regression as adopters run them: data-validate on the committed suite,
train-with-cache against a real `mlflow server` on loopback, gate-metrics with the starter gates (the report names
the task and shows its metrics), promotion, a second candidate gated against the champion with the paired
bootstrap on the task's metrics, and the bad inputs (a gate of another task, a contradicting model.task)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from leanops import cli

from ..unit.test_gh import parse_outputs

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
OUTPUTS = shutil.ignore_patterns("models", "metrics", ".leanops", "data-validate-report", "cache", "tmp",
                                 "__pycache__", "mlflow.db", "mlruns")
# example -> (task, the starter gates, a param to change for a second candidate, its new value)
EXAMPLES = {
    "multiclass": ("multiclass", {"f1_macro", "log_loss"}, "C: 1.0", "C: 0.05"),
    "regression": ("regression", {"rmse", "mae", "r2", "group_mae_difference"}, "alpha: 1.0", "alpha: 30.0"),
}

for _key, _value in (("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1"),
                     ("GX_ANALYTICS_ENABLED", "false")):
    os.environ.setdefault(_key, _value)


def example_repo(name: str, dest: Path) -> Path:
    """The example's files without pipeline outputs, in a fresh git repository."""
    shutil.copytree(ROOT / "examples" / name, dest, ignore=OUTPUTS)
    env = dict(os.environ, **GIT_ENV)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=dest, check=True, env=env)
    return dest


def outputs(path: Path) -> dict[str, str]:
    out = parse_outputs(path.read_text())
    path.write_text("")
    return out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_validates_trains_gates_promotes_and_gates_a_second_candidate(
        name: str, tmp_path: Path, runner_files: dict[str, Path], mlflow_server: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    task, gates, old_param, new_param = EXAMPLES[name]
    repo = example_repo(name, tmp_path / name)
    monkeypatch.chdir(repo)
    for key in ("GITHUB_EVENT_PATH", "GITHUB_BASE_REF", "MLFLOW_TRACKING_URI", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(key, raising=False)
    out_file = runner_files["GITHUB_OUTPUT"]
    model = f"example-{name}"

    # the committed suite passes the committed data
    assert cli.main(["--config", str(repo / "leanops.yml"), "data-validate", "--dvc-pull", "false",
                     "--result-file", str(tmp_path / "r.json"), "--data-docs", "false"]) == 0
    assert outputs(out_file)["success"] == "true"

    # train: the stage runs, version 1 is registered with the task's metrics
    assert cli.main(["train-with-cache", "--working-directory", str(repo), "--tracking-uri", mlflow_server,
                     "--model-name", model]) == 0
    first = outputs(out_file)
    assert first["skipped"] == "false" and first["model-version"] == "1"
    assert set(gates) - {"group_mae_difference"} <= set(json.loads(first["metrics"]))

    def gate(version: str, run_id: str) -> dict:
        code = cli.main(["gate-metrics", "--working-directory", str(repo), "--tracking-uri", mlflow_server,
                         "--model-name", model, "--model-version", version, "--run-id", run_id,
                         "--comment", "false"])
        report = json.loads((repo / ".leanops/gate-metrics/report.json").read_text())
        assert code == 0, report
        return report

    # the first gate: no champion, the starter gates on the task's metrics
    report = gate("1", first["run-id"])
    assert report["task"]["task"] == task and report["task"]["how"].startswith("model.task in ")
    assert {g["metric"] for g in report["gates"]} == gates and report["champion"] is None
    assert f"**task**: {task} (model.task in" in runner_files["GITHUB_STEP_SUMMARY"].read_text()
    outputs(out_file)
    assert cli.main(["gate-metrics", "promote", "--working-directory", str(repo), "--tracking-uri", mlflow_server,
                     "--model-name", model, "--model-version", "1", "--any-branch", "true"]) == 0
    outputs(out_file)

    # a second candidate (one param changed) against the champion: the paired bootstrap on the task's metrics
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace(old_param, new_param))
    assert cli.main(["train-with-cache", "--working-directory", str(repo), "--tracking-uri", mlflow_server,
                     "--model-name", model]) == 0
    second = outputs(out_file)
    assert second["model-version"] == "2"
    code = cli.main(["gate-metrics", "--working-directory", str(repo), "--tracking-uri", mlflow_server,
                     "--model-name", model, "--model-version", "2", "--run-id", second["run-id"],
                     "--comment", "false"])
    report = json.loads((repo / ".leanops/gate-metrics/report.json").read_text())
    assert code in (0, 1), report
    assert report["task"]["task"] == task and report["champion"]["version"] == "1"
    bootstrapped = {g["metric"] for g in report["gates"] if g["interval"] is not None}
    assert bootstrapped == gates - {"group_mae_difference"}, report["notes"]
    assert any(n.startswith("paired bootstrap:") for n in report["notes"]), report["notes"]


def test_a_gate_of_another_task_and_a_contradicting_task_on_the_examples_are_exit_2(
        tmp_path: Path, runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On the examples' own predictions (from `dvc repro`): a classification gate on the regression example,
    and the multiclass example declared binary."""
    for key in ("GITHUB_EVENT_PATH", "GITHUB_BASE_REF", "MLFLOW_TRACKING_URI", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(key, raising=False)
    for name, edit, expected in (
        ("regression", ("    r2:\n", "    roc_auc:\n      min: 0.7\n    r2:\n"),
         "gates.roc_auc: roc_auc is a binary metric but the task is regression"),
        ("multiclass", ("  task: multiclass ", "  task: binary     "),
         "model.task is binary but the target (y_true of metrics/predictions.csv) holds non-numeric values, "
         "3 distinct"),
    ):
        repo = example_repo(name, tmp_path / name)
        subprocess.run(["dvc", "repro", "-q"], cwd=repo, check=True, capture_output=True)
        config = repo / "leanops.yml"
        assert edit[0] in config.read_text()
        config.write_text(config.read_text().replace(edit[0], edit[1]))
        capsys.readouterr()
        assert cli.main(["gate-metrics", "--working-directory", str(repo), "--champion", "file",
                         "--champion-file", "metrics/eval.json", "--comment", "false"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err and "leanops.yml:" in err, err


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_committed_dvc_lock_is_current_and_the_stage_is_init_s(name: str) -> None:
    """dvc.lock records the committed inputs (`dvc repro` after an edit); the stage is `leanops init --task`'s."""
    import hashlib

    import yaml

    example = ROOT / "examples" / name
    lock = yaml.safe_load((example / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for dep in stage["deps"]:
            digest = hashlib.md5((example / dep["path"]).read_bytes()).hexdigest()  # noqa: S324 - DVC's own hash
            assert dep["md5"] == digest, f"{name}: {dep['path']} changed; run dvc repro in examples/{name}"
    starter = (ROOT / "templates/tasks" / name / "src/train.py").read_text().splitlines()
    mine = (example / "src/train.py").read_text().splitlines()
    added = [line for line in mine if line not in starter]
    assert [line for line in starter if line not in mine] == [] and len(added) <= 2, added
    config = yaml.safe_load((example / "leanops.yml").read_text())
    assert config["model"]["task"] == EXAMPLES[name][0]
