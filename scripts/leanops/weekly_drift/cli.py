"""The ``weekly-drift`` subcommand's flags (each named like its input).
"""

from __future__ import annotations

import argparse

from ..flags import add_flag
from .commands import run, run_dispatch, run_stale_check
from .settings import (
    DEFAULT_MIN_ROWS,
    DEFAULT_REPORT_DIR,
    DEFAULT_SAMPLE_ROWS,
    DEFAULT_STALE_DAYS,
    DEFAULT_THRESHOLD,
    DEFAULT_WORKFLOW,
    NAME,
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(NAME, help="compare reference and current data with Evidently; open one issue on drift")
    add_flag(p, "--working-directory", default=".", help="the project folder holding leanops.yml (a path)")
    add_flag(p, "--reference", help="reference data: paths or globs, CSV, Parquet or JSON lines (default: "
             "weekly-drift.reference, else the training data of the MLflow champion of model.name)")
    add_flag(p, "--current", help="current data: paths or globs, CSV, Parquet or JSON lines such as "
             "`leanops serve` prediction logs (default: weekly-drift.current)")
    add_flag(p, "--threshold", kind="float", help="share of drifted columns that counts as drift, 0..1 "
             f"(default: weekly-drift.threshold, else {DEFAULT_THRESHOLD})")
    add_flag(p, "--min-rows", kind="int", help="fewer current (or reference) rows give no verdict "
             f"(default: weekly-drift.min-rows, else {DEFAULT_MIN_ROWS})")
    add_flag(p, "--columns", help="columns to compare, comma/newline-separated (default: weekly-drift.columns, "
             "else every column both datasets hold)")
    add_flag(p, "--ignore-columns", help="columns never compared, e.g. keys (default: weekly-drift.ignore-columns)")
    add_flag(p, "--target-column", help="the label column of the reference: left out of the features, and the "
             "baseline of prediction drift when the reference has no predictions (default: weekly-drift.target-column)")
    add_flag(p, "--prediction-column", help="the predictions column (default: weekly-drift.prediction-column, "
             "else prediction)")
    add_flag(p, "--retrain-workflow", help="workflow file (or id) to dispatch on drift; needs actions: write "
             "(default: weekly-drift.retrain-workflow, else none)")
    add_flag(p, "--retrain-ref", help="branch or tag the retraining runs on (default: GITHUB_REF_NAME, else main)")
    add_flag(p, "--dispatch", kind="bool", default=True, help="dispatch retrain-workflow here on drift; false leaves "
             "it to a later job (the output retrain-workflow names it)")
    add_flag(p, "--open-issue", kind="bool", default=True, help="open (or comment on) the leanops:drift issue on drift")
    add_flag(p, "--fail-on-insufficient-data", kind="bool", default=False,
             help="exit 1 instead of 0 when there are too few rows for a verdict")
    add_flag(p, "--report-dir", help=f"folder for report.html, result.json, evidently.json "
             f"(default: weekly-drift.report-dir, else {DEFAULT_REPORT_DIR})")
    add_flag(p, "--report-sample-rows", kind="int", help="rows of each dataset Evidently draws in the HTML; the "
             f"verdicts always use every row (default: weekly-drift.report-sample-rows, else {DEFAULT_SAMPLE_ROWS})")
    p.set_defaults(func=run)

    inner = p.add_subparsers(dest="weekly_drift_command", metavar="stale-check|dispatch")
    stale = inner.add_parser("stale-check", help="open an issue when the last successful drift run is too old")
    add_flag(stale, "--workflow", help="the drift workflow file in this repository (default: the running "
             f"workflow's file from GITHUB_WORKFLOW_REF, else {DEFAULT_WORKFLOW})")
    add_flag(stale, "--stale-after-days", kind="int", help="days without a successful run that count as stale "
             f"(default: weekly-drift.stale-after-days, else {DEFAULT_STALE_DAYS})")
    stale.set_defaults(func=run_stale_check)

    dispatch = inner.add_parser("dispatch", help="dispatch the retraining workflow (workflow_dispatch)")
    add_flag(dispatch, "--retrain-workflow", help="workflow file (or id) to dispatch (default: "
             "weekly-drift.retrain-workflow)")
    add_flag(dispatch, "--retrain-ref", help="branch or tag (default: GITHUB_REF_NAME, else main)")
    dispatch.set_defaults(func=run_dispatch)
