"""The controller, the same for every target: start and warm the canary, walk the steps, judge each window,
let the evidence accumulate, then promote or roll back.

Per step the canary gets its weight and windows are judged (``judge.py``) until one decides:

- a **gross failure** (the canary crashed or stopped answering, or its error rate is significantly above the
  stable's plus the allowed increase) rolls back at once;
- a **failed** window is a failed check: ``failure-threshold`` (2) consecutive failed checks roll back; below
  it the step's window runs again (confirmation, fresh evidence);
- a **marginal** or **inconclusive** window (a difference beyond a limit but not significant yet; too few
  samples) is *extended*: the next window's requests are added to it, up to ``max-extensions`` (2) times,
  after which the step has not shown the canary healthy and it is rolled back (inconclusive never promotes;
  ``on-inconclusive: rollback`` rolls back at the first inconclusive window instead);
- a **pass** moves to the next step (and resets the failed checks).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import gh
from .analysis import Snapshot, Stats, window
from .judge import FAIL, INCONCLUSIVE, PASS, Thresholds, Verdict, judge
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
    on_inconclusive: str = "extend"  # or "rollback": at the first inconclusive window
    max_extensions: int = 2  # extra windows a marginal or inconclusive step may add up
    failure_threshold: int = 2  # consecutive failed windows that roll back
    warm_up_requests: int = 10  # the model's example, before the canary takes traffic
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
    # optional: warm_up(requests) -> int (requests answered 200)
    # optional: turns_full = True (at 100% the canary and the baseline, else the stable, take the load by turns)


@dataclass
class Report:
    name: str
    target: str
    image: str
    verdict: str = ""
    reason: str = ""
    stable: Entry | None = None
    previous: Entry | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)  # one row per analysis window
    settings: dict[str, Any] = field(default_factory=dict)
    warm_up: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)  # 100%: the baseline by turns, else the stable alone
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
        out["windows"] = sum(1 for r in self.steps if r.get("window", 0) > 0)
        return out


def _num(x: float, digits: int = 4) -> float | None:
    return None if math.isnan(x) else round(x, digits)


def step_row(step: Step, index: int, v: Verdict | None, outcome: str, reason: str, *, window_no: int = 0,
             seconds: float = 0.0, gross: bool = False) -> dict[str, Any]:
    """One analysis window of the report (``window`` 0: no window ran, e.g. the canary did not start)."""
    row: dict[str, Any] = {"step": index + 1, "weight": step.weight, "window": window_no, "window_s": step.window,
                           "seconds": round(seconds, 1), "verdict": outcome, "reason": reason, "gross": gross}
    if v is not None:
        row.update({
            "score": _num(v.score, 1), "gross": v.gross,
            "canary_requests": int(v.canary.requests), "stable_requests": int(v.stable.requests),
            "canary_error_rate": _num(v.canary.error_rate), "stable_error_rate": _num(v.stable.error_rate),
            "canary_median_ms": _num(v.canary.median * 1000, 2), "stable_median_ms": _num(v.stable.median * 1000, 2),
            "canary_p95_ms": _num(v.canary.p95 * 1000, 2), "stable_p95_ms": _num(v.stable.p95 * 1000, 2),
            "latency_source": v.canary.latency_source, "against": v.against,
            "metrics": [m.to_dict() for m in v.metrics],
        })
    return row


class Controller:
    def __init__(self, target: Target, settings: Settings, name: str) -> None:
        self.target = target
        self.s = settings
        self.name = name
        self.failed_checks = 0

    # ------------------------------------------------------------------ deploy

    def deploy(self, image: str, commit: str) -> Report:
        t = self.target
        from dataclasses import asdict

        report = Report(name=self.name, target=t.kind, image=image, settings=asdict(self.s))
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
                report.steps.append(step_row(Step(0, 0), -1, None, FAIL, why, gross=True))
                return self._rollback(report, f"the canary did not become ready: {why}", record)
            self._warm_up(report)
            full, why = self._alone(report)
            if why:
                report.steps.append(step_row(Step(0, 0), -1, None, FAIL, why, gross=True))
                return self._rollback(report, f"the canary stopped before it took traffic: {why}", record)
            starts = (t.scrape("stable"), t.scrape("baseline") if self._has_baseline() else None)
            for i, step in enumerate(self.s.steps):
                outcome, reason = self._step(report, i, step, starts, full)
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

    def _warm_up(self, report: Report) -> None:
        """A few predictions of the model's example to the new container before it takes traffic; they happen
        before the first window's scrape, so they are never part of a comparison."""
        warm = getattr(self.target, "warm_up", None)
        n = self.s.warm_up_requests
        if warm is None or n <= 0 or self.target.dry_run:
            return
        t0 = time.monotonic()
        ok = warm(n)
        report.warm_up = {"requests": n, "ok": ok, "seconds": round(time.monotonic() - t0, 2)}
        gh.step(f"warm-up: {ok} of {n} requests of the model's example answered in {time.monotonic() - t0:.1f}s "
                "(not part of any window)")

    def _alone(self, report: Report) -> tuple[Stats | None, str]:
        """What a 100% step compares with on a target that cannot give it by turns (Kubernetes): the stable
        alone at the whole load for one window of that step, once the canary has started and warmed up and sits
        idle. Measured while the canary's container starts instead, the reference is slow (the stable's median
        188 ms, up to 3.9 s: a canary twice as slow passed); measured at another time than the canary, it sees
        another host (x2.01 and x1.65 for a healthy canary against a reference 45 s older, while other work
        shared the cores). The Docker target's router gives the whole load to the canary and to the baseline by
        turns of a second at 100% instead (``turns_full``): both over the same time. None (and no wait) then, or
        without a 100% step; the reason when the canary stops meanwhile."""
        t = self.target
        full_steps = [st for st in self.s.steps if st.weight >= 100]
        if not full_steps or t.dry_run or self._by_turns():
            return None, ""
        seconds = full_steps[0].window
        t0 = time.monotonic()
        before = t.scrape("stable")
        why = self._wait(seconds)
        after = t.scrape("stable")
        if why or before is None or after is None:
            return None, why
        full = window(before, after)
        report.reference = {"role": "stable", "turns": False, "requests": full.requests,
                            "median_ms": _num(full.median * 1000, 2), "seconds": round(time.monotonic() - t0, 2)}
        gh.step(f"the stable alone at the whole load for {seconds:g}s, the canary idle (the 100% step's reference): "
                f"{full.requests:.0f} requests, median {full.median * 1000:.1f} ms")
        return full, ""

    def _by_turns(self) -> bool:
        """At 100% the target gives the whole load to the canary and the baseline (else the stable) by turns."""
        return bool(getattr(self.target, "turns_full", False))

    def _has_baseline(self) -> bool:
        return bool(getattr(self.target, "has_baseline", False)) and not self.target.dry_run

    def _step(self, report: Report, i: int, step: Step, starts: tuple[Snapshot | None, Snapshot | None],
              full: Stats | None = None) -> tuple[str, str]:
        t = self.target
        s = self.s
        with gh.group(f"step {i + 1}/{len(s.steps)}: canary weight {step.weight}%, window {step.window:g}s"):
            t.set_weight(step.weight)
            if not report.canary_first_traffic:
                report.canary_first_traffic = time.monotonic()
            if t.dry_run:
                report.steps.append(step_row(step, i, None, "planned", "dry run: no analysis"))
                return PASS, ""
            carried: tuple[Stats, Stats | None, str] | None = None  # a marginal/inconclusive window, extended
            extensions = 0
            window_no = 0
            while True:
                window_no += 1
                t0 = time.monotonic()
                base = self._has_baseline()
                before, before_s = t.scrape("canary"), t.scrape("stable")
                before_b = t.scrape("baseline") if base else None
                crashed = self._wait(step.window)
                if crashed:
                    report.steps.append(step_row(step, i, None, FAIL, crashed, window_no=window_no,
                                                 seconds=time.monotonic() - t0, gross=True))
                    gh.step(f"step {i + 1}: {crashed}")
                    return FAIL, crashed
                after_c, after_s = t.scrape("canary"), t.scrape("stable")
                after_b = t.scrape("baseline") if base else None
                if after_c is None:
                    why = t.canary_problem() or "the canary's /metrics did not answer"
                    report.steps.append(step_row(step, i, None, FAIL, why, window_no=window_no,
                                                 seconds=time.monotonic() - t0, gross=True))
                    return FAIL, why
                if after_s is None:
                    v = None
                    outcome, reason = INCONCLUSIVE, "the stable's /metrics did not answer"
                else:
                    canary = window(before, after_c)
                    stable, same_window, against = self._reference(starts, (before_s, after_s), (before_b, after_b),
                                                                   full if step.weight >= 100 else None,
                                                                   turns=step.weight >= 100 and self._by_turns())
                    if step.weight >= 100 and same_window and self._by_turns():  # the whole load, every other second
                        against = f"{against} (by turns)"
                        report.reference = {"role": against.split()[0], "turns": True, "requests": stable.requests,
                                            "median_ms": _num(stable.median * 1000, 2)}
                    if carried is not None:
                        canary = carried[0] + canary
                        if same_window and carried[1] is not None and carried[2] == against:
                            stable = carried[1] + stable
                    v = judge(canary, stable, s.thresholds, against)
                    outcome, reason = v.outcome, v.reason
                    carried = (canary, stable if same_window else None, against)
                seconds = time.monotonic() - t0
                report.steps.append(step_row(step, i, v, outcome, reason, window_no=window_no, seconds=seconds))
                self._log(i, step, window_no, v, outcome, reason)
                if outcome == PASS:
                    self.failed_checks = 0
                    return PASS, reason
                if v is not None and v.gross:
                    return FAIL, reason
                if outcome == FAIL:
                    self.failed_checks += 1
                    if self.failed_checks >= s.failure_threshold:
                        return FAIL, f"{reason} ({self.failed_checks} failed windows in a row, failure-threshold " \
                                     f"{s.failure_threshold})"
                    gh.step(f"step {i + 1}: failed check {self.failed_checks} of {s.failure_threshold}; the "
                            "window runs again for confirmation")
                    carried, extensions = None, 0
                    continue
                if outcome == INCONCLUSIVE and s.on_inconclusive == "rollback":
                    return INCONCLUSIVE, reason
                extensions += 1
                if extensions > s.max_extensions:
                    return outcome, f"{reason} (still {outcome} after {window_no} windows; max-extensions " \
                                    f"{s.max_extensions})"
                gh.step(f"step {i + 1}: {outcome}; the window is extended ({extensions} of {s.max_extensions})")

    def _log(self, i: int, step: Step, window_no: int, v: Verdict | None, outcome: str, reason: str) -> None:
        if v is None:
            gh.step(f"step {i + 1} window {window_no}: {step.weight}% -> {outcome}: {reason}")
            return
        parts = [f"{m.name} {m.verdict} ({m.effect_text}, p={'-' if math.isnan(m.p) else f'{m.p:.2g}'})"
                 for m in v.metrics]
        gh.step(f"step {i + 1} window {window_no}: {step.weight}% -> {outcome}: canary {v.canary.requests:.0f} req, "
                f"{v.against} {v.stable.requests:.0f}; " + "; ".join(parts)
                + (f"; {reason}" if outcome != PASS else ""))

    def _reference(self, starts: tuple[Snapshot | None, Snapshot | None],
                   stable: tuple[Snapshot | None, Snapshot], baseline: tuple[Snapshot | None, Snapshot | None],
                   full: Stats | None = None, *, turns: bool = False) -> tuple[Stats, bool, str]:
        """What the canary is compared with in this window, whether it is the same window, and its name.

        The baseline first: a fresh container of the stable's image, warmed like the canary, taking the same
        share of the traffic (Kayenta's baseline). Its latencies see the same request rate and the same host load
        as the canary's, where the stable's are those of the rest of the traffic: on a busy host the stable queues
        at 90% of the load while the canary idles at 10%, and a slow canary hides behind it. At a step where the
        baseline takes no traffic (100%), its earlier windows; without a baseline, the stable's (same window, else
        this deployment's windows, else its life).

        A 100% step: on a target that gives the load by turns (``turns_full``) the baseline (else the stable) took
        the whole load every other second of the same window: the usual same-window comparison. Else (``full``)
        the stable alone at the whole load before the canary took traffic (``_alone``). Never the baseline's
        windows at half the load or less: a healthy canary on a busy host queues at twice their rate and looks
        slow (measured: 300 ms against 87 ms, rolled back). By turns, the same window even when its turns served
        fewer than min-requests: the judge says inconclusive and the next window adds to it."""
        if turns:
            b_before, b_after = baseline
            if b_before is not None and b_after is not None:
                return window(b_before, b_after), True, "baseline"
            if stable[0] is not None:
                return window(*stable), True, "stable"
        if full is not None and full.requests >= self.s.thresholds.min_requests:
            return full, False, "the stable alone before the canary"
        b_before, b_after = baseline
        if b_after is not None:
            stats = window(b_before, b_after)
            if b_before is not None and stats.requests >= self.s.thresholds.min_requests:
                return stats, True, "baseline"
            since = window(starts[1], b_after)
            if starts[1] is not None and since.requests >= self.s.thresholds.min_requests:
                return since, False, "baseline"
        stats, same = self._baseline(starts[0], *stable)
        return stats, same, "stable"

    def _baseline(self, start: Snapshot | None, before: Snapshot | None, after: Snapshot) -> tuple[Stats, bool]:
        """The stable in the same window (same time, same host load) when it served enough requests there (True);
        else over this deployment's windows (a 100% step); else over its whole life."""
        stats = window(before, after)
        if before is not None and stats.requests >= self.s.thresholds.min_requests:
            return stats, True
        since = window(start, after)
        if start is not None and since.requests >= self.s.thresholds.min_requests:
            return since, False
        return window(None, after), False

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


