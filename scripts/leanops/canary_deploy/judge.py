"""The judge of one analysis window, in the spirit of Kayenta's: each metric of the canary is compared with the
stable's by a test *and* an effect size, and classified; the window is scored.

A difference counts only when it is both **significant** (the test's p-value below ``significance``) and
**larger than the limit** the user set (the effect size). Per metric:

- ``pass``: no significant difference beyond the limit;
- ``marginal``: beyond the limit on the point estimate, but not significant at this sample size (a signal
  too weak to decide: the window is repeated, it never promotes);
- ``fail``: significant and beyond the limit (a failed check; rolled back once confirmed, see the controller);
  ``gross`` for the error rate (rolled back at once: errors reach users, and a healthy canary's error rate is
  the stable's, which the test against the stable's rate *plus* the allowance almost never calls significant);
- ``inconclusive``: too few samples, or nothing to compare.

The metrics:

- **errors**: the canary's 5xx count against an exact binomial test of ``H0: rate <= stable's rate +
  max-error-rate-increase``; at least ``min-errors`` errors before it can fail (one 500 is never a verdict);
- **latency**: per-request latencies (answered requests), Mann-Whitney U (one-sided: the canary slower) with
  the tie and continuity corrections; effect = the ratio of the medians, beyond ``max-latency-ratio`` and by
  more than ``latency-slack-ms``;
- **predictions**: the classes (or numeric prediction buckets), chi-square test of homogeneity; effect = PSI or
  the Jensen-Shannon distance, beyond ``max-prediction-distance``; the report gives the distance two samples
  of one distribution reach by chance at these sizes (``noise``): a distance below it is not evidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from . import statistics as st
from .analysis import Stats

PASS, MARGINAL, FAIL, INCONCLUSIVE = "pass", "marginal", "fail", "inconclusive"
ORDER = {PASS: 0, INCONCLUSIVE: 1, MARGINAL: 2, FAIL: 3}
DEFAULT_MAX_DISTANCE = {"psi": 0.2, "jensen-shannon": 0.1}


@dataclass
class Thresholds:
    min_requests: int = 50
    significance: float = 0.01
    max_error_rate_increase: float = 0.01
    min_errors: int = 3
    max_latency_ratio: float = 1.5
    latency_slack_ms: float = 1.0
    distance: str = "psi"
    max_prediction_distance: float = 0.2


@dataclass
class Metric:
    """One metric's comparison in one window (the report's row)."""

    name: str  # errors, latency, predictions
    verdict: str
    canary_n: int
    stable_n: int
    canary: str  # what the canary showed, for people
    stable: str
    effect: float  # error-rate difference, median ratio, distance (NaN: unknown)
    effect_text: str
    limit: str
    p: float  # NaN when no test ran
    interval: str  # a bound or the noise floor
    reason: str
    gross: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("effect", "p"):
            d[k] = None if math.isnan(d[k]) else float(f"{d[k]:.6g}")
        return d


@dataclass
class Verdict:
    outcome: str  # pass, marginal, fail, inconclusive
    metrics: list[Metric]
    canary: Stats
    stable: Stats
    score: float = math.nan  # percent of the conclusive metrics that pass
    reasons: list[str] = field(default_factory=list)
    against: str = "stable"  # what ``stable`` is: the baseline container or the stable itself

    @property
    def gross(self) -> bool:
        return any(m.gross for m in self.metrics)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or "no significant difference beyond the limits"

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2%}"


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:.1f} ms"


def _p(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2g}"


def errors(c: Stats, s: Stats, t: Thresholds, against: str = "stable") -> Metric:
    nc, ns, ec = int(c.requests), int(s.requests), int(c.errors)
    rc, rs = c.error_rate, s.error_rate
    base: dict[str, Any] = dict(name="errors", canary_n=nc, stable_n=ns, canary=f"{ec} of {nc} ({_pct(rc)})",
                stable=f"{int(s.errors)} of {ns} ({_pct(rs)})", limit=f"+{t.max_error_rate_increase:.2%}")
    if not nc or not ns:
        return Metric(verdict=INCONCLUSIVE, effect=math.nan, effect_text="-", p=math.nan, interval="-",
                      reason=f"error rate unknown ({'canary' if not nc else against} served no request)", **base)
    diff = rc - rs
    p = st.binomial_sf(ec, nc, min(1.0, rs + t.max_error_rate_increase))
    lower = st.binomial_lower_bound(ec, nc, t.significance)
    enough = ec >= t.min_errors
    beyond = diff > t.max_error_rate_increase and enough
    what = f"error rate {_pct(rc)} vs {against} {_pct(rs)}"
    kw: dict[str, Any] = dict(effect=diff, effect_text=f"{diff * 100:+.2f} pp", p=p,
                              interval=f"canary >= {_pct(lower)} ({1 - t.significance:.0%} bound)", **base)
    if beyond and p < t.significance:
        return Metric(verdict=FAIL, gross=True, reason=f"{what} (allowed +{t.max_error_rate_increase:.1%}, "
                      f"p={_p(p)})", **kw)
    if nc < t.min_requests:
        return Metric(verdict=INCONCLUSIVE, reason=f"canary served {nc} requests, fewer than min-requests "
                      f"{t.min_requests}", **kw)
    if beyond:
        return Metric(verdict=MARGINAL, reason=f"{what}: beyond +{t.max_error_rate_increase:.1%} but not "
                      f"significant (p={_p(p)})", **kw)
    why = f"{ec} errors, fewer than min-errors {t.min_errors}" if diff > t.max_error_rate_increase else what
    return Metric(verdict=PASS, reason=why, **kw)


def latency(c: Stats, s: Stats, t: Thresholds, against: str = "stable") -> Metric:
    nc, ns = len(c.latencies), len(s.latencies)
    mc, ms = c.median, s.median
    base: dict[str, Any] = dict(name="latency", canary_n=nc, stable_n=ns, canary=f"median {_ms(mc)}, p95 {_ms(c.p95)}",
                stable=f"median {_ms(ms)}, p95 {_ms(s.p95)}",
                limit=f"x{t.max_latency_ratio:g} and +{t.latency_slack_ms:g} ms")
    if nc < t.min_requests or ns < t.min_requests:
        who, n = ("canary", nc) if nc < t.min_requests else (against, ns)
        return Metric(verdict=INCONCLUSIVE, effect=mc / ms if nc and ns and ms > 0 else math.nan, effect_text="-",
                      p=math.nan, interval="-", reason=f"{who}: {n} latency samples, fewer than min-requests "
                      f"{t.min_requests}", **base)
    test = st.mann_whitney_u(c.latencies, s.latencies, "greater")
    ratio = mc / ms if ms > 0 else math.inf
    diff_ms = (mc - ms) * 1000
    beyond = ratio > t.max_latency_ratio and diff_ms > t.latency_slack_ms
    source = "" if c.latency_source == "samples" else f" ({c.latency_source or 'no'} latencies)"
    kw: dict[str, Any] = dict(effect=ratio, effect_text=f"x{ratio:.2f} median ({diff_ms:+.1f} ms)", p=test.p,
                              interval=f"U={test.u:.0f}{source}", **base)
    what = f"latency median {_ms(mc)} vs {against} {_ms(ms)} (x{ratio:.2f}, allowed x{t.max_latency_ratio:g})"
    if math.isnan(test.p):
        return Metric(verdict=INCONCLUSIVE, reason="latency: every sample the same value", **kw)
    if beyond and test.p < t.significance:
        return Metric(verdict=FAIL, reason=f"{what}, p={_p(test.p)}", **kw)
    if beyond:
        return Metric(verdict=MARGINAL, reason=f"{what} but not significant (p={_p(test.p)})", **kw)
    return Metric(verdict=PASS, reason=what, **kw)


def predictions(c: Stats, s: Stats, t: Thresholds, against: str = "stable") -> Metric:
    nc, ns = int(sum(c.distribution.values())), int(sum(s.distribution.values()))
    base: dict[str, Any] = dict(name="predictions", canary_n=nc, stable_n=ns, canary=_mix(c.distribution),
                stable=_mix(s.distribution), limit=f"{t.distance} {t.max_prediction_distance:g}")
    if nc < t.min_requests or ns < t.min_requests:
        who, n = ("canary", nc) if nc < t.min_requests else (against, ns)
        return Metric(verdict=INCONCLUSIVE, effect=math.nan, effect_text="-", p=math.nan, interval="-",
                      reason=f"{who}: {n} predictions, fewer than min-requests {t.min_requests}", **base)
    d = st.DISTANCES[t.distance](s.distribution, c.distribution)
    test = st.homogeneity(c.distribution, s.distribution)
    bins = len({k for k in (*c.distribution, *s.distribution)})
    noise = st.distance_noise(t.distance, nc, ns, bins, t.significance)
    beyond = d > t.max_prediction_distance
    kw: dict[str, Any] = dict(effect=d, effect_text=f"{t.distance} {d:.3f}", p=test.p,
                              interval=f"noise {noise:.3f}", **base)
    what = f"prediction {t.distance} {d:.3f} > {t.max_prediction_distance:g}"
    if beyond and test.p < t.significance:
        return Metric(verdict=FAIL, reason=f"{what}, p={_p(test.p)}", **kw)
    if beyond:
        return Metric(verdict=MARGINAL, reason=f"{what} but not significant (p={_p(test.p)}; chance alone reaches "
                      f"{noise:.3f} at these sizes)", **kw)
    return Metric(verdict=PASS, reason=f"prediction {t.distance} {d:.3f}", **kw)


def _mix(dist: dict[str, float]) -> str:
    total = sum(dist.values())
    if not total:
        return "-"
    top = sorted(dist.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k.split('=', 1)[-1] if k.startswith('class=') else k} {v / total:.0%}" for k, v in top)


def judge(canary: Stats, stable: Stats, t: Thresholds, against: str = "stable") -> Verdict:
    """Every metric, the window's outcome (the worst: fail > marginal > inconclusive > pass) and its score.
    ``stable`` is what the canary is compared with; ``against`` names it in the reasons: ``baseline`` (a fresh
    container of the stable's image taking the canary's share of the traffic) or ``stable``."""
    metrics = [errors(canary, stable, t, against), latency(canary, stable, t, against),
               predictions(canary, stable, t, against)]
    outcome = max((m.verdict for m in metrics), key=ORDER.__getitem__)
    conclusive = [m for m in metrics if m.verdict != INCONCLUSIVE]
    score = 100 * sum(m.verdict == PASS for m in conclusive) / len(conclusive) if conclusive else math.nan
    reasons = [m.reason for m in metrics if m.verdict == outcome] if outcome != PASS else []
    return Verdict(outcome=outcome, metrics=metrics, canary=canary, stable=stable, score=score, reasons=reasons,
                   against=against)
