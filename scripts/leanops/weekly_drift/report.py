"""What a person reads and the workflow uses: the result file, outputs, the job summary and the issue's text.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Any

from .. import gh
from ..fsutil import atomic_write_json
from .detect import Outcome
from .settings import MARKER, Settings, folder_marker

CHART_COLUMNS = 30
CHART_CAP = 5.0


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


def score_text(value: float) -> str:
    if value != value:
        return "n/a"
    return f"{value:.4f}" if value >= 0.001 else f"{value:.3g}"


def ordered(results: list[Any]) -> list[Any]:
    """Drifted first, then by how far past (or short of) the threshold, features before predictions."""
    return sorted(results, key=lambda r: (r.role != "prediction", r.drifted, min(r.strength, 1e9)), reverse=True)


def table(results: list[Any]) -> str:
    rows = [[f"`{r.column}`" + (" (prediction)" if r.role == "prediction" else ""), r.kind, r.display,
             score_text(r.score), f"{r.threshold:g}", "**yes**" if r.drifted else "no"] for r in ordered(results)]
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
        artifact = f"weekly-drift-report{gh.artifact_suffix(s.cfg.root)}"
        details.append(f"- run: {link} (the Evidently report is its artifact `{artifact}`)")
    if out.retrain_dispatched:
        details.append(f"- retraining dispatched: `{s.retrain_workflow}` on `{s.retrain_ref}`")
    details += ["", table(drifted)]
    marker = folder_marker(MARKER, s.cfg.root)
    where = f" in {gh.workspace_path(s.cfg.root)}" if marker != MARKER else ""
    title = f"Data drift{where}: {out.drifted} of {out.compared} columns drifted"
    body = "\n".join([marker, f"leanops weekly-drift found drift on {today}.", "", *details, "",
                      "Later runs that find drift comment here instead of opening another issue. Close this "
                      "issue once the model is retrained or the change is understood."])
    comment = "\n".join([marker, f"Drift again on {today}.", "", *details])
    return title, body, comment
