"""``leanops weekly-drift``: a drift report on a schedule, one deduplicated issue, a retrain trigger.

    leanops weekly-drift [--reference PATHS] [--current PATHS] [--threshold SHARE] [--min-rows N] ...
    leanops weekly-drift stale-check [--workflow FILE] [--stale-after-days N]
    leanops weekly-drift dispatch --retrain-workflow FILE [--retrain-ref REF]

The reference (by default the champion's training data) and the current data (prediction logs of
``leanops serve``, CSV or Parquet) are compared column by column with Evidently's own tests and
thresholds, computed on all rows (:mod:`.stats`); Evidently 0.7 draws the HTML report from a sample
with those verdicts (:mod:`.report`). When the share of drifted columns reaches the threshold, one
issue labelled ``leanops:drift`` is opened (later runs comment on it) and, optionally, the retraining
workflow is dispatched.

Exit codes: 0 done (drift or not; too few rows without ``--fail-on-insufficient-data``), 1 too few rows
with ``--fail-on-insufficient-data``, 2 bad input (missing files, reference and current columns
differ, a bad setting, a refused dispatch), 3 GitHub's API or DVC unreachable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from typing import Any

from .. import config, gh, notify
from ..errors import BadInput, CheckFailed
from .alert import _age, _when, alert, dispatch, workflow_file
from .detect import Outcome, compared_columns, compute, prediction_drift
from .report import finish, score_text
from .settings import (
    DEFAULT_STALE_DAYS,
    DRIFT_EVENTS,
    NAME,
    STALE_LABEL,
    STALE_MARKER,
    _chdir,
    folder_marker,
    settings,
)


def run(args: argparse.Namespace) -> int:
    _chdir(args)
    s = settings(args)
    from . import data

    started = time.monotonic()
    with gh.group("read the current data"):
        current = data.load_sql(s.current_sql, "current") if s.current_sql else \
            data.load(s.current, "current", s.prediction_column)
        gh.step(f"current: {current.rows:,} rows, {len(current.columns)} columns from {', '.join(current.files)}")
    with gh.group("read the reference data"):
        if s.reference:
            reference = data.load(s.reference, "reference", s.prediction_column)
        else:
            files, source = data.champion_files(s.cfg, s.cfg.root)
            reference = data.load(files, "reference", s.prediction_column, source=source)
        gh.step(f"reference: {reference.rows:,} rows, {len(reference.columns)} columns from {reference.source}")
    columns = compared_columns(s, reference.columns, current.columns)
    out = Outcome()
    if current.rows < s.min_rows or reference.rows < s.min_rows:
        few = [f"{d.role} has {d.rows:,}" for d in (current, reference) if d.rows < s.min_rows]
        message = f"too few rows for a drift verdict: {' and '.join(few)} (min-rows {s.min_rows})"
        out.notes.append(message)
        finish(s, out, reference, current)
        if s.fail_on_insufficient_data:
            raise CheckFailed(message + "; failing because fail-on-insufficient-data is true")
        gh.notice(message + "; drift-detected=unknown", title="leanops weekly-drift")
        return 0
    with gh.group(f"drift of {len(columns)} columns on all rows"):
        t0 = time.monotonic()
        compute(s, reference.table, current.table, columns, out)
        rename = prediction_drift(s, reference.table, current.table, out)
        gh.step(f"statistics: {time.monotonic() - t0:.1f}s")
        for r in out.results:
            gh.step(f"  {r.column}: {r.display} {score_text(r.score)} (threshold {r.threshold:g})"
                    f"{' DRIFT' if r.drifted else ''}")
    for name, why in out.skipped.items():
        gh.notice(f"column {name} not compared: {why}", title="leanops weekly-drift")
    s.report_dir.mkdir(parents=True, exist_ok=True)
    if out.results:
        with gh.group("Evidently report"):
            t0 = time.monotonic()
            from . import evidently_report as report

            report.write(reference.table, current.table, out.results, drift_share=s.threshold,
                         html=s.report_dir / "report.html", json_path=s.report_dir / "evidently.json",
                         sample_rows=s.sample_rows, rename=rename)
            gh.step(f"report.html from a sample of {s.sample_rows:,} rows: {time.monotonic() - t0:.1f}s")
    try:
        if out.status == "drift":
            alert(s, out, reference, current)
    finally:
        finish(s, out, reference, current)
        gh.step(f"weekly-drift: {out.status} in {time.monotonic() - started:.1f}s")
        if out.status == "drift":
            notify.drift_detected(out.drift_share, [r.column for r in out.results if r.drifted], out.issue_number)
    return 0


def run_dispatch(args: argparse.Namespace) -> int:
    _chdir(args)
    cfg = config.load(args.config)
    workflow = args.retrain_workflow or cfg.section(NAME).get("retrain-workflow") or ""
    if not workflow:
        raise BadInput(f"no retrain-workflow: pass --retrain-workflow or set weekly-drift.retrain-workflow in "
                       f"{cfg.where(NAME)}")
    ref = args.retrain_ref or os.environ.get("GITHUB_REF_NAME") or "main"
    gh.set_output("retrain-dispatched", False)
    dispatch(workflow, ref)
    gh.set_output("retrain-dispatched", True)
    gh.add_summary(f"## leanops weekly-drift\n\nRetraining dispatched: `{workflow}` on `{ref}`.\n")
    return 0


def run_stale_check(args: argparse.Namespace) -> int:
    from ..github_api import ApiError, GitHubAPI

    _chdir(args)
    cfg = config.load(args.config)
    days = int(args.stale_after_days or cfg.section(NAME).get("stale-after-days") or DEFAULT_STALE_DAYS)
    if days < 1:
        raise BadInput(f"stale-after-days: expected a number >= 1, got {days}")
    workflow = args.workflow or workflow_file()
    api = GitHubAPI.from_env()
    try:
        runs = api.workflow_runs(workflow)
    except ApiError as exc:
        if exc.status == 404:
            raise BadInput(f"workflow {workflow} not found in {api.repository}; pass the drift workflow's file name "
                           "(input workflow)") from None
        raise
    now = dt.datetime.now(dt.timezone.utc)
    drift_runs = [r for r in runs if r.get("event", "schedule") in DRIFT_EVENTS]
    ok = [t for r in drift_runs if r.get("conclusion") == "success"
          for t in [_when(r, "updated_at", "run_started_at", "created_at")] if t]
    started = [t for r in drift_runs for t in [_when(r, "created_at", "run_started_at")] if t]
    last_success = max(ok) if ok else None
    since = last_success or (min(started) if started else None)
    stale = since is not None and now - since > dt.timedelta(days=days)
    outputs: dict[str, Any] = {"stale": stale, "last-success": last_success.isoformat() if last_success else "",
                               "issue-number": ""}
    if since is None:
        text = f"`{workflow}` has no drift runs yet; nothing to check."
    elif not stale:
        text = (f"Fresh: the last {'successful ' if last_success else ''}drift run of `{workflow}` was "
                f"{_age(now - since)} ago (stale after {days} days).")
    else:
        what = (f"the last successful drift run was {_age(now - since)} ago ({since:%Y-%m-%d})" if last_success
                else f"no drift run has succeeded since the first one {_age(now - since)} ago")
        marker = folder_marker(STALE_MARKER, cfg.root)
        title = f"Weekly drift check is stale: no successful run for {(now - since).days} days"
        body = "\n".join([
            marker, f"`{workflow}`: {what} (stale after {days} days).", "",
            "GitHub suspends scheduled workflows after 60 days without activity in a public repository and does "
            "not resume them on later pushes; failing runs stop the check as surely.",
            "",
            f"- re-enable it: Actions tab > {workflow} > Enable workflow, or `gh workflow enable {workflow}`",
            f"- run it now: `gh workflow run {workflow}`",
            "- look at the failed runs of the workflow, if any",
            "", "Later stale checks comment here; close this issue once drift runs succeed again."])
        number, created = api.upsert_issue(STALE_LABEL, title, body, f"{marker}\nStill stale: {what}.",
                                           marker=marker)
        outputs["issue-number"] = str(number)
        text = f"**Stale**: `{workflow}`: {what}; issue #{number} {'opened' if created else 'commented'}."
        gh.warning(text.replace("**", "").replace("`", ""), title="leanops weekly-drift stale-check")
    gh.step("stale-check: " + text.replace("**", "").replace("`", ""))
    gh.set_outputs(outputs)
    gh.add_summary(f"## leanops weekly-drift stale-check\n\n{text}\n")
    return 0
