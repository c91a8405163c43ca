"""weekly-drift's settings: flags over ``leanops.yml``'s ``weekly-drift`` section.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config, gh
from ..errors import BadInput
from ..sqlsource import SqlSource, is_sql

NAME = "weekly-drift"
LABEL = "leanops:drift"
STALE_LABEL = "leanops:drift-stale"
MARKER = "<!-- leanops:weekly-drift -->"
STALE_MARKER = "<!-- leanops:weekly-drift-stale -->"


def folder_marker(marker: str, root: Path) -> str:
    """``marker`` for the model folder ``root``: as it is at the repository's root, else with the folder's
    artifact-suffix (``<!-- leanops:weekly-drift-models-churn -->``): one issue per model, never another's."""
    suffix = gh.artifact_suffix(root)
    return marker.replace(" -->", f"{suffix} -->") if suffix else marker
DEFAULT_THRESHOLD = 0.5  # Evidently's drift_share
DEFAULT_MIN_ROWS = 100
DEFAULT_STALE_DAYS = 8
DEFAULT_REPORT_DIR = "weekly-drift-report"
DEFAULT_SAMPLE_ROWS = 10_000
DEFAULT_WORKFLOW = "weekly-drift.yml"
DRIFT_EVENTS = ("schedule", "workflow_dispatch")


@dataclass
class Settings:
    reference: list[str]
    current: list[str]
    threshold: float
    min_rows: int
    columns: list[str]
    ignore_columns: list[str]
    target_column: str
    prediction_column: str
    retrain_workflow: str
    retrain_ref: str
    dispatch: bool
    open_issue: bool
    fail_on_insufficient_data: bool
    report_dir: Path
    sample_rows: int
    current_sql: SqlSource | None = None  # current: postgresql://... with current-table or current-query
    cfg: config.Config = field(repr=False, default_factory=lambda: config.Config(data={}))


def _chdir(args: argparse.Namespace) -> None:
    config.enter(getattr(args, "working_directory", None))


def settings(args: argparse.Namespace) -> Settings:
    """Flags (and their LEANOPS_* variables) override leanops.yml, which overrides the defaults.

    Paths from flags are relative to the working directory; paths from the file to the file's folder.
    """
    cfg = config.load(args.config)
    section = cfg.section(NAME)

    def paths(flag: str | None, key: str) -> list[str]:
        if flag not in (None, ""):
            return config.split_list(flag)
        return [p if os.path.isabs(p) or is_sql(p) else str(cfg.root / p) for p in config.split_list(section.get(key))]

    def pick(flag: Any, key: str, default: Any) -> Any:
        if flag not in (None, ""):
            return flag
        value = section.get(key)
        return default if value in (None, "") else value

    threshold = float(pick(args.threshold, "threshold", DEFAULT_THRESHOLD))
    if not 0 <= threshold <= 1 or math.isnan(threshold):
        raise BadInput(f"threshold: expected a share between 0 and 1, got {threshold:g}")
    min_rows = int(pick(args.min_rows, "min-rows", DEFAULT_MIN_ROWS))
    if min_rows < 1:
        raise BadInput(f"min-rows: expected a number >= 1, got {min_rows}")
    sample_rows = int(pick(args.report_sample_rows, "report-sample-rows", DEFAULT_SAMPLE_ROWS))
    if sample_rows < 100:
        raise BadInput(f"report-sample-rows: expected a number >= 100, got {sample_rows}")
    report_dir = args.report_dir or section.get("report-dir") or DEFAULT_REPORT_DIR
    base = Path.cwd() if args.report_dir else cfg.root
    current = paths(args.current, "current")
    if not current:
        raise BadInput(f"no current data: pass --current (input current) or set weekly-drift.current in "
                       f"{cfg.where(NAME)}")
    current_sql = None
    if any(is_sql(p) for p in current):
        if len(current) > 1:
            raise BadInput(f"current: a database URL is the only source of the current window (got {len(current)} "
                           "entries)", file=cfg.where(NAME))
        current_sql = SqlSource.parse(current[0], table=section.get("current-table"),
                                      query=section.get("current-query"), where=cfg.where(NAME),
                                      keys=("weekly-drift.current-table", "weekly-drift.current-query"))
    return Settings(
        reference=paths(args.reference, "reference"),
        current=current,
        threshold=threshold,
        min_rows=min_rows,
        columns=config.split_list(pick(args.columns, "columns", [])),
        ignore_columns=config.split_list(pick(args.ignore_columns, "ignore-columns", [])),
        target_column=str(pick(args.target_column, "target-column", "")),
        prediction_column=str(pick(args.prediction_column, "prediction-column", "prediction")),
        retrain_workflow=str(pick(args.retrain_workflow, "retrain-workflow", "")),
        retrain_ref=args.retrain_ref or os.environ.get("GITHUB_REF_NAME") or "main",
        dispatch=bool(args.dispatch),
        open_issue=bool(args.open_issue),
        fail_on_insufficient_data=bool(args.fail_on_insufficient_data),
        report_dir=(base / report_dir).resolve(),
        sample_rows=sample_rows,
        current_sql=current_sql,
        cfg=cfg,
    )
