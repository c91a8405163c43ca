"""weekly-drift's prediction drift for each task: the classes' shares for binary and multiclass (1, 1.0 and "1"
one class), the values' distribution for regression; the task from model.task, else from the baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from leanops import config as cfgmod
from leanops.weekly_drift import stats
from leanops.weekly_drift.detect import Outcome, prediction_drift
from leanops.weekly_drift.settings import Settings


def settings(task: str | None = None) -> Settings:
    data = {"model": {"task": task}} if task else {}
    return Settings(reference=[], current=[], threshold=0.3, min_rows=10, columns=[], ignore_columns=[],
                    target_column="label", prediction_column="prediction", retrain_workflow="", retrain_ref="",
                    dispatch=False, open_issue=False, fail_on_insufficient_data=False, report_dir=Path("r"),
                    sample_rows=10_000, cfg=cfgmod.Config(data=data, path=Path("leanops.yml"),
                                                          lines={("model", "task"): 3}))


def run(s: Settings, reference: list, current: list) -> tuple[Outcome, stats.ColumnDrift]:
    out = Outcome()
    prediction_drift(s, pa.table({"label": reference}), pa.table({"prediction": current}), out)
    return out, out.results[0]


def test_multiclass_predictions_compare_class_shares_whatever_the_labels_types() -> None:
    rng = np.random.default_rng(1)
    reference = [int(v) for v in rng.integers(0, 10, 3000)]
    same = [float(v) for v in rng.integers(0, 10, 2000)]  # JSON logs: 3.0 is class 3
    out, result = run(settings(), reference, same)
    assert result.kind == stats.CATEGORICAL and result.display == "Jensen-Shannon distance"
    assert not result.drifted and out.prediction_drift == "false"
    assert "prediction drift of a multiclass model (inferred from label of the reference: integers, 10 distinct" \
        in out.notes[0] and "the shares of the classes" in out.notes[0]
    shifted = [float(v) for v in rng.choice(10, 2000, p=[0.5] + [0.5 / 9] * 9)]
    out, result = run(settings(), reference, shifted)
    assert result.drifted and out.prediction_drift == "true"
    # text labels against the same labels: shares
    names = ["setosa", "versicolor", "virginica"]
    out, result = run(settings("multiclass"), [names[i % 3] for i in range(600)], [names[i % 3] for i in range(300)])
    assert result.kind == stats.CATEGORICAL and not result.drifted
    assert "(model.task in leanops.yml:3)" in out.notes[0]


def test_binary_predictions_compare_the_positive_share() -> None:
    out, result = run(settings(), [0, 1] * 1000, [1.0] * 900 + [0.0] * 1100)
    assert result.kind == stats.CATEGORICAL and not result.drifted
    assert "binary model" in out.notes[0]
    out, result = run(settings(), [0, 1] * 1000, [1.0] * 1600 + [0.0] * 400)
    assert result.drifted


def test_regression_predictions_compare_the_value_distribution() -> None:
    rng = np.random.default_rng(2)
    reference = list(rng.normal(150, 50, 3000).round(1))
    out, result = run(settings(), reference, list(rng.normal(150, 50, 2000).round(1)))
    assert result.kind == stats.NUMERICAL and result.display.startswith("Wasserstein") and not result.drifted
    assert "regression model" in out.notes[0] and "the predicted values' distribution" in out.notes[0]
    out, result = run(settings(), reference, list(rng.normal(220, 50, 2000).round(1)))
    assert result.drifted
    # a regression model whose predictions are rounded to few integers is still compared as numbers
    out, result = run(settings("regression"), [int(v) for v in rng.integers(1, 6, 500)],
                      [int(v) for v in rng.integers(1, 6, 500)])
    assert result.kind == stats.NUMERICAL
    # text predictions of a regression model: said, not compared
    out = Outcome()
    prediction_drift(settings("regression"), pa.table({"label": ["a", "b"]}), pa.table({"prediction": ["a", "b"]}),
                     out)
    assert not out.results and "holds no numbers" in out.notes[0]
