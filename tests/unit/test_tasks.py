"""Tasks (binary, multiclass, regression): decided from model.task or the target, gates that must fit it,
the task's metrics and fairness in gate-metrics' report, and the one-line errors for the bad inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, mean_squared_error

from leanops import config as cfgmod
from leanops import tasks
from leanops.errors import BadInput

from .test_gate_metrics import gate, line_of, outputs, runner  # noqa: F401 - runner is a fixture

pytestmark = pytest.mark.usefixtures("runner")  # no runner variables of the host; cwd tmp_path


@pytest.mark.parametrize(("values", "task"), [
    (["yes", "no", "yes"], "binary"), (["0", "1", "1.0"], "binary"), (["0", "1", "2", "1"], "multiclass"),
    (["setosa", "virginica", "versicolor"], "multiclass"), ([str(i % 20) for i in range(100)], "multiclass"),
    ([str(i % 21) for i in range(100)], "regression"), (["1.5", "2", "3.25"], "regression"),
    (["151.0", "75.0", "141.0"], "multiclass"),  # integers, few: classes (set model.task to say regression)
])
def test_the_task_is_inferred_from_the_target(values: list[str], task: str) -> None:
    decision = tasks.decide(cfgmod.Config(data={}), values, "y_true of p.csv")
    assert decision.task == task and "inferred from the target (y_true of p.csv)" in decision.how


@pytest.mark.parametrize(("declared", "values", "why"), [
    ("binary", ["0.5", "1.25", "3"], "a regression target"), ("binary", ["a", "b", "c"], "3 classes"),
    ("multiclass", ["0.5", "1.25"], "a regression target"), ("regression", ["cat", "dog"], "classes (text)"),
])
def test_a_declared_task_the_target_contradicts_is_bad_input(declared: str, values: list[str], why: str) -> None:
    cfg = cfgmod.Config(data={"model": {"task": declared}}, path=Path("leanops.yml"), lines={("model", "task"): 4})
    with pytest.raises(BadInput, match=re.escape(why)) as err:
        tasks.decide(cfg, values, "y_true of p.csv")
    assert err.value.one_line().startswith(f"leanops.yml:4: model.task is {declared} but the target")
    # the values a declared task accepts
    assert tasks.decide(cfgmod.Config(data={"model": {"task": "regression"}}), ["1", "2"], "t").task == "regression"


CONFIG = """\
version: 1
model:
  name: m
{task}gate-metrics:
  champion: file
  champion-file: champion.json
  metrics-file: metrics.json
  gates:
{gates}
  bootstrap:
    predictions: predictions.csv
{champion_predictions}    iterations: 200
{extra}"""


def project(root: Path, gates: str, columns: dict[str, list], metrics: dict, champion: dict | None = None, *,
            task: str = "", champion_columns: dict[str, list] | None = None, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)

    def csv(path: Path, cols: dict[str, list]) -> None:
        names = list(cols)
        rows = [",".join(["id", *names])]
        rows += [",".join([str(i), *(str(cols[c][i]) for c in names)]) for i in range(len(cols[names[0]]))]
        path.write_text("\n".join(rows) + "\n")

    csv(root / "predictions.csv", columns)
    if champion_columns is not None:
        csv(root / "champion.csv", champion_columns)
    (root / "leanops.yml").write_text(CONFIG.format(
        task=f"  task: {task}\n" if task else "", gates=gates, extra=extra,
        champion_predictions="    champion-predictions: champion.csv\n" if champion_columns is not None else ""))
    (root / "metrics.json").write_text(json.dumps(metrics))
    (root / "champion.json").write_text(json.dumps(champion or metrics))
    return root


def regression_columns(seed: int, noise: float, n: int = 300) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    y = rng.normal(150, 60, n).round(2)
    p = (y + rng.normal(0, noise, n)).round(2)
    return {"y_true": list(y), "y_pred": list(p), "sex": list(np.where(np.arange(n) % 2, "f", "m"))}


def test_a_classification_gate_on_a_regression_target_is_one_line_naming_the_gate(
        tmp_path: Path, runner_files, capsys,
) -> None:
    root = project(tmp_path / "p", "    rmse:\n      max: 80\n    roc_auc:\n      min: 0.7",
                   regression_columns(1, 10), {"rmse": 10.0, "roc_auc": 0.8})
    assert gate(root) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{root / 'leanops.yml'}:{line_of(root / 'leanops.yml', 'roc_auc:')}: gates.roc_auc: " in err
    assert "roc_auc is a binary metric but the task is regression (inferred from the target" in err
    assert "expected a metric of regression: rmse, mae, mse, r2, group_mae_difference" in err


def test_a_target_contradicting_model_task_is_exit_2(tmp_path: Path, runner_files, capsys) -> None:
    root = project(tmp_path / "p", "    roc_auc:\n      min: 0.7", regression_columns(2, 10), {"roc_auc": 0.8},
                   task="binary")
    assert gate(root) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"leanops.yml:{line_of(root / 'leanops.yml', 'task: binary')}: model.task is binary but the target " \
           "(y_true of predictions.csv) holds numbers with fractions" in err


def test_gates_of_two_tasks_without_anything_else_to_decide_are_exit_2(tmp_path: Path, runner_files, capsys) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "leanops.yml").write_text("version: 1\ngate-metrics:\n  champion: file\n  champion-file: m.json\n"
                                      "  metrics-file: m.json\n  gates:\n    f1: {min: 0.1}\n    mae: {max: 3}\n")
    (root / "m.json").write_text('{"f1": 0.5, "mae": 1}')
    assert gate(root) == 2
    assert "gates.mae: a regression metric beside gates.f1, a binary metric" in capsys.readouterr().err


def test_a_known_lower_is_better_metric_gated_higher_is_exit_2(tmp_path: Path, runner_files, capsys) -> None:
    root = project(tmp_path / "p", "    rmse:\n      direction: higher\n      max: 80", regression_columns(3, 10),
                   {"rmse": 10.0})
    assert gate(root) == 2
    assert "gates.rmse.direction: rmse is better lower, got 'higher'" in capsys.readouterr().err


def test_multiclass_metrics_are_computed_from_the_predictions_and_the_report_names_the_task(
        tmp_path: Path, runner_files,
) -> None:
    rng = np.random.default_rng(4)
    n, labels = 240, ["class_0", "class_1", "class_2"]
    y = rng.integers(0, 3, n)
    proba = rng.dirichlet(np.ones(3), n) * 0.5 + np.eye(3)[y] * 0.5
    pred = proba.argmax(axis=1)
    cols = {"y_true": [labels[i] for i in y], "y_pred": [labels[i] for i in pred]}
    cols.update({f"proba_{c}": list(proba[:, k].round(6)) for k, c in enumerate(labels)})
    root = project(tmp_path / "p", "    f1_macro:\n      min: 0.5\n    log_loss:\n      max: 2.0",
                   cols, {"accuracy": 0.9})
    assert gate(root) == 0
    report = json.loads(Path(outputs(runner_files)["report-file"]).read_text())
    assert report["task"]["task"] == "multiclass"
    assert "inferred from the target (y_true of predictions.csv): non-numeric values, 3 distinct" in \
        report["task"]["how"]
    by_metric = {g["metric"]: g for g in report["gates"]}
    assert by_metric["f1_macro"]["candidate"] == pytest.approx(
        f1_score(cols["y_true"], cols["y_pred"], average="macro"))
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert "- **task**: multiclass (inferred from the target" in summary
    assert "computed from predictions.csv (the metrics file lacks them): f1_macro, log_loss" in summary


def test_regression_rmse_is_lower_is_better_against_the_champion_with_the_error_gap_gate(
        tmp_path: Path, runner_files,
) -> None:
    good, bad = regression_columns(5, 10), regression_columns(5, 30)  # the same targets, three times the noise
    fairness = "  fairness:\n    sensitive-column: sex\n    max-group-mae-difference: 20\n"
    gates = "    rmse:\n      max: 100\n      max-regression: 1\n    r2:\n      min: 0.5"
    # a worse candidate than the champion: rmse up (worse), significantly
    root = project(tmp_path / "worse", gates, bad, {}, {}, task="regression", champion_columns=good, extra=fairness)
    assert gate(root) == 1
    report = json.loads((root / ".leanops/gate-metrics/report.json").read_text())
    rmse = next(g for g in report["gates"] if g["metric"] == "rmse")
    assert rmse["direction"] == "lower" and rmse["verdict"] == "fail" and rmse["interval"]["low"] > 0
    assert rmse["candidate"] == pytest.approx(np.sqrt(mean_squared_error(bad["y_true"], bad["y_pred"])))
    assert report["candidate"]["metrics"]["group_mae_difference"] >= 0
    assert report["task"]["task"] == "regression" and report["task"]["how"].startswith("model.task in")
    # the better one passes
    root = project(tmp_path / "better", gates, good, {}, {}, task="regression", champion_columns=bad,
                   extra=fairness)
    assert gate(root) == 0


def test_binary_fairness_gates_on_a_regression_are_exit_2(tmp_path: Path, runner_files, capsys) -> None:
    fairness = "  fairness:\n    sensitive-column: sex\n    min-demographic-parity-ratio: 0.8\n"
    root = project(tmp_path / "p", "    mae:\n      max: 100", regression_columns(6, 10), {"mae": 8.0}, extra=fairness)
    assert gate(root) == 2
    err = capsys.readouterr().err
    assert "fairness.min-demographic-parity-ratio: demographic_parity_ratio is a binary metric but the task is " \
           "regression" in err
    assert f"leanops.yml:{line_of(root / 'leanops.yml', 'min-demographic-parity-ratio')}:" in err


def test_the_task_metrics_table_of_docs_your_model_is_the_code_s() -> None:
    """docs/your-model.md's table of tasks and metrics says what gates.TASK_METRICS and KNOWN_DIRECTION say."""
    from leanops.gate_metrics.gates import KNOWN_DIRECTION, LOWER, TASK_METRICS

    text = (Path(__file__).resolve().parents[2] / "docs/your-model.md").read_text()
    rows = {}
    for line in text.split("<!-- task-metrics table", 1)[1].splitlines()[3:]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = [re.findall(r"`([a-z0-9_]+)`", c) for c in cells[1:]]
    assert set(rows) == set(TASK_METRICS)
    for task, (known, lower, starter) in rows.items():
        assert known == list(TASK_METRICS[task]), task
        assert lower == [m for m in TASK_METRICS[task] if KNOWN_DIRECTION[m] == LOWER], task
        assert set(starter) <= set(known)
