"""The gate: the candidate and the champion measured, bootstrap intervals and fairness computed, gates judged.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .. import gh, tasks
from ..errors import BadInput
from . import report, sources
from .gates import (
    DP_RATIO,
    EO_DIFF,
    GROUP_MAE_DIFF,
    LATENCY_BATCH,
    LATENCY_SINGLE,
    Gate,
    check_known,
    check_task,
    evaluate,
    infer_task,
    parse_gates,
    passed,
)
from .report import annotation_path
from .sources import Settings, Side

SECTION = "gate-metrics"


def predictions_path(s: Settings) -> tuple[Path | None, str]:
    name = s.bootstrap.get("predictions")
    return (s.root / str(name), str(name)) if name else (None, "")


def read_table(s: Settings, path: Path, shown: str, task: str | None = None) -> Any:
    from .bootstrap import read_predictions

    b = s.bootstrap
    return read_predictions(path, shown=shown, id_column=b.get("id-column"), label=b.get("label-column", "y_true"),
                            prediction=b.get("prediction-column", "y_pred"), score=b.get("score-column", "y_score"),
                            task=task)


def decide_task(s: Settings, gates: list[Gate], path: Path | None, shown: str) -> tasks.Decision:
    """The task: model.task checked against the predictions' labels, else inferred from them, else from the
    gated metrics; then every gate must fit it (BadInput naming the gate's line and the task's metrics)."""
    from .bootstrap import label_values

    label = s.bootstrap.get("label-column", "y_true")
    values = label_values(path, shown=shown, label=label) if path is not None else None
    what = f"{label} of {shown}" if path is not None else "no gate-metrics.bootstrap.predictions"
    decision = tasks.decide(s.cfg, values, what)
    if decision.task is not None:
        check_task(gates, decision.task, s.cfg, decision.how.split(";")[0])
        return decision
    fits = infer_task(gates, s.cfg)
    if len(fits) == 1:
        task = next(iter(fits))
        decision = tasks.Decision(task, f"inferred from the gated metrics (each fits {task} alone; no model.task "
                                        "and no predictions file); set model.task in leanops.yml to state it")
    elif fits == set(tasks.CLASSIFICATION):
        decision = tasks.Decision(None, "binary or multiclass: the gated metrics fit both and nothing else tells "
                                        "(set model.task, or gate-metrics.bootstrap.predictions)")
    if decision.task is not None:
        check_task(gates, decision.task, s.cfg, decision.how.split(";")[0])
    return decision


def latency_rows(s: Settings) -> tuple[Path | None, str]:
    """The evaluation rows: latency.data, else the CSV/Parquet input of the stage writing the predictions."""
    lat = s.section.get("latency") or {}
    if lat.get("data"):
        return s.root / str(lat["data"]), str(lat["data"])
    _, predictions = predictions_path(s)
    if not predictions:
        return None, ""
    from .sources import dvc_entries

    stages = {stage for path, stage in dvc_entries(s.root, "outs") + dvc_entries(s.root, "metrics")
              if os.path.normpath(path) == os.path.normpath(predictions)}
    for path, stage in dvc_entries(s.root, "deps"):
        if stage in stages and path.endswith((".csv", ".parquet")) and os.path.normpath(path) != predictions:
            return s.root / path, path
    return None, ""


def measure_latency(s: Settings, cand: Side, notes: list[str]) -> dict[str, float]:
    """p95 latencies of the candidate on the evaluation rows; {} (and a warning) when the rows are missing."""
    from . import measure

    path, shown = latency_rows(s)
    shipped = sources.candidate_file(s, shown) if path is not None and not path.is_file() else None
    if shipped is not None:  # the gate in a job of its own: the rows come with train-with-cache's gate inputs
        path, shown = shipped
    if path is None or not path.is_file():
        why = f"the evaluation rows {shown} are not in the workspace" if shown else "no evaluation rows"
        notes.append(f"latency not measured: {why} (set gate-metrics.latency.data; in a separate job, `dvc pull` "
                     "them or run the gate in the training job)")
        gh.warning(notes[-1], file=annotation_path(s.file), line=s.line("latency"), title="leanops gate-metrics")
        return {}
    lat = s.section.get("latency") or {}
    model_uri = f"models:/{s.model_name}/{cand.version}" if cand.version else ""
    model_path = (s.cfg.data.get("model") or {}).get("path")
    if shipped is not None and not model_uri and not (model_path and (s.root / model_path).is_file()):
        # a gate job of its own without a tracking server: the candidate lives in the training job's store
        notes.append(f"latency not measured: the candidate model is not in this job (no model-version, "
                     f"model.path {model_path or '(unset)'} not in the workspace); it is timed where a tracking "
                     "server holds the candidate")
        gh.warning(notes[-1], file=annotation_path(s.file), line=s.line("latency"), title="leanops gate-metrics")
        return {}
    rows = measure.read_rows(path, shown, list(lat.get("exclude-columns") or []))
    with gh.group("latency"):
        predict, what = measure.load_model(model_uri, s.tracking_uri() if model_uri else "",
                                           s.root / model_path if model_path else None)
        found = measure.latency(predict, rows, lat)
    notes.append(f"latency: p95 of {what}'s predict on {shown} ({len(rows)} rows): "
                 f"{found[LATENCY_SINGLE]:.2f} ms for one row, {found[LATENCY_BATCH]:.2f} ms for "
                 f"{int(lat.get('batch-size') or 256)} rows; measured in-process on this runner")
    return found


def gate(s: Settings) -> int:
    start = time.monotonic()
    gates = parse_gates(s.section, s.cfg)
    if not gates:
        raise BadInput("gate-metrics.gates: no gates; expected at least one metric, e.g. gates: {roc_auc: {min: 0.7}}",
                       file=s.file, line=s.cfg.line_of(SECTION))
    cand = sources.candidate(s)
    champ, history = sources.champion(s)
    notes: list[str] = []
    computed: set[str] = set()

    # per-example predictions: fairness for both sides, the paired bootstrap between them
    cand_table = champ_table = None
    pred_path, pred_shown = predictions_path(s)
    if pred_path is not None and not pred_path.is_file():
        fetched = sources.candidate_file(s, pred_shown) or sources.candidate_predictions(s, cand, pred_shown)
        if fetched is not None:
            pred_path, pred_shown = fetched
            gh.step(f"candidate predictions: {pred_shown}")
    if pred_path is not None and not pred_path.is_file():
        raise BadInput(f"bootstrap.predictions: {pred_shown} not found; expected the candidate's per-example "
                       "predictions", file=s.file, line=s.line("bootstrap", "predictions"))
    decision = decide_task(s, gates, pred_path, pred_shown)
    gh.step(f"task: {decision.task or 'not known'} ({decision.how})")
    if pred_path is not None:
        cand_table = read_table(s, pred_path, pred_shown, decision.task)
    if champ is not None and champ.predictions is not None:
        if not champ.predictions.is_file():
            raise BadInput(f"bootstrap.champion-predictions: {champ.predictions_shown} not found", file=s.file,
                           line=s.line("bootstrap", "champion-predictions"))
        champ_table = read_table(s, champ.predictions, champ.predictions_shown, decision.task)
    # a fair comparison: the champion on the candidate's rows (its own predictions, else re-scored), else nothing
    absolute = ""
    if champ is not None and cand_table is not None:
        from .rescore import compare

        same = compare(s, champ, cand_table, champ_table, gates, notes)
        champ_table, absolute = same.table, same.absolute

    column = (s.section.get("fairness") or {}).get("sensitive-column")
    if column and decision.task == tasks.MULTICLASS:
        notes.append(f"fairness not measured over {column}: its metrics are defined for binary (demographic parity, "
                     "equalized odds) and regression (the gap in mean absolute error between groups), not multiclass")
    elif column:
        computed |= {GROUP_MAE_DIFF} if decision.task == tasks.REGRESSION else {DP_RATIO, EO_DIFF}
        fairness_of(cand, cand_table, column, notes, decision.task)
        if champ is not None:
            fairness_of(champ, champ_table, column, [], decision.task)
    computed |= from_predictions(gates, cand, cand_table, notes)
    if champ is not None:
        from_predictions(gates, champ, champ_table, [])
    if any(g.metric in (LATENCY_SINGLE, LATENCY_BATCH) for g in gates):
        computed |= {LATENCY_SINGLE, LATENCY_BATCH}
        cand.metrics.update(measure_latency(s, cand, notes))

    known = set(champ.metrics if champ else {}) | computed | {k for p in history for k in p.metrics}
    check_known(gates, cand.metrics, known, s.cfg)
    intervals = {} if absolute else bootstrap_intervals(s, gates, cand_table, champ, champ_table, notes)
    verdicts = evaluate(gates, cand.metrics, champ.metrics if champ and not absolute else None, intervals)
    if absolute:
        from .rescore import mark_absolute

        mark_absolute(verdicts, absolute)
    if s.keep_champion and champ is not None and not passed(verdicts):
        notes.insert(0, f"**champion kept**: {champ.label} stays the champion; a retraining run (keep-champion) "
                        "whose candidate does not pass ends green, with nothing promoted and no alert")
    result = report.Result(passed(verdicts), verdicts, cand, champ, history, notes, s.champion, decision.task,
                           decision.how)
    report.publish(s, result, time.monotonic() - start)
    return 0


def bootstrap_intervals(s: Settings, gates: list[Gate], cand_table: Any, champ: Side | None, champ_table: Any,
                        notes: list[str]) -> dict[str, Any]:
    """The paired bootstrap's intervals when both sides have predictions; a note says what happened."""
    if champ is None or cand_table is None:
        return {}
    if champ_table is None:
        notes.append("paired bootstrap not run: no champion predictions on the same evaluation set "
                     f"(champion source {s.champion}); regressions are judged on the point values")
        return {}
    from .bootstrap import METRICS, intervals_for

    b = s.bootstrap
    with gh.group("paired bootstrap"):
        intervals, why = intervals_for(cand_table, champ_table, [g.metric for g in gates], b)
    if why:
        notes.append(f"paired bootstrap skipped: {why}; regressions are judged on the point values")
        gh.warning(notes[-1], file=annotation_path(s.file), line=s.line("bootstrap"), title="leanops gate-metrics")
    elif intervals:
        level = float(b.get("level") or 0.05)
        notes.append(f"paired bootstrap: {int(b.get('iterations') or 1000)} resamples of the {len(cand_table)} "
                     f"examples both models were scored on ({cand_table.path} vs {champ.predictions_shown}), "
                     f"paired by {cand_table.id_name}; a regression beyond the allowance fails only when the "
                     f"{1 - level:.0%} interval of the difference lies entirely beyond it (intervals for "
                     f"{', '.join(sorted(intervals))}; computable: {', '.join(sorted(METRICS))})")
    return intervals


def fairness_of(side: Side, table: Any, column: str, notes: list[str], task: str | None = None) -> None:
    """Fairness over ``column`` of one side's predictions, unless its metrics already hold it."""
    from . import measure

    if table is None:
        notes.append("fairness not measured: no per-example predictions (set gate-metrics.bootstrap.predictions)")
        return
    if column not in table.columns:
        notes.append(f"fairness not measured: {table.path} has no column {column!r}")
        return
    found = measure.error_gap(table, column) if task == tasks.REGRESSION else measure.fairness(table, column)
    side.metrics.update({k: v for k, v in found.items() if k not in side.metrics})


def from_predictions(gates: list[Gate], side: Side, table: Any, notes: list[str]) -> set[str]:
    """Gated metrics the side's metrics file lacks, computed from its predictions (the task's metrics)."""
    from .bootstrap import computable, point

    if table is None:
        return set()
    added = {g.metric: point(g.metric, table) for g in gates
             if g.metric not in side.metrics and computable(g.metric, table)}
    side.metrics.update(added)
    if added:
        notes.append(f"computed from {table.path} (the metrics file lacks them): {', '.join(sorted(added))}")
    return set(added)
