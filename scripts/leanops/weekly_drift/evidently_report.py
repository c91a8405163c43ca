"""The Evidently 0.7 HTML report, drawn from a sample, showing the verdicts computed on all rows.

Evidently's ``DataDriftPreset`` draws its dataset summary and column table (distributions per column)
with a drift test per column. Each column gets a test registered here that returns the score and verdict
computed on every row by :mod:`leanops.weekly_drift.stats`, so the report shows the same numbers as the
job summary and the issue, while Evidently only plots a sample (the plots look the same above a few
thousand rows). The preset's per-column ``ValueDrift`` metrics are left out: the preset's HTML does not
show them, and drawing them doubled the time.
"""

from __future__ import annotations

import itertools
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from ..fsutil import atomic_path, atomic_write
from .stats import CATEGORICAL, NUMERICAL, ColumnDrift

_names = itertools.count()


def import_evidently() -> Any:
    """Evidently with telemetry off (about 4 s: imported only when a report is drawn)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
    logging.getLogger("evidently").setLevel(logging.ERROR)
    import evidently

    return evidently


def sample(table: Any, rows: int, seed: int = 0) -> Any:
    """At most ``rows`` rows of an Arrow table, drawn without replacement (in their original order)."""
    import numpy as np

    if table.num_rows <= rows:
        return table
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(table.num_rows, size=rows, replace=False))
    return table.take(picked)


def _register(result: ColumnDrift) -> str:
    """A drift test for Evidently that answers with the full-data result of one column."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    name = f"leanops_{next(_names)}"
    test = StatTest(
        name=name,
        display_name=f"{result.display}, all {result.reference_rows:,} + {result.current_rows:,} rows",
        allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
        default_threshold=result.threshold,
    )

    def precomputed(reference: Any, current: Any, feature_type: Any, threshold: float) -> tuple[float, bool]:
        return result.score, result.drifted

    register_stattest(test, precomputed)
    return name


def write(
    reference: Any,
    current: Any,
    results: list[ColumnDrift],
    *,
    drift_share: float,
    html: Path,
    json_path: Path,
    sample_rows: int,
    rename: dict[str, str] | None = None,
) -> None:
    """Write the HTML report and Evidently's JSON snapshot for the compared columns (atomically)."""
    import_evidently()
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    class _TablePreset(DataDriftPreset):  # the preset's own HTML, without per-column ValueDrift widgets
        def generate_metrics(self, context: Any) -> Any:
            return list(super().generate_metrics(context))[:1]

    shown = [r for r in results if r.score == r.score]  # NaN scores (an empty column) are not drawn
    features = [r for r in shown if r.role == "feature"]
    predictions = [r for r in shown if r.role == "prediction"]
    names = [r.column for r in shown]
    ref = sample(reference.rename_columns([(rename or {}).get(c, c) for c in reference.column_names])
                 .select([c for c in names]), sample_rows)
    cur = sample(current.select(names), sample_rows)
    ref_df = ref.to_pandas()
    cur_df = cur.to_pandas()
    methods = {r.column: _register(r) for r in shown}
    definition = DataDefinition(
        numerical_columns=[r.column for r in shown if r.kind == NUMERICAL],
        categorical_columns=[r.column for r in shown if r.kind == CATEGORICAL],
    )
    metrics: list[Any] = []
    if features:
        metrics.append(_TablePreset(
            columns=[r.column for r in features],
            drift_share=drift_share,
            per_column_method={r.column: methods[r.column] for r in features},
            per_column_threshold={r.column: r.threshold for r in features},
        ))
    metrics += [ValueDrift(column=r.column, method=methods[r.column], threshold=r.threshold) for r in predictions]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(metrics).run(
            Dataset.from_pandas(cur_df, data_definition=definition),
            Dataset.from_pandas(ref_df, data_definition=definition),
        )
        with atomic_path(html, suffix=".html") as tmp:
            snapshot.save_html(str(tmp))
        atomic_write(json_path, snapshot.json())
