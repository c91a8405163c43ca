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
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config, gh, notify
from ..errors import BadInput, CheckFailed
from ..flags import add_flag
from ..fsutil import atomic_write_json

NAME = "weekly-drift"
LABEL = "leanops:drift"
STALE_LABEL = "leanops:drift-stale"
MARKER = "<!-- leanops:weekly-drift -->"
STALE_MARKER = "<!-- leanops:weekly-drift-stale -->"
DEFAULT_THRESHOLD = 0.5  # Evidently's drift_share
DEFAULT_MIN_ROWS = 100
DEFAULT_STALE_DAYS = 8
DEFAULT_REPORT_DIR = "weekly-drift-report"
DEFAULT_SAMPLE_ROWS = 10_000
DEFAULT_WORKFLOW = "weekly-drift.yml"
DRIFT_EVENTS = ("schedule", "workflow_dispatch")
CHART_COLUMNS = 30
CHART_CAP = 5.0


# ---------------------------------------------------------------------------- CLI


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


# ---------------------------------------------------------------------------- settings


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
        return [p if os.path.isabs(p) else str(cfg.root / p) for p in config.split_list(section.get(key))]

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
        cfg=cfg,
    )


# ---------------------------------------------------------------------------- the check


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
    kind = stats.infer_kind(current.column(pred))
    if kind not in (stats.NUMERICAL, stats.CATEGORICAL):
        out.notes.append(f"predictions ({pred}) are {kind}: no prediction drift")
        return {}
    result = stats.column_drift(pred, kind, reference.column(baseline), current.column(pred), role="prediction")
    out.results.append(result)
    out.prediction_drift = "unknown" if result.score != result.score else str(result.drifted).lower()
    return {baseline: pred} if baseline != pred else {}


def run(args: argparse.Namespace) -> int:
    _chdir(args)
    s = settings(args)
    from . import data

    started = time.monotonic()
    with gh.group("read the current data"):
        current = data.load(s.current, "current", s.prediction_column)
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
            gh.step(f"  {r.column}: {r.display} {_score(r.score)} (threshold {r.threshold:g})"
                    f"{' DRIFT' if r.drifted else ''}")
    for name, why in out.skipped.items():
        gh.notice(f"column {name} not compared: {why}", title="leanops weekly-drift")
    s.report_dir.mkdir(parents=True, exist_ok=True)
    if out.results:
        with gh.group("Evidently report"):
            t0 = time.monotonic()
            from . import report

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


def finish(s: Settings, out: Outcome, reference: Any, current: Any) -> None:
    """The JSON result, the outputs and the job summary (also when something failed half-way)."""
    atomic_write_json(s.report_dir / "result.json", result_json(s, out, reference, current))
    gh.set_outputs(out.outputs(s))
    gh.add_summary(summary(s, out, reference, current))


