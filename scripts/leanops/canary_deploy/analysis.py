"""One analysis window: the stable's and the canary's ``/metrics`` (``leanops serve``) before and after it.

Counters are cumulative, so a window is the difference of two scrapes. From it: the request count and the
5xx error rate of ``/predict``, the p95 latency from the latency histogram (linear interpolation inside a
bucket, as Prometheus' ``histogram_quantile``), and the prediction distribution (classes from
``leanops_prediction_class``, numeric predictions by ``leanops_prediction_value`` bucket) compared with PSI
or the Jensen-Shannon distance. Anything missing, NaN or based on too few requests is *inconclusive*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PREDICT = "/predict"
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
EPSILON = 1e-4  # floor of a proportion in PSI/JS: an empty bin on one side stays finite


@dataclass
class Snapshot:
    """Cumulative counters of one server at one moment (only ``/predict``)."""

    requests: dict[str, float] = field(default_factory=dict)  # status -> count
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count (latency, seconds)
    outputs: dict[str, float] = field(default_factory=dict)  # "class=X" or "value<=le" (cumulative) -> count
    version: str = ""

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        from prometheus_client.parser import text_string_to_metric_families

        snap = cls()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = s.labels
                if s.name == "leanops_model_info":
                    snap.version = labels.get("model_version", "")
                elif s.name == "leanops_requests_total" and labels.get("path") == PREDICT:
                    status = labels.get("status", "")
                    snap.requests[status] = snap.requests.get(status, 0.0) + s.value
                elif s.name == "leanops_request_duration_seconds_bucket" and labels.get("path") == PREDICT:
                    le = float(labels["le"])
                    snap.buckets[le] = snap.buckets.get(le, 0.0) + s.value
                elif s.name == "leanops_prediction_class_total":
                    key = f"class={labels.get('class', '')}"
                    snap.outputs[key] = snap.outputs.get(key, 0.0) + s.value
                elif s.name == "leanops_prediction_value_bucket":
                    key = f"value<={labels['le']}"
                    snap.outputs[key] = snap.outputs.get(key, 0.0) + s.value
        return snap

    def total(self) -> float:
        return sum(self.requests.values())


@dataclass
class Stats:
    """What one server did during a window."""

    requests: float
    errors: float
    p95: float  # seconds; NaN when unknown
    distribution: dict[str, float]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan


def _sub(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: max(0.0, v - before.get(k, 0.0)) for k, v in after.items()}


def window(before: Snapshot | None, after: Snapshot) -> Stats:
    """The counters of ``after`` minus ``before`` (a restarted server: ``after`` alone)."""
    if before is None or after.total() < before.total():
        before = Snapshot()
    req = _sub(after.requests, before.requests)
    errors = sum(v for status, v in req.items() if status.startswith("5"))
    return Stats(requests=sum(req.values()), errors=errors, p95=quantile(0.95, _sub(after.buckets, before.buckets)),
                 distribution=_distribution(_sub(after.outputs, before.outputs)))


def _distribution(outputs: dict[str, float]) -> dict[str, float]:
    """Class counts as they are; the cumulative value buckets turned into counts per bucket."""
    dist = {k: v for k, v in outputs.items() if k.startswith("class=") and v > 0}
    bounds = sorted((float(k.split("<=", 1)[1]), v) for k, v in outputs.items() if k.startswith("value<="))
    prev = 0.0
    for le, cum in bounds:
        if cum - prev > 0:
            dist[f"value<={le:g}"] = cum - prev
        prev = max(prev, cum)
    return dist


def quantile(q: float, buckets: dict[float, float]) -> float:
    """``histogram_quantile``: linear inside the bucket; the +Inf bucket answers its lower bound."""
    if not buckets:
        return math.nan
    ordered = sorted(buckets.items())
    total = ordered[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cum in ordered:
        if cum >= rank:
            if math.isinf(le):
                return lower
            inside = cum - below
            return lower + (le - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = le, cum
    return lower


def _proportions(a: dict[str, float], b: dict[str, float]) -> tuple[list[float], list[float]]:
    keys = sorted(set(a) | set(b))
    ta, tb = sum(a.values()), sum(b.values())
    p = [max(a.get(k, 0.0) / ta, EPSILON) for k in keys]
    q = [max(b.get(k, 0.0) / tb, EPSILON) for k in keys]
    sp, sq = sum(p), sum(q)
    return [x / sp for x in p], [x / sq for x in q]


def psi(expected: dict[str, float], actual: dict[str, float]) -> float:
    """Population stability index of ``actual`` against ``expected`` (NaN when either is empty)."""
    if not sum(expected.values()) or not sum(actual.values()):
        return math.nan
    p, q = _proportions(expected, actual)
    return sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))


def jensen_shannon(expected: dict[str, float], actual: dict[str, float]) -> float:
    """Jensen-Shannon distance, base 2 (0 identical .. 1 disjoint), as scipy's ``jensenshannon(p, q, base=2)``."""
    if not sum(expected.values()) or not sum(actual.values()):
        return math.nan
    p, q = _proportions(expected, actual)
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda x: sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m, strict=True) if xi > 0)  # noqa: E731
    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


DISTANCES = {"psi": psi, "jensen-shannon": jensen_shannon}
DEFAULT_MAX_DISTANCE = {"psi": 0.2, "jensen-shannon": 0.1}


@dataclass
class Thresholds:
    min_requests: int = 50
    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_ms: float = 5.0
    distance: str = "psi"
    max_prediction_distance: float = 0.2


@dataclass
class Verdict:
    outcome: str  # pass, fail, inconclusive
    reasons: list[str]
    canary: Stats
    stable: Stats
    distance: float

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or "within every threshold"


def judge(canary: Stats, stable: Stats, t: Thresholds) -> Verdict:
    """Compare the canary's window with the stable's; a failure beats an inconclusive, which beats a pass."""
    distance = DISTANCES[t.distance](stable.distribution, canary.distribution)
    fails: list[str] = []
    unsure: list[str] = []
    if canary.requests < t.min_requests:
        unsure.append(f"canary served {canary.requests:.0f} requests, fewer than min-requests {t.min_requests}")
    if stable.requests < t.min_requests:
        unsure.append(f"stable served {stable.requests:.0f} requests, fewer than min-requests {t.min_requests}")
    c_err, s_err = canary.error_rate, stable.error_rate
    if math.isnan(c_err) or math.isnan(s_err):
        unsure.append("error rate unknown")
    elif c_err - s_err > t.max_error_rate_increase:
        fails.append(f"error rate {c_err:.1%} vs stable {s_err:.1%} (allowed +{t.max_error_rate_increase:.1%})")
    if math.isnan(canary.p95) or math.isnan(stable.p95):
        unsure.append("p95 latency unknown")
    elif canary.p95 > stable.p95 * t.max_latency_ratio and \
            (canary.p95 - stable.p95) * 1000 > t.latency_slack_ms:
        fails.append(f"p95 latency {canary.p95 * 1000:.1f} ms vs stable {stable.p95 * 1000:.1f} ms "
                     f"(allowed x{t.max_latency_ratio:g})")
    if math.isnan(distance):
        unsure.append("prediction distribution unknown (no predictions observed)")
    elif distance > t.max_prediction_distance:
        fails.append(f"prediction {t.distance} {distance:.3f} > {t.max_prediction_distance:g}")
    outcome = FAIL if fails else INCONCLUSIVE if unsure else PASS
    return Verdict(outcome=outcome, reasons=fails or unsure, canary=canary, stable=stable, distance=distance)
