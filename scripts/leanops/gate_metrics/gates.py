"""Gates from ``leanops.yml`` and their verdicts: pure Python, no heavy imports.

A gate names a metric and says which way is better, absolute bounds (``min``/``max``), how much regression
against the champion is allowed (absolute units or a fraction of the champion's value) and whether the
metric is ``required``. A missing or NaN required metric fails; nothing passes silently.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import config as cfgmod
from ..errors import BadInput

HIGHER, LOWER = "higher", "lower"
DP_RATIO = "demographic_parity_ratio"
EO_DIFF = "equalized_odds_difference"
LATENCY_SINGLE = "latency_p95_single_ms"
LATENCY_BATCH = "latency_p95_batch_ms"
# Names whose smaller values are better when a gate does not say (shown in the report either way).
LOWER_IS_BETTER = re.compile(r"(loss|error|rmse|mse|mae|mape|latency|brier|perplexity|_ms$|_seconds$|difference$)",
                             re.IGNORECASE)
EPS = 1e-9  # float noise: 0.80 - 0.78 is 0.020000000000000018
GROUP_MAE_DIFF = "group_mae_difference"

# The metrics leanops knows (computes from the predictions, or judges by name) and the tasks they fit. A gate
# on a metric of another task is a configuration mistake (BadInput); metrics leanops does not know (an
# adopter's own) fit every task. Latency fits every task.
BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
TASK_METRICS: dict[str, tuple[str, ...]] = {
    BINARY: ("roc_auc", "f1", "accuracy", "precision", "recall", "log_loss", "f1_macro", "precision_macro",
             "recall_macro", DP_RATIO, EO_DIFF),
    MULTICLASS: ("f1_macro", "log_loss", "accuracy", "precision_macro", "recall_macro"),
    REGRESSION: ("rmse", "mae", "mse", "r2", GROUP_MAE_DIFF),
}
# The direction of the known metrics: a gate saying otherwise is a mistake (a lower-is-better rmse gated
# "higher" would pass every regression).
KNOWN_DIRECTION = {m: (LOWER if m in ("log_loss", "rmse", "mae", "mse", EO_DIFF, GROUP_MAE_DIFF) else HIGHER)
                   for task in TASK_METRICS.values() for m in task}


def default_direction(metric: str) -> str:
    return LOWER if LOWER_IS_BETTER.search(metric) else HIGHER


@dataclass(frozen=True)
class Gate:
    metric: str
    direction: str = HIGHER
    min: float | None = None
    max: float | None = None
    max_regression: float | None = None
    regression_mode: str = "absolute"
    required: bool = True
    keys: tuple[str | int, ...] = ()  # where it is in leanops.yml (for Config.where / line_of)

    @property
    def arrow(self) -> str:
        return "↑" if self.direction == HIGHER else "↓"

    def threshold_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"≥ {self.min:g}")
        if self.max is not None:
            parts.append(f"≤ {self.max:g}")
        if self.max_regression is not None:
            unit = f"{self.max_regression:.4g}" if self.regression_mode == "absolute" else f"{self.max_regression:.2%}"
            parts.append(f"regression ≤ {unit}")
        if not self.required:
            parts.append("optional")
        return ", ".join(parts) or "reported only"


@dataclass(frozen=True)
class Interval:
    """The paired bootstrap's interval for ``candidate - champion`` of one metric (on the predictions)."""

    diff: float
    low: float
    high: float
    level: float
    n: int


