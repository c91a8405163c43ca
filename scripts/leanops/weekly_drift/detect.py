"""Drift per column and of the predictions, on every row (the statistics live in ``stats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import tasks
from ..errors import BadInput
from .settings import Settings


@dataclass
class Outcome:
    status: str = "insufficient-data"  # or "drift", "no-drift"
    drift_detected: str = "unknown"
    drift_share: float | None = None
    drifted: int = 0
    compared: int = 0
    issue_number: int | None = None
    issue_created: bool = False
    retrain_dispatched: bool = False
    prediction_drift: str = "unknown"
    results: list[Any] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def outputs(self, s: Settings) -> dict[str, Any]:
        return {
            "drift-detected": self.drift_detected,
            "drift-share": "" if self.drift_share is None else f"{self.drift_share:.4f}",
            "drifted-columns": ",".join(r.column for r in self.results if r.drifted and r.role == "feature"),
            "prediction-drift": self.prediction_drift,
            "issue-number": "" if self.issue_number is None else str(self.issue_number),
            "retrain-dispatched": self.retrain_dispatched,
            "retrain-workflow": s.retrain_workflow,
            "report-dir": str(s.report_dir),
        }


def prediction_task(s: Settings, baseline: Any, what: str) -> tuple[str | None, str]:
    """The model's task: model.task in leanops.yml, else inferred from the baseline's values (the reference's
    predictions or labels); (None, why) when neither tells."""
    declared = tasks.declared(s.cfg)
    if declared in tasks.TASKS:
        return declared, f"model.task in {s.cfg.where('model', 'task')}"
    values = [str(v) for v in baseline.to_pylist() if v is not None]
    target = tasks.look(values)
    if not target.rows:
        return None, "no values to infer it from"
    return tasks.infer(target), f"inferred from {what}: {target.describe()}"


def compared_columns(s: Settings, reference: list[str], current: list[str]) -> list[str]:
    """The feature columns to compare; BadInput listing the differences when the two sides disagree."""
    special = {s.target_column, s.prediction_column} - {""}
    ignored = set(s.ignore_columns) | special
    if s.columns:
        wanted = [c for c in s.columns if c not in special]
        no_ref = [c for c in wanted if c not in reference]
        no_cur = [c for c in wanted if c not in current]
        if no_ref or no_cur:
            parts = ([f"missing from the reference: {', '.join(no_ref)}"] if no_ref else []) + (
                [f"missing from the current data: {', '.join(no_cur)}"] if no_cur else [])
            raise BadInput(f"columns to compare are not in both datasets: {'; '.join(parts)}")
        return wanted
    ref_cols = [c for c in reference if c not in ignored]
    cur_cols = [c for c in current if c not in ignored]
    only_ref = [c for c in ref_cols if c not in cur_cols]
    only_cur = [c for c in cur_cols if c not in ref_cols]
    if only_ref or only_cur:
        parts = ([f"only in the reference: {', '.join(only_ref)}"] if only_ref else []) + (
            [f"only in the current data: {', '.join(only_cur)}"] if only_cur else [])
        raise BadInput(f"reference and current data have different columns: {'; '.join(parts)} (set "
                       "weekly-drift.columns, ignore-columns or target-column to compare the shared ones)")
    return ref_cols


def _numeric_type(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def compute(s: Settings, reference: Any, current: Any, columns: list[str], out: Outcome) -> None:
    """Every column's drift on all rows, then the share."""
    from . import stats

    for name in columns:
        kind = stats.infer_kind(current.column(name))
        if kind in (stats.TEXT, stats.UNSUPPORTED):
            out.skipped[name] = ("text (more than half the values distinct)" if kind == stats.TEXT
                                 else f"type {current.column(name).type} (or no values)")
            continue
        ref_type, cur_type = reference.column(name).type, current.column(name).type
        if kind == stats.NUMERICAL and not _numeric_type(ref_type):
            raise BadInput(f"column {name!r} is numerical in the current data ({cur_type}) but {ref_type} in the "
                           "reference; expected the same kind of values on both sides")
        out.results.append(stats.column_drift(name, kind, reference.column(name), current.column(name)))
    out.drifted, share, detected = stats.dataset_drift(out.results, s.threshold)
    out.compared = sum(1 for r in out.results if r.role == "feature" and r.score == r.score)
    if out.compared == 0:
        out.notes.append("no column could be compared (every column is text, unsupported or empty)")
        return
    out.drift_share = share
    out.drift_detected = "true" if detected else "false"
    out.status = "drift" if detected else "no-drift"


def prediction_drift(s: Settings, reference: Any, current: Any, out: Outcome) -> dict[str, str]:
    """Prediction drift when the current data has predictions and the reference predictions or labels.

    Returns the renaming that makes the reference's column carry the prediction column's name.
    """
    from . import stats

    pred = s.prediction_column
    if pred not in current.column_names:
        return {}
    if pred in reference.column_names:
        baseline = pred
    elif s.target_column and s.target_column in reference.column_names:
        baseline = s.target_column
    else:
        out.notes.append(f"the current data has predictions ({pred}) but the reference has neither {pred} nor a "
                         "target-column: no prediction drift")
        return {}
    ref_values, cur_values = reference.column(baseline), current.column(pred)
    task, how = prediction_task(s, ref_values, f"{baseline} of the reference")
    if task is None:
        kind = stats.infer_kind(cur_values)
        if kind not in (stats.NUMERICAL, stats.CATEGORICAL):
            out.notes.append(f"predictions ({pred}) are {kind}: no prediction drift")
            return {}
    elif task == tasks.REGRESSION:
        kind = stats.NUMERICAL  # the distribution of the values, however few distinct
        if not (stats.numeric_column(ref_values) and stats.numeric_column(cur_values)):
            out.notes.append(f"prediction drift not measured: the task is regression ({how}) but {pred} or {baseline} "
                             "holds no numbers")
            return {}
    else:
        kind = stats.CATEGORICAL  # the classes' shares: 1, 1.0 and "1" are one class on both sides
        ref_values, cur_values = stats.labels(ref_values), stats.labels(cur_values)
    if task is not None:
        what = "the predicted values' distribution" if task == tasks.REGRESSION else "the shares of the classes"
        out.notes.append(f"prediction drift of a {task} model ({how}): {what}, {pred} against {baseline}")
    result = stats.column_drift(pred, kind, ref_values, cur_values, role="prediction")
    out.results.append(result)
    out.prediction_drift = "unknown" if result.score != result.score else str(result.drifted).lower()
    return {baseline: pred} if baseline != pred else {}
