"""The paired bootstrap's metrics for each task, against scikit-learn's own functions on known data."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from leanops.errors import BadInput
from leanops.gate_metrics import bootstrap as bs


def write(path: Path, columns: dict[str, Any]) -> Path:
    names = list(columns)
    n = len(next(iter(columns.values())))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", *names])
        for i in range(n):
            out.writerow([i, *(columns[c][i] for c in names)])
    return path


def multiclass_data(rng: Any, n: int, labels: list[str]) -> tuple[Any, Any, Any]:
    k = len(labels)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y] * rng.uniform(0, 1)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = proba.round(6)
    proba[:, -1] = 1 - proba[:, :-1].sum(axis=1)  # rows sum to 1 after rounding
    proba = np.clip(proba, 0, 1)
    pred = proba.argmax(axis=1)
    return np.array(labels)[y], np.array(labels)[pred], proba


@pytest.mark.parametrize("labels", [["0", "1", "2"], ["setosa", "versicolor", "virginica", "other"],
                                    [str(d) for d in range(10)]])
def test_multiclass_metrics_match_scikit_learn(tmp_path: Path, labels: list[str]) -> None:
    rng = np.random.default_rng(len(labels))
    for case in range(8):
        n = int(rng.integers(30, 400))
        y, p, proba = multiclass_data(rng, n, labels)
        cols: dict[str, Any] = {"y_true": y, "y_pred": p}
        cols.update({f"proba_{c}": proba[:, i] for i, c in enumerate(labels)})
        t = bs.read_predictions(write(tmp_path / f"m{case}.csv", cols), task="multiclass")
        assert bs.point("accuracy", t) == pytest.approx(accuracy_score(y, p))
        assert bs.point("f1_macro", t) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
        assert bs.point("precision_macro", t) == pytest.approx(
            precision_score(y, p, average="macro", zero_division=0))
        assert bs.point("recall_macro", t) == pytest.approx(recall_score(y, p, average="macro", zero_division=0))
        order = bs.sort_labels(labels)
        expected = log_loss(y, proba[:, [labels.index(c) for c in order]], labels=order)
        assert bs.point("log_loss", t) == pytest.approx(expected, rel=1e-9)
        assert not bs.computable("f1", t) and not bs.computable("roc_auc", t) and not bs.computable("rmse", t)


def test_binary_metrics_match_scikit_learn_with_text_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = rng.integers(0, 2, n)
    score = np.clip(y * 0.3 + rng.uniform(0, 0.7, n), 0, 1).round(4)
    pred = (score >= 0.5).astype(int)
    names = np.array(["no", "yes"])
    t = bs.read_predictions(write(tmp_path / "b.csv", {"y_true": names[y], "y_pred": names[pred], "y_score": score}),
                            task="binary")
    assert t.classes == ["no", "yes"]
    assert bs.point("roc_auc", t) == pytest.approx(roc_auc_score(y, score))
    assert bs.point("f1", t) == pytest.approx(f1_score(y, pred))
    assert bs.point("f1_macro", t) == pytest.approx(f1_score(y, pred, average="macro"))
    assert bs.point("log_loss", t) == pytest.approx(log_loss(y, score), rel=1e-9)
    assert bs.point("accuracy", t) == pytest.approx(accuracy_score(y, pred))
    # 0/1 labels keep the numeric path; the positive class's proba column is the score
    t01 = bs.read_predictions(write(tmp_path / "b01.csv", {"y_true": y, "y_pred": pred, "proba_0": (1 - score).round(4),
                                                           "proba_1": score}), task="binary")
    assert bs.point("log_loss", t01) == pytest.approx(log_loss(y, score), rel=1e-9)
    assert bs.point("roc_auc", t01) == pytest.approx(roc_auc_score(y, score))


def test_regression_metrics_match_scikit_learn(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    for case in range(10):
        n = int(rng.integers(5, 500))
        y = rng.normal(150, 70, n).round(1)
        p = (y + rng.normal(0, rng.uniform(1, 80), n)).round(2)
        t = bs.read_predictions(write(tmp_path / f"r{case}.csv", {"y_true": y, "y_pred": p}), task="regression")
        assert bs.point("rmse", t) == pytest.approx(np.sqrt(mean_squared_error(y, p)))
        assert bs.point("mae", t) == pytest.approx(mean_absolute_error(y, p))
        assert bs.point("mse", t) == pytest.approx(mean_squared_error(y, p))
        assert bs.point("r2", t) == pytest.approx(r2_score(y, p))
        assert not bs.computable("f1", t) and not bs.computable("accuracy", t)
    constant = bs.read_predictions(write(tmp_path / "c.csv", {"y_true": [3.0] * 4, "y_pred": [3.0, 3.0, 3.0, 4.0]}),
                                   task="regression")
    assert bs.point("r2", constant) == r2_score([3.0] * 4, [3.0, 3.0, 3.0, 4.0]) == 0.0


def test_the_bootstrap_of_each_task_is_zero_for_an_identical_candidate_and_finds_a_worse_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 600
    labels = ["a", "b", "c"]
    y, p, proba = multiclass_data(rng, n, labels)
    cols: dict[str, Any] = {"y_true": y, "y_pred": p, **{f"proba_{c}": proba[:, i] for i, c in enumerate(labels)}}
    good = bs.read_predictions(write(tmp_path / "good.csv", cols), task="multiclass")
    same = bs.read_predictions(write(tmp_path / "same.csv", cols), task="multiclass")
    found, why = bs.intervals_for(same, good, ["f1_macro", "log_loss", "accuracy"], {"iterations": 200})
    assert why == "" and set(found) == {"f1_macro", "log_loss", "accuracy"}
    assert all(i.low == i.high == 0 for i in found.values())
    right = p == y  # a third of the right predictions made wrong
    wrong = np.where(right & (rng.random(n) < 0.3), np.array(labels)[(np.searchsorted(labels, y) + 1) % 3], p)
    worse = bs.read_predictions(write(tmp_path / "worse.csv", {**cols, "y_pred": wrong}), task="multiclass")
    found, why = bs.intervals_for(worse, good, ["f1_macro", "accuracy"], {"iterations": 300})
    assert why == "" and found["accuracy"].high < 0 and found["f1_macro"].high < 0

    y_r = rng.normal(0, 10, n)
    p_r = y_r + rng.normal(0, 2, n)
    a = bs.read_predictions(write(tmp_path / "ra.csv", {"y_true": y_r, "y_pred": p_r}), task="regression")
    b = bs.read_predictions(write(tmp_path / "rb.csv", {"y_true": y_r, "y_pred": p_r + 3}), task="regression")
    found, why = bs.intervals_for(b, a, ["rmse", "mae", "r2"], {"iterations": 300})
    assert why == "" and found["rmse"].low > 0 and found["mae"].low > 0 and found["r2"].high < 0


def test_champion_with_a_class_the_candidate_never_predicts_pairs_on_one_encoding(tmp_path: Path) -> None:
    cand = bs.read_predictions(write(tmp_path / "c.csv", {"y_true": ["a", "b", "a"], "y_pred": ["a", "a", "a"]}),
                               task="multiclass")
    champ = bs.read_predictions(write(tmp_path / "h.csv", {"y_true": ["a", "b", "a"], "y_pred": ["c", "b", "a"]}),
                                task="multiclass")
    a, b, why = bs.align(cand, champ)
    assert why == "" and a.classes == b.classes == ["a", "b", "c"]
    assert bs.point("accuracy", a) == pytest.approx(2 / 3) and bs.point("accuracy", b) == pytest.approx(2 / 3)


def test_bad_probability_columns_are_one_line_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", {"y_true": ["a", "b", "c"], "y_pred": ["a", "b", "b"], "proba_a": [1, 0, 0],
                                      "proba_b": [0, 1, 1]})
    with pytest.raises(BadInput, match="no column proba_c; expected one proba_<class> column") as err:
        bs.read_predictions(path, task="multiclass")
    assert "\n" not in err.value.one_line()
    path = write(tmp_path / "q.csv", {"y_true": ["a", "b"], "y_pred": ["a", "b"], "proba_a": [1.5, 0],
                                      "proba_b": [0, 1]})
    with pytest.raises(BadInput, match="'1.5' is not a probability") as err:
        bs.read_predictions(path, task="multiclass")
    assert err.value.line == 2
    path = write(tmp_path / "r.csv", {"y_true": ["a", "b", "c"], "y_pred": ["a", "b", "c"]})
    with pytest.raises(BadInput, match="hold 3 labels"):
        bs.read_predictions(path, task="binary")