@dataclass
class Verdict:
    gate: Gate
    candidate: float | None
    champion: float | None
    status: str  # pass | fail | skip
    reasons: list[str] = field(default_factory=list)  # why it failed
    notes: list[str] = field(default_factory=list)  # what a reader should know even when it passed
    interval: Interval | None = None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @property
    def delta(self) -> float | None:
        if self.candidate is None or self.champion is None:
            return None
        if not (math.isfinite(self.candidate) and math.isfinite(self.champion)):
            return None
        return self.candidate - self.champion


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_gates(section: Mapping[str, Any], cfg: cfgmod.Config | None = None) -> list[Gate]:
    """The gates of the ``gate-metrics`` section, fairness and latency thresholds included.

    Contradictory thresholds (``min`` above ``max``) are BadInput naming the file and line.
    """
    cfg = cfg or cfgmod.Config(data={})
    name = str(cfg.path or cfgmod.DEFAULT_FILE)
    raw: dict[str, dict[str, Any]] = {str(k): dict(v or {}) for k, v in (section.get("gates") or {}).items()}
    keys: dict[str, tuple[str | int, ...]] = {m: ("gate-metrics", "gates", m) for m in raw}

    def derived(metric: str, bound: str, value: Any, origin: tuple[str | int, ...], required: bool) -> None:
        if value is None:
            return
        entry = raw.setdefault(metric, {"required": required})
        keys.setdefault(metric, origin)
        entry.setdefault(bound, value)

    fair = section.get("fairness") or {}
    derived(DP_RATIO, "min", fair.get("min-demographic-parity-ratio"),
            ("gate-metrics", "fairness", "min-demographic-parity-ratio"), False)
    derived(EO_DIFF, "max", fair.get("max-equalized-odds-difference"),
            ("gate-metrics", "fairness", "max-equalized-odds-difference"), False)
    derived(GROUP_MAE_DIFF, "max", fair.get("max-group-mae-difference"),
            ("gate-metrics", "fairness", "max-group-mae-difference"), False)
    lat = section.get("latency") or {}
    measured = bool(lat.get("data"))  # explicit evaluation rows: a latency that cannot be measured fails
    derived(LATENCY_SINGLE, "max", lat.get("max-p95-single-ms"), ("gate-metrics", "latency", "max-p95-single-ms"),
            measured)
    derived(LATENCY_BATCH, "max", lat.get("max-p95-batch-ms"), ("gate-metrics", "latency", "max-p95-batch-ms"),
            measured)

    gates = []
    for metric, entry in raw.items():
        gate = Gate(
            metric=metric, direction=str(entry.get("direction") or default_direction(metric)),
            min=_number(entry.get("min")), max=_number(entry.get("max")),
            max_regression=_number(entry.get("max-regression")),
            regression_mode=str(entry.get("regression-mode") or "absolute"),
            required=bool(entry.get("required", True)), keys=keys[metric],
        )
        if gate.min is not None and gate.max is not None and gate.min > gate.max:
            raise BadInput(f"gates.{metric}: min {gate.min:g} is above max {gate.max:g}; expected min <= max",
                           file=name, line=cfg.line_of(*gate.keys))
        if gate.direction not in (HIGHER, LOWER):
            raise BadInput(f"gates.{metric}.direction: expected higher or lower, got {gate.direction!r}",
                           file=name, line=cfg.line_of(*gate.keys))
        known = KNOWN_DIRECTION.get(metric)
        if known and gate.direction != known:
            raise BadInput(f"gates.{metric}.direction: {metric} is better {known}, got {gate.direction!r}; expected "
                           f"direction: {known} (or no direction line)", file=name,
                           line=cfg.line_of(*gate.keys, "direction"))
        gates.append(gate)
    return gates


def task_of(metric: str) -> list[str]:
    """The tasks a known metric fits; [] for a metric leanops does not know (it fits any task)."""
    return [task for task, names in TASK_METRICS.items() if metric in names]


def infer_task(gates: Iterable[Gate], cfg: cfgmod.Config | None = None) -> set[str]:
    """The tasks every known gated metric fits (all three when no gate names a known metric).

    Used when neither ``model.task`` nor a predictions file says what the model predicts; gates that fit no
    common task (rmse beside roc_auc) are BadInput naming the line of the second.
    """
    cfg = cfg or cfgmod.Config(data={})
    fits, first = set(TASK_METRICS), None
    for gate in gates:
        tasks = set(task_of(gate.metric))
        if not tasks:
            continue
        if not fits & tasks:
            assert first is not None
            raise BadInput(f"gates.{gate.metric}: a {'/'.join(sorted(tasks))} metric beside gates.{first.metric}, a "
                           f"{'/'.join(task_of(first.metric))} metric; expected the metrics of one task (set "
                           "model.task)", file=str(cfg.path or cfgmod.DEFAULT_FILE), line=cfg.line_of(*gate.keys))
        fits &= tasks
        first = first or gate
    return fits


