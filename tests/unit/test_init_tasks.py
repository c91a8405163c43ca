"""``leanops init --task``: a starter stage and starter gates for each task, the starter pipeline trains and its
gates pass gate-metrics, the report names the task; binary (the default) is what init wrote before tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leanops import cli, config
from leanops.tools import init

from .test_gate_metrics import runner  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("runner")  # no runner variables of the host; cwd tmp_path

ROOT = Path(__file__).resolve().parents[2]
STARTER_GATES = {"binary": {"roc_auc", "f1"}, "multiclass": {"f1_macro", "log_loss"},
                 "regression": {"rmse", "mae", "r2"}}


def dataset(folder: Path, task: str) -> Path:
    """scikit-learn's own datasets as the CSV an adopter would bring."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    load = {"binary": load_breast_cancer, "multiclass": load_wine, "regression": load_diabetes}[task]
    frame = load(as_frame=True).frame
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_init_task_writes_a_starter_that_trains_and_passes_its_gates(
        tmp_path: Path, task: str, runner_files, capsys: pytest.CaptureFixture[str],
) -> None:
    repo = tmp_path / "repo"
    assert cli.main(["init", str(repo), "--data", str(dataset(tmp_path / "in", task)), "--task", task]) == 0
    assert f"task: {task} (--task)" in capsys.readouterr().out
    cfg = config.load(repo / "leanops.yml", required=True)  # valid against the schema
    assert cfg.data["model"]["task"] == task
    gates = cfg.section("gate-metrics")["gates"]
    assert set(gates) == STARTER_GATES[task]
    assert cfg.section("gate-metrics")["bootstrap"]["predictions"] == "metrics/predictions.csv"
    assert cfg.section("canary-deploy") == config.load(ROOT / "templates/project/leanops.yml").section("canary-deploy")
    stage = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["train"]
    assert {"metrics/predictions.csv": {"cache": False}} in stage["outs"]
    assert (repo / "src/train.py").read_text() == (ROOT / f"templates/tasks/{task}/src/train.py").read_text()
    assert not (repo / "gates.yml").exists()

    res = subprocess.run([sys.executable, "src/train.py"], cwd=repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((repo / "metrics/eval.json").read_text())
    assert set(gates) <= set(metrics)
    # the gate on the scaffold as CI runs it (the champion: the same metrics, so regressions are 0)
    assert cli.main(["gate-metrics", "--working-directory", str(repo), "--champion", "file",
                     "--champion-file", "metrics/eval.json", "--comment", "false"]) == 0
    report = json.loads((repo / ".leanops/gate-metrics/report.json").read_text())
    assert report["task"]["task"] == task and report["passed"]
    assert {g["metric"] for g in report["gates"]} == STARTER_GATES[task]


def test_init_infers_the_task_from_the_target_and_binary_stays_as_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    repo = tmp_path / "wine"
    assert cli.main(["init", str(repo), "--data", str(dataset(tmp_path / "in", "multiclass"))]) == 0
    assert "task: multiclass (inferred from target: integers, 3 distinct in 178 rows" in capsys.readouterr().out
    assert config.load(repo / "leanops.yml").data["model"]["task"] == "multiclass"

    binary = tmp_path / "binary"
    assert cli.main(["init", str(binary), "--model-name", "my-model"]) == 0
    assert "task: binary (the default)" in capsys.readouterr().out
    # binary: the templates exactly as they are (no task line, the binary starter stage and gates)
    assert init.template_files() == init.template_files("binary")
    for name in ("leanops.yml", "dvc.yaml", "params.yaml", "src/train.py"):
        assert (binary / name).read_text() == (ROOT / "templates/project" / name).read_text(), name
    explicit = tmp_path / "explicit"
    assert cli.main(["init", str(explicit), "--model-name", "my-model", "--task", "binary"]) == 0
    assert (explicit / "leanops.yml").read_text() == (binary / "leanops.yml").read_text()


def test_an_unknown_task_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["init", str(tmp_path / "r"), "--task", "ranking"]) == 2
    assert "argument --task: invalid choice: 'ranking'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