def result_json(s: Settings, out: Outcome, reference: Any, current: Any) -> dict[str, Any]:
    return {
        "status": out.status,
        "drift_detected": out.drift_detected,
        "drift_share": out.drift_share,
        "threshold": s.threshold,
        "drifted_columns": out.drifted,
        "compared_columns": out.compared,
        "prediction_drift": out.prediction_drift,
        "columns": [r.to_json() for r in out.results],
        "skipped_columns": out.skipped,
        "notes": out.notes,
        "reference": {"source": reference.source, "files": reference.files, "rows": reference.rows},
        "current": {"source": current.source, "files": current.files, "rows": current.rows},
        "issue_number": out.issue_number,
        "retrain_dispatched": out.retrain_dispatched,
        "report": "report.html" if (s.report_dir / "report.html").is_file() else None,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------- what a person reads


def _score(value: float) -> str:
    if value != value:
        return "n/a"
    return f"{value:.4f}" if value >= 0.001 else f"{value:.3g}"


def ordered(results: list[Any]) -> list[Any]:
    """Drifted first, then by how far past (or short of) the threshold, features before predictions."""
    return sorted(results, key=lambda r: (r.role != "prediction", r.drifted, min(r.strength, 1e9)), reverse=True)


def table(results: list[Any]) -> str:
    rows = [[f"`{r.column}`" + (" (prediction)" if r.role == "prediction" else ""), r.kind, r.display,
             _score(r.score), f"{r.threshold:g}", "**yes**" if r.drifted else "no"] for r in ordered(results)]
    return gh.md_table(["column", "type", "statistic", "score", "threshold", "drifted"], rows)


def chart(results: list[Any]) -> str:
    """A Mermaid bar chart of score relative to threshold (1 and above: drifted)."""
    shown = [r for r in ordered(results) if r.score == r.score][:CHART_COLUMNS]
    if not shown:
        return ""
    names = ", ".join('"' + r.column.replace('"', "'").replace("\n", " ")[:24] + '"' for r in shown)
    values = ", ".join(f"{min(r.strength, CHART_CAP):.3f}" for r in shown)
    top = math.ceil(max([2.0] + [min(r.strength, CHART_CAP) for r in shown]))
    ones = ", ".join("1" for _ in shown)
    return ("```mermaid\nxychart-beta\n"
            '  title "Drift score relative to its threshold (1 and above: drifted)"\n'
            f"  x-axis [{names}]\n"
            f'  y-axis "score / threshold" 0 --> {top}\n'
            f"  bar [{values}]\n"
            f"  line [{ones}]\n```\n")


def headline(s: Settings, out: Outcome) -> str:
    if out.status == "insufficient-data":
        return "**No verdict**: " + "; ".join(out.notes)
    share = f"{out.drift_share:.0%}" if out.drift_share is not None else "n/a"
    verdict = "**Drift detected**" if out.status == "drift" else "**No drift**"
    return (f"{verdict}: {out.drifted} of {out.compared} columns drifted ({share}; threshold {s.threshold:.0%}, "
            "Evidently's tests on all rows)")


def run_link() -> str:
    run_id = os.environ.get("GITHUB_RUN_ID")
    repo = os.environ.get("GITHUB_REPOSITORY")
    if not run_id or not repo:
        return ""
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    return f"{server}/{repo}/actions/runs/{run_id}"


def summary(s: Settings, out: Outcome, reference: Any, current: Any) -> str:
    lines = ["## leanops weekly-drift", "", headline(s, out), "",
             f"- reference: {reference.rows:,} rows from {reference.source}",
             f"- current: {current.rows:,} rows from {current.source}"]
    if out.prediction_drift != "unknown":
        lines.append(f"- prediction drift: {out.prediction_drift}")
    if out.issue_number is not None:
        lines.append(f"- issue #{out.issue_number} ({'opened' if out.issue_created else 'commented'})")
    if out.retrain_dispatched:
        lines.append(f"- retraining dispatched: `{s.retrain_workflow}` on `{s.retrain_ref}`")
    if (s.report_dir / "report.html").is_file():
        lines.append(f"- Evidently report: `{_display_path(s.report_dir / 'report.html')}` (the run's artifact)")
    lines += [f"- note: {n}" for n in out.notes if out.status != "insufficient-data"]
    lines += [f"- column `{name}` not compared: {why}" for name, why in out.skipped.items()]
    if out.results:
        lines += ["", table(out.results), chart(out.results)]
    return "\n".join(lines) + "\n"


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def issue_text(s: Settings, out: Outcome, reference: Any, current: Any) -> tuple[str, str, str]:
    """(title, body, comment) of the drift issue."""
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    drifted = [r for r in ordered(out.results) if r.drifted]
    link = run_link()
    details = [headline(s, out), "",
               f"- reference: {reference.rows:,} rows from {reference.source}",
               f"- current: {current.rows:,} rows from {current.source}"]
    if link:
        details.append(f"- run: {link} (the Evidently report is its artifact `weekly-drift-report`)")
    if out.retrain_dispatched:
        details.append(f"- retraining dispatched: `{s.retrain_workflow}` on `{s.retrain_ref}`")
    details += ["", table(drifted)]
    title = f"Data drift: {out.drifted} of {out.compared} columns drifted"
    body = "\n".join([MARKER, f"leanops weekly-drift found drift on {today}.", "", *details, "",
                      "Later runs that find drift comment here instead of opening another issue. Close this "
                      "issue once the model is retrained or the change is understood."])
    comment = "\n".join([MARKER, f"Drift again on {today}.", "", *details])
    return title, body, comment


# ---------------------------------------------------------------------------- GitHub


def dispatch(workflow: str, ref: str) -> None:
    """workflow_dispatch ``workflow`` on ``ref``; a refusal is a bad setting (exit 2), an outage exit 3."""
    from ..github_api import ApiError, GitHubAPI

    api = GitHubAPI.from_env()
    try:
        api.dispatch(workflow, ref)
    except ApiError as exc:
        if exc.status == 403:
            raise BadInput(f"retrain-workflow {workflow}: dispatch refused (HTTP 403); the job needs "
                           "permissions: actions: write") from None
        if exc.status in (404, 422):
            raise BadInput(f"retrain-workflow {workflow}: dispatch on {ref} failed (HTTP {exc.status}); expected a "
                           "workflow file with a workflow_dispatch trigger and no required inputs") from None
        raise
    gh.step(f"dispatched {workflow} on {ref}")


def alert(s: Settings, out: Outcome, reference: Any, current: Any) -> None:
    """On drift: dispatch the retraining (when set), then open or comment on the one issue."""
    failure: BadInput | None = None
    if s.retrain_workflow and s.dispatch:
        try:
            dispatch(s.retrain_workflow, s.retrain_ref)
            out.retrain_dispatched = True
        except BadInput as exc:  # still tell people about the drift, then fail
            failure = exc
    if s.open_issue:
        from ..github_api import GitHubAPI

        title, body, comment = issue_text(s, out, reference, current)
        out.issue_number, out.issue_created = GitHubAPI.from_env().upsert_issue(LABEL, title, body, comment)
        gh.step(f"issue #{out.issue_number} {'opened' if out.issue_created else 'commented'} ({LABEL})")
    if failure:
        raise failure


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


# ---------------------------------------------------------------------------- stale check


def workflow_file() -> str:
    """The running workflow's file name from GITHUB_WORKFLOW_REF (owner/repo/.github/workflows/F@ref)."""
    ref = os.environ.get("GITHUB_WORKFLOW_REF", "")
    path = ref.split("@", 1)[0]
    if "/.github/workflows/" in path:
        return path.rsplit("/", 1)[-1]
    return DEFAULT_WORKFLOW


def _when(run: dict[str, Any], *keys: str) -> dt.datetime | None:
    for key in keys:
        value = run.get(key)
        if value:
            try:
                return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


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
        title = f"Weekly drift check is stale: no successful run for {(now - since).days} days"
        body = "\n".join([
            STALE_MARKER, f"`{workflow}`: {what} (stale after {days} days).", "",
            "GitHub suspends scheduled workflows after 60 days without activity in a public repository and does "
            "not resume them on later pushes; failing runs stop the check as surely.",
            "",
            f"- re-enable it: Actions tab > {workflow} > Enable workflow, or `gh workflow enable {workflow}`",
            f"- run it now: `gh workflow run {workflow}`",
            "- look at the failed runs of the workflow, if any",
            "", "Later stale checks comment here; close this issue once drift runs succeed again."])
        number, created = api.upsert_issue(STALE_LABEL, title, body,
                                           f"{STALE_MARKER}\nStill stale: {what}.")
        outputs["issue-number"] = str(number)
        text = f"**Stale**: `{workflow}`: {what}; issue #{number} {'opened' if created else 'commented'}."
        gh.warning(text.replace("**", "").replace("`", ""), title="leanops weekly-drift stale-check")
    gh.step("stale-check: " + text.replace("**", "").replace("`", ""))
    gh.set_outputs(outputs)
    gh.add_summary(f"## leanops weekly-drift stale-check\n\n{text}\n")
    return 0


def _age(delta: dt.timedelta) -> str:
    if delta.days >= 1:
        return f"{delta.days} day{'s' if delta.days != 1 else ''}"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"