def check_task(gates: Iterable[Gate], task: str, cfg: cfgmod.Config | None = None, how: str = "") -> None:
    """A gate on a metric of another task (roc_auc on a regression) is BadInput naming its line and the metrics
    the task supports."""
    cfg = cfg or cfgmod.Config(data={})
    for gate in gates:
        tasks = task_of(gate.metric)
        if not tasks or task in tasks:
            continue
        where = ".".join(str(k) for k in gate.keys[1:]) or f"gates.{gate.metric}"
        supported = ", ".join(TASK_METRICS[task])
        decided = f" ({how})" if how else ""
        raise BadInput(f"{where}: {gate.metric} is a {'/'.join(tasks)} metric but the task is {task}{decided}; "
                       f"expected a metric of {task}: {supported}", file=str(cfg.path or cfgmod.DEFAULT_FILE),
                       line=cfg.line_of(*gate.keys))


def check_known(gates: Iterable[Gate], candidate: Mapping[str, float], known: Iterable[str],
                cfg: cfgmod.Config | None = None) -> None:
    """A required gate on a metric nobody reports (not the candidate, not the champion, not leanops) is a
    configuration mistake, most likely a typo: BadInput naming the line and the metrics that do exist."""
    cfg = cfg or cfgmod.Config(data={})
    seen = set(candidate) | set(known)
    for gate in gates:
        if gate.metric in seen or not gate.required:
            continue
        close = difflib.get_close_matches(gate.metric, sorted(candidate), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        reported = ", ".join(sorted(candidate)) or "nothing"
        raise BadInput(f"gates.{gate.metric}: unknown metric {gate.metric!r}{hint} (the candidate reports {reported})",
                       file=str(cfg.path or cfgmod.DEFAULT_FILE), line=cfg.line_of(*gate.keys))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def evaluate(gates: Iterable[Gate], candidate: Mapping[str, float], champion: Mapping[str, float] | None,
             intervals: Mapping[str, Interval] | None = None) -> list[Verdict]:
    """One verdict per gate. ``champion`` None: no champion yet (absolute gates only)."""
    intervals = intervals or {}
    out = []
    for gate in gates:
        c = candidate.get(gate.metric)
        h = champion.get(gate.metric) if champion is not None else None
        v = Verdict(gate, c, h, "pass", interval=intervals.get(gate.metric))
        out.append(v)
        if not _finite(c):
            what = "missing" if c is None else f"not a number ({c})"
            if gate.required:
                v.status = "fail"
                v.reasons.append(f"{what}; required")
            else:
                v.status = "skip"
                v.notes.append(f"{what}; optional, not gated")
            continue
        assert c is not None
        if gate.min is not None and c < gate.min:
            v.reasons.append(f"below min {gate.min:g}")
        if gate.max is not None and c > gate.max:
            v.reasons.append(f"above max {gate.max:g}")
        if gate.max_regression is not None:
            if champion is None:
                v.notes.append("no champion: regression not checked")
            elif not _finite(h):
                v.notes.append("the champion has no value: regression not checked")
            else:
                assert h is not None
                _regression(gate, c, h, v)
        v.status = "fail" if v.reasons else "pass"
    return out


def _regression(gate: Gate, c: float, h: float, v: Verdict) -> None:
    worse = (h - c) if gate.direction == HIGHER else (c - h)
    allowed = gate.max_regression or 0.0
    if gate.regression_mode == "relative":
        allowed *= abs(h)
    if worse <= allowed + EPS * max(1.0, abs(h)):
        return
    ci = v.interval
    if ci is None:
        v.reasons.append(f"regressed by {worse:.4g} (allowed {allowed:.4g})")
        return
    # The interval is for candidate - champion; oriented so that positive is better.
    best_case = ci.high if gate.direction == HIGHER else -ci.low
    conf = f"{1 - ci.level:.0%}"
    if best_case < -allowed:
        v.reasons.append(f"regressed by {worse:.4g} (allowed {allowed:.4g}), significant: the {conf} interval "
                         f"of the difference is [{ci.low:+.4g}, {ci.high:+.4g}]")
    else:
        v.notes.append(f"regressed by {worse:.4g} (allowed {allowed:.4g}) but not significantly: the {conf} "
                       f"interval [{ci.low:+.4g}, {ci.high:+.4g}] reaches the allowed range")


def passed(verdicts: Iterable[Verdict]) -> bool:
    return not any(v.failed for v in verdicts)
