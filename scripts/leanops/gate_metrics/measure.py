"""Metrics leanops measures itself: fairness over a sensitive column (fairlearn) and prediction latency."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import gh, models
from ..errors import BadInput
from ..models import NotAModel, unpickle
from .bootstrap import Predictions
from .gates import DP_RATIO, EO_DIFF, GROUP_MAE_DIFF, LATENCY_BATCH, LATENCY_SINGLE


def fairness(table: Predictions, column: str) -> dict[str, float]:
    """Demographic parity ratio and equalized-odds difference of the predictions over ``column``."""
    import numpy as np
    from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference

    groups = np.asarray(table.columns[column], dtype=object)
    y_true, y_pred = (table.y_true > 0.5).astype(int), (table.y_pred > 0.5).astype(int)
    return {
        DP_RATIO: float(demographic_parity_ratio(y_true, y_pred, sensitive_features=groups)),
        EO_DIFF: float(equalized_odds_difference(y_true, y_pred, sensitive_features=groups)),
    }


def error_gap(table: Predictions, column: str) -> dict[str, float]:
    """Regression fairness: the largest gap in mean absolute error between two groups of ``column``."""
    import numpy as np

    groups = np.asarray(table.columns[column], dtype=object)
    error = np.abs(table.y_true - table.y_pred)
    per_group = [float(np.nanmean(error[groups == g])) for g in np.unique(groups)]
    return {GROUP_MAE_DIFF: max(per_group) - min(per_group) if per_group else math.nan}


def p95(samples: list[float]) -> float:
    """The 95th percentile (linear interpolation, as numpy's default) of timings in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = 0.95 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def read_rows(path: Path, shown: str, exclude: list[str]) -> Any:
    import pandas as pd

    if not path.is_file():
        raise BadInput("evaluation rows not found; expected the data the model is evaluated on "
                       "(gate-metrics.latency.data)", file=shown)
    try:
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the same user mistake
        raise BadInput(f"cannot read the evaluation rows: {type(exc).__name__}: {exc}", file=shown) from None
    if frame.empty:
        raise BadInput("no evaluation rows", file=shown)
    return frame.drop(columns=[c for c in exclude if c in frame.columns])


def load_model(model_uri: str, tracking_uri: str, model_path: Path | None) -> tuple[Callable[[Any], Any], str]:
    """The candidate's predict function: from the registry (``models:/...``) or the pickled model file."""
    if model_uri:
        # the files are checked against the digest train-with-cache recorded before anything is unpickled
        model, _ = models.load_verified(model_uri, tracking_uri)
        return model.predict, model_uri
    if model_path is None or not model_path.is_file():
        raise BadInput("no candidate model to time: pass model-version (or run-id) or set model.path in leanops.yml")
    try:
        model = unpickle(model_path)
    except NotAModel as exc:
        raise BadInput(f"not a pickle or joblib file of an estimator ({exc.reason}); for a skops file or an MLflow "
                       "model directory pass model-version (or run-id): the registered version is timed",
                       file=str(model_path)) from None
    if not hasattr(model, "predict"):
        raise BadInput("the pickled object has no predict(); expected a fitted estimator", file=str(model_path))
    return model.predict, str(model_path)


def latency(predict: Callable[[Any], Any], rows: Any, settings: Mapping[str, Any]) -> dict[str, float]:
    """p95 of single-row and batch ``predict`` calls on the evaluation rows, in milliseconds, in-process."""
    samples = int(settings.get("samples") or 200)
    batch = int(settings.get("batch-size") or 256)
    n = len(rows)
    for i in range(min(3, n)):  # warm-up: lazy imports, caches
        predict(rows.iloc[[i]])
    single = []
    for i in range(samples):
        one = rows.iloc[[i % n]]
        start = time.perf_counter()
        predict(one)
        single.append((time.perf_counter() - start) * 1000)
    batches = []
    for i in range(max(20, samples // 10)):
        first = (i * batch) % n
        idx = [(first + k) % n for k in range(batch)]
        chunk = rows.iloc[idx]
        start = time.perf_counter()
        predict(chunk)
        batches.append((time.perf_counter() - start) * 1000)
    gh.step(f"latency: {len(single)} single-row calls, {len(batches)} calls of {batch} rows")
    return {LATENCY_SINGLE: p95(single), LATENCY_BATCH: p95(batches)}
