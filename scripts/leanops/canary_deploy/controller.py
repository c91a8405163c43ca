"""The controller, the same for every target: start the canary, walk the steps, judge each window, then promote
or roll back; and the report (JSON file, job summary table, Mermaid chart)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import gh
from .analysis import FAIL, INCONCLUSIVE, PASS, Snapshot, Stats, Thresholds, Verdict, judge, window
from .record import Entry, Record, now, run_url

PROMOTED, ROLLED_BACK = "promoted", "rolled-back"


@dataclass
class Step:
    weight: int
    window: float


@dataclass
class Settings:
    steps: list[Step]
    thresholds: Thresholds = field(default_factory=Thresholds)
    on_inconclusive: str = "rollback"  # or "extend": the window once more before rolling back
    extensions: int = 1
    poll: float = 1.0  # how often the canary's container is checked inside a window


class Target(Protocol):
    kind: str
    dry_run: bool

    def describe(self) -> str: ...
    def read_record(self) -> Record | None: ...
    def write_record(self, record: Record) -> None: ...
    def pull(self, image: str) -> Entry: ...
    def prepare(self, record: Record | None) -> bool: ...
    def first_deploy(self, entry: Entry) -> None: ...
    def start_canary(self, entry: Entry) -> str: ...
    def set_weight(self, weight: int) -> None: ...
    def scrape(self, role: str) -> Snapshot | None: ...
    def canary_problem(self) -> str: ...
    def abort(self) -> None: ...
    def promote(self) -> None: ...
    def switch_to(self, entry: Entry) -> None: ...


@dataclass
class Report:
    name: str
    target: str
    image: str
    verdict: str = ""
    reason: str = ""
    stable: Entry | None = None
    previous: Entry | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = field(default_factory=now)
    canary_first_traffic: float = 0.0  # monotonic
    finished: float = 0.0  # monotonic, when the final traffic change was applied
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = {k: v for k, v in asdict(self).items() if k not in ("canary_first_traffic", "finished")}
        out["stable_digest"] = self.stable.digest if self.stable else ""
        out["rollback_seconds"] = round(self.finished - self.canary_first_traffic, 2) \
            if self.verdict == ROLLED_BACK and self.canary_first_traffic else None
        return out


def _ms(x: float) -> float | None:
    return None if math.isnan(x) else round(x * 1000, 2)


def _rate(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def step_row(step: Step, index: int, v: Verdict | None, outcome: str, reason: str) -> dict[str, Any]:
    row: dict[str, Any] = {"step": index + 1, "weight": step.weight, "window_s": step.window, "verdict": outcome,
                           "reason": reason}
    if v is not None:
        row.update({
            "canary_requests": int(v.canary.requests), "stable_requests": int(v.stable.requests),
            "canary_error_rate": _rate(v.canary.error_rate), "stable_error_rate": _rate(v.stable.error_rate),
            "canary_p95_ms": _ms(v.canary.p95), "stable_p95_ms": _ms(v.stable.p95),
            "distance": None if math.isnan(v.distance) else round(v.distance, 4),
        })
    return row


class Controller:
    def __init__(self, target: Target, settings: Settings, name: str) -> None:
        self.target = target
        self.s = settings
        self.name = name

    # ------------------------------------------------------------------ deploy

    def deploy(self, image: str, commit: str) -> Report:
        t = self.target
        report = Report(name=self.name, target=t.kind, image=image)
        gh.step(f"canary-deploy {self.name}: {image} on {t.describe()}")
        entry = t.pull(image)
        entry.commit, entry.deployed_at, entry.run_url = commit or entry.commit, now(), run_url()
        record = t.read_record() or Record(name=self.name)
        serving = t.prepare(record)
        if record.stable and record.stable.digest == entry.digest and serving:
            gh.notice(f"{image} is already the stable of {self.name}; nothing to do")
            return self._done(report, PROMOTED, "already stable", record, record.stable)
        if not serving:
            # first deploy (or the stable is gone): nothing to compare with; start it as the stable
            if record.stable:
                gh.warning(f"the recorded stable {record.stable.image} is not serving; deploying {image} directly")
            with gh.group(f"first deploy of {self.name}: {image} as the stable (no analysis: nothing to compare)"):
                t.first_deploy(entry)
            report.previous = record.stable
            record.promote(entry)
            t.write_record(record)
            return self._done(report, PROMOTED, "first deploy: started as the stable without analysis", record, entry)
        assert record.stable is not None
        report.previous = record.stable
        gh.step(f"stable {record.stable.image} (model {record.stable.model_version or '-'}), canary model "
                f"{entry.model_version or '-'}")
        try:
            with gh.group(f"start the canary {image}"):
                why = t.start_canary(entry)
            if why:
                report.steps.append(step_row(Step(0, 0), -1, None, FAIL, why))
                return self._rollback(report, f"the canary did not become ready: {why}", record)
            baseline = t.scrape("stable")
            for i, step in enumerate(self.s.steps):
                outcome, reason = self._step(report, i, step, baseline)
                if outcome != PASS:
                    return self._rollback(report, f"step {i + 1} ({step.weight}%): {reason}", record)
            with gh.group(f"promote {image}"):
                t.promote()
                report.finished = time.monotonic()
        except BaseException:
            # cancelled, or the target failed halfway: the canary must not keep its traffic
            gh.step("interrupted: canary weight 0, canary stopped, stable untouched")
            try:
                t.abort()
            except Exception as exc:  # noqa: BLE001 - the first error is the one to report
                gh.warning(f"the canary could not be taken out of the traffic: {exc}")
            raise
        record.promote(entry)
        t.write_record(record)
        return self._done(report, PROMOTED, f"all {len(self.s.steps)} steps passed", record, entry)

    def _step(self, report: Report, i: int, step: Step, baseline: Snapshot | None) -> tuple[str, str]:
        t = self.target
        with gh.group(f"step {i + 1}/{len(self.s.steps)}: canary weight {step.weight}%, window {step.window:g}s"):
            t.set_weight(step.weight)
            if not report.canary_first_traffic:
                report.canary_first_traffic = time.monotonic()
            if t.dry_run:
                report.steps.append(step_row(step, i, None, "planned", "dry run: no analysis"))
                return PASS, ""
            tries = 1 + (self.s.extensions if self.s.on_inconclusive == "extend" else 0)
            v: Verdict | None = None
            for attempt in range(tries):
                before, before_s = t.scrape("canary"), t.scrape("stable")
                crashed = self._wait(step.window)
                if crashed:
                    report.steps.append(step_row(step, i, None, FAIL, crashed))
                    gh.step(f"step {i + 1}: {crashed}")
                    return FAIL, crashed
                after_c, after_s = t.scrape("canary"), t.scrape("stable")
                if after_c is None or after_s is None:
                    why = t.canary_problem() if after_c is None else "the stable's /metrics did not answer"
                    why = why or "the canary's /metrics did not answer"
                    report.steps.append(step_row(step, i, None, FAIL if after_c is None else INCONCLUSIVE, why))
                    return (FAIL if after_c is None else INCONCLUSIVE), why
                canary = window(before, after_c)
                stable = self._baseline(baseline, before_s, after_s)
                v = judge(canary, stable, self.s.thresholds)
                if v.outcome != INCONCLUSIVE or attempt == tries - 1:
                    break
                gh.step(f"step {i + 1}: inconclusive ({v.reason}); extending the window")
            assert v is not None
            report.steps.append(step_row(step, i, v, v.outcome, v.reason))
            gh.step(f"step {i + 1}: {step.weight}% -> {v.outcome}: canary {v.canary.requests:.0f} req, "
                    f"errors {_fmt_rate(v.canary.error_rate)} (stable {_fmt_rate(v.stable.error_rate)}), "
                    f"p95 {_fmt_ms(v.canary.p95)} (stable {_fmt_ms(v.stable.p95)}), "
                    f"{self.s.thresholds.distance} {_fmt_num(v.distance)}; {v.reason}")
            return v.outcome, v.reason

    def _baseline(self, start: Snapshot | None, before: Snapshot | None, after: Snapshot) -> Stats:
        """The stable in the same window (same time, same host load) when it served enough requests there;
        else over this deployment's windows (a 100% step); else over its whole life."""
        for since in (before, start):
            stats = window(since, after)
            if since is not None and stats.requests >= self.s.thresholds.min_requests:
                return stats
        return window(None, after)

    def _wait(self, seconds: float) -> str:
        """Sleep through the window, checking the canary's container; the reason if it stops serving."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return ""
            time.sleep(min(self.s.poll, left))
            why = self.target.canary_problem()
            if why:
                return why

    def _rollback(self, report: Report, reason: str, record: Record) -> Report:
        with gh.group("roll back: canary weight 0, canary stopped, stable untouched"):
            self.target.abort()
            report.finished = time.monotonic()
        gh.step(f"rolled back: {reason}")
        return self._done(report, ROLLED_BACK, reason, record, record.stable)

    @staticmethod
    def _done(report: Report, verdict: str, reason: str, record: Record, stable: Entry | None) -> Report:
        report.verdict, report.reason, report.stable = verdict, reason, stable
        if not report.finished:
            report.finished = time.monotonic()
        from dataclasses import asdict

        report.record = asdict(record)
        return report

    # ------------------------------------------------------------------ rollback

    def rollback(self) -> Report:
        t = self.target
        record = t.read_record()
        if record is None or record.stable is None:
            from ..errors import BadInput

            raise BadInput(f"rollback: {self.name} has no deployment record on {t.describe()}; nothing to roll "
                           "back to")
        if not record.previous:
            from ..errors import BadInput

            raise BadInput(f"rollback: {self.name} has no previous stable (only {record.stable.image})")
        report = Report(name=self.name, target=t.kind, image=record.previous[0].image, previous=record.stable)
        t.prepare(record)
        with gh.group(f"rollback of {self.name}: {record.stable.image} -> {record.previous[0].image}"):
            t.switch_to(record.previous[0])
        back = record.roll_back()
        t.write_record(record)
        return self._done(report, ROLLED_BACK, f"rolled back to model {back.model_version or back.digest[:19]}",
                          record, back)


def _fmt_rate(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1%}"


def _fmt_ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:.1f} ms"


def _fmt_num(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


# ---------------------------------------------------------------------------- summary


def _cell(v: Any, fmt: str = "{}") -> str:
    return "-" if v is None else fmt.format(v)


def summary(report: Report, distance: str) -> str:
    head = f"### canary-deploy {report.name}: {report.verdict}\n\n{report.reason}\n\n"
    stable = report.stable.image if report.stable else "-"
    changed = report.previous is not None and report.stable is not None and report.previous.image != stable
    head += f"stable: `{stable}`" + (f" (before: `{report.previous.image}`)" if changed and report.previous else "")
    head += f"; canary: `{report.image}`\n\n" if report.verdict == ROLLED_BACK and report.image != stable else "\n\n"
    if not report.steps:
        return head
    rows = [[r["step"] if r["step"] > 0 else "start", f"{r['weight']}%",
             f"{_cell(r.get('canary_requests'))} / {_cell(r.get('stable_requests'))}",
             f"{_cell(r.get('canary_error_rate'), '{:.2%}')} / {_cell(r.get('stable_error_rate'), '{:.2%}')}",
             f"{_cell(r.get('canary_p95_ms'), '{:.1f}')} / {_cell(r.get('stable_p95_ms'), '{:.1f}')}",
             _cell(r.get("distance"), "{:.3f}"), f"{r['verdict']}: {r['reason']}"] for r in report.steps]
    table = gh.md_table(["step", "weight", "requests canary / stable", "error rate canary / stable",
                         "p95 ms canary / stable", distance, "verdict"], rows)
    return head + table + "\n" + mermaid(report)


def mermaid(report: Report) -> str:
    rows = [r for r in report.steps if r["step"] > 0 and r.get("canary_p95_ms") is not None]
    if not rows:
        return ""
    labels = ", ".join(f'"{r["step"]}: {r["weight"]}%"' for r in rows)
    c = ", ".join(f"{r['canary_p95_ms']:.1f}" for r in rows)
    s = ", ".join(f"{(r.get('stable_p95_ms') or 0):.1f}" for r in rows)
    top = max([r["canary_p95_ms"] for r in rows] + [r.get("stable_p95_ms") or 0 for r in rows]) * 1.2 + 1
    return ("```mermaid\nxychart-beta\n    title \"p95 latency (ms) per step: canary bars, stable line\"\n"
            f"    x-axis [{labels}]\n    y-axis \"ms\" 0 --> {top:.0f}\n    bar [{c}]\n    line [{s}]\n```\n")
