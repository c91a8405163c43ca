"""The report: a markdown table, notes and Mermaid charts, for the job summary and one sticky PR comment."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import gh, notify
from ..errors import BadInput, CheckFailed, LeanopsError
from ..fsutil import atomic_write, atomic_write_json
from .gates import Gate, Verdict
from .sources import Point, Settings, Side, event

MARKER = "leanops:gate-metrics"
REPORT_DIR = Path(".leanops") / "gate-metrics"
HEADERS = ["metric", "candidate", "champion", "delta", "threshold", "verdict"]


@dataclass
class Result:
    passed: bool
    verdicts: list[Verdict]
    candidate: Side
    champion: Side | None
    history: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = "mlflow"
    task: str | None = None  # binary | multiclass | regression; None: not known
    task_how: str = ""  # how it was decided

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.failed]

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "task": {"task": self.task, "how": self.task_how},
            "candidate": {"label": self.candidate.label, "version": self.candidate.version,
                          "run-id": self.candidate.run_id, "metrics": _clean(self.candidate.metrics),
                          "from": self.candidate.origin},
            "champion": None if self.champion is None else {
                "label": self.champion.label, "version": self.champion.version, "run-id": self.champion.run_id,
                "metrics": _clean(self.champion.metrics), "from": self.champion.origin, "source": self.source},
            "gates": [{
                "metric": v.gate.metric, "direction": v.gate.direction, "candidate": _num(v.candidate),
                "champion": _num(v.champion), "delta": _num(v.delta), "threshold": v.gate.threshold_text(),
                "verdict": v.status, "reasons": v.reasons, "notes": v.notes,
                "interval": None if v.interval is None else {"low": v.interval.low, "high": v.interval.high,
                                                             "level": v.interval.level, "n": v.interval.n},
            } for v in self.verdicts],
            "notes": self.notes,
            "history": [{"label": p.label, "metrics": _clean(p.metrics)} for p in self.history],
        }


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _clean(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: _num(v) for k, v in sorted(metrics.items())}


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def _delta(v: Verdict) -> str:
    d = v.delta
    text = "—" if d is None else f"{d:+.4g}"
    if v.interval is not None:
        conf = f"{1 - v.interval.level:.0%}"
        text += f" ({conf} CI {v.interval.low:+.4g} … {v.interval.high:+.4g})"
    return text


def _verdict(v: Verdict) -> str:
    if v.status == "fail":
        return "❌ fail: " + "; ".join(v.reasons)
    if v.status == "skip":
        return "➖ skipped: " + "; ".join(v.notes)
    if v.notes:
        return "✅ pass (" + "; ".join(v.notes) + ")"
    return "✅ pass"


def table(verdicts: Sequence[Verdict]) -> str:
    rows = [[f"{v.gate.metric} {v.gate.arrow}", fmt(v.candidate), fmt(v.champion), _delta(v),
             v.gate.threshold_text(), _verdict(v)] for v in verdicts]
    return gh.md_table(HEADERS, rows)


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def chart(gate: Gate, history: Sequence[Point], candidate: float | None) -> str:
    """A Mermaid ``xychart-beta`` of one metric over the past champions, the candidate last."""
    points = [(p.label, p.metrics[gate.metric]) for p in history
              if gate.metric in p.metrics and math.isfinite(p.metrics[gate.metric])]
    if candidate is not None and math.isfinite(candidate):
        points.append(("candidate", candidate))
    if len(points) < 2:
        return ""
    values = [v for _, v in points]
    bounds = [b for b in (gate.min, gate.max) if b is not None]
    low, high = min(values + bounds), max(values + bounds)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    lines = ["```mermaid", "xychart-beta",
             f"    title {_quote(f'{gate.metric} over the last champions ({gate.direction} is better)')}",
             "    x-axis [" + ", ".join(_quote(label) for label, _ in points) + "]",
             f"    y-axis {_quote(gate.metric)} {low - pad:.6g} --> {high + pad:.6g}",
             "    line [" + ", ".join(f"{v:.6g}" for v in values) + "]"]
    for bound in bounds:
        lines.append("    line [" + ", ".join(f"{bound:.6g}" for _ in values) + "]")
    lines.append("```")
    return "\n".join(lines) + "\n"


def markdown(r: Result, folder: str = "") -> str:
    """The report; ``folder``: the model folder, named in the heading when the repository has it below the root."""
    head = "✅ passed" if r.passed else f"❌ failed ({len(r.failed)} of {len(r.verdicts)} gates)"
    out = [f"## gate-metrics: {head}" + (f" · `{folder}`" if folder else ""), ""]
    cand = f"**candidate**: {r.candidate.label}, metrics from {r.candidate.origin}"
    if r.champion is None:
        champ = (f"**champion**: none yet ({r.source}). This is the first model: only the absolute gates "
                 "(min/max) apply; nothing is compared with a champion.")
    else:
        champ = f"**champion** ({r.source}): {r.champion.label}, metrics from {r.champion.origin}"
    task = f"**task**: {r.task or 'not known'}" + (f" ({r.task_how})" if r.task_how else "")
    out += [f"- {task}", f"- {cand}", f"- {champ}", "", table(r.verdicts)]
    if r.notes:
        out += [*(f"- {n}" for n in r.notes), ""]
    charts = [c for v in r.verdicts if (c := chart(v.gate, r.history, v.candidate))]
    if charts:
        out += ["<details><summary>the gated metrics over the last champions</summary>", "", *charts,
                "</details>", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- where people look


def annotation_path(path: str) -> str:
    """A file as an annotation wants it: relative to the workspace (the repository root) when inside it."""
    base = Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    try:
        return str(Path(path).resolve().relative_to(base))
    except ValueError:
        return path


def publish(s: Settings, r: Result, seconds: float) -> None:
    """Report files, job summary, outputs, annotations, the sticky comment; then CheckFailed if a gate failed."""
    suffix = gh.artifact_suffix(s.root)
    body = (markdown(r, gh.workspace_path(s.root) if suffix else "")
            + f"\n<sub>leanops gate-metrics · {seconds:.1f}s</sub>\n")
    if suffix:  # a model folder below the root: its own sticky comment, the marker travels with report.md
        body = f"<!-- {MARKER}{suffix} -->\n{body}"
    folder = s.root / REPORT_DIR
    atomic_write(folder / "report.md", body)
    report_file = atomic_write_json(folder / "report.json", r.as_json())
    gh.add_summary(body)
    gh.set_outputs({"passed": r.passed, "report-file": str(report_file), "candidate-version": r.candidate.version,
                    "champion-version": r.champion.version if r.champion else ""})
    config_file = annotation_path(s.file)
    for v in r.failed:
        gh.error(f"{v.gate.metric}: {'; '.join(v.reasons)}", file=config_file, line=s.cfg.line_of(*v.gate.keys),
                 title="leanops gate-metrics")
    try:
        post_comment(s, body)
    except LeanopsError as exc:
        if r.passed:
            raise
        gh.warning(f"the report could not be posted as a pull-request comment: {exc.one_line()}")
    if not r.passed and s.keep_champion and r.champion is not None:  # retraining: not a failure, no alert
        gh.set_output("champion-kept", True)
        gh.notice(f"champion kept: {r.champion.label} stays the champion; the candidate did not pass "
                  f"{len(r.failed)} of {len(r.verdicts)} gates (report: {report_file})", title="leanops gate-metrics")
        return
    if not r.passed:
        failed = "; ".join(f"{v.gate.metric} ({', '.join(v.reasons)})" for v in r.failed)
        notify.gate_failed(s.model_name or "the candidate", r.candidate.version, [v.gate.metric for v in r.failed])
        raise CheckFailed(f"{len(r.failed)} of {len(r.verdicts)} gates failed: {failed}; report: {report_file}")
    gh.step(f"gate-metrics: {len(r.verdicts)} gates passed; report: {report_file}")


def fork_of(payload: dict[str, Any]) -> str | None:
    """The head repository when a pull request comes from another repository (a fork), else None."""
    pr = payload.get("pull_request") or {}
    head = (pr.get("head") or {}).get("repo")
    base = ((pr.get("base") or {}).get("repo") or {}).get("full_name") or os.environ.get("GITHUB_REPOSITORY", "")
    if head is None:
        return "a deleted repository"
    name = str(head.get("full_name") or "")
    return name if name and base and name.lower() != base.lower() else None


def comment_from_file(root: Path, report_file: str, enabled: bool) -> int:
    """``gate-metrics comment``: post the gate's report as the sticky comment, from a job that holds the
    pull-requests token and loads no model (the gate, which unpickles the candidate, holds no write token)."""
    path = Path(report_file) if report_file else root / REPORT_DIR / "report.md"
    if not path.is_file():
        raise BadInput(f"report-file: {path} not found; expected the gate job's report.md (its artifact)")
    _post(path.read_text(encoding="utf-8"), enabled)
    return 0


def comment_marker(body: str) -> str:
    """The sticky comment's marker: the one report.md starts with (a model folder below the root), else MARKER."""
    found = re.match(r"<!-- (" + re.escape(MARKER) + r"-[A-Za-z0-9._-]+) -->", body)
    return found.group(1) if found else MARKER


def post_comment(s: Settings, body: str) -> None:
    """One sticky comment on the pull request, created once and updated in place (found by a hidden marker)."""
    _post(body, s.comment)


def _post(body: str, enabled: bool) -> None:
    from ..github_api import ApiError, GitHubAPI

    payload = event()
    pr = payload.get("pull_request")
    number = (pr or {}).get("number") or payload.get("number")
    if not enabled or not pr or not number:
        return
    fork = fork_of(payload)
    if fork:
        gh.notice(f"no pull-request comment: the pull request comes from the fork {fork}, and a fork's pull request "
                  "gets a read-only token; the report is in the job summary", title="leanops gate-metrics")
        return
    api = GitHubAPI.from_env()
    try:
        cid, created = api.sticky_comment(int(number), comment_marker(body), body)
    except ApiError as exc:
        if exc.status != 403:
            raise
        gh.notice(f"no pull-request comment: the token may not comment on #{number} (HTTP 403; a fork's pull request, "
                  "or the job lacks pull-requests: write); the report is in the job summary",
                  title="leanops gate-metrics")
        return
    gh.step(f"pull-request #{number}: comment {cid} {'created' if created else 'updated'}")
