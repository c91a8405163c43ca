"""What a server did in one analysis window: its ``/metrics`` (``leanops serve``) scraped before and after, and
its per-request latency samples (``/metrics/samples``) in between.

Counters are cumulative, so a window is the difference of two scrapes: the request count and 5xx errors of
``/predict``, the prediction distribution (classes from ``leanops_prediction_class``, numeric predictions by
``leanops_prediction_value`` bucket). Latency comes as the window's per-request samples when the server keeps
them (sequence numbers between the two scrapes), else from the latency histogram (each request at its
bucket's upper bound: ties, which the rank test handles). The judgement is in ``judge.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

PREDICT = "/predict"


@dataclass
class Snapshot:
    """Cumulative counters of one server at one moment (only ``/predict``)."""

    requests: dict[str, float] = field(default_factory=dict)  # status -> count
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count (latency, seconds)
    outputs: dict[str, float] = field(default_factory=dict)  # "class=X" or "value<=le" (cumulative) -> count
    version: str = ""
    seq: int = -1  # the last request's sequence number in ``samples``; -1: the server keeps no samples
    samples: list[tuple[int, float, int]] = field(default_factory=list)  # (seq, seconds, status) of /predict

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

    def add_samples(self, text: str, known: list[tuple[int, float, int]]) -> None:
        """``/metrics/samples``' JSON on top of the samples already read from this server (``known``, kept by the
        target so that each scrape reads only the new ones); a restarted server starts over."""
        data = json.loads(text)
        rows = [(int(r[0]), float(r[1]), int(r[2])) for r in data.get("samples", [])]
        seq = int(data.get("seq", -1))
        if known and seq < known[-1][0]:
            known.clear()
        last = known[-1][0] if known else 0
        known.extend(r for r in rows if r[0] > last)
        self.seq, self.samples = seq, known


@dataclass
class Stats:
    """What one server did during a window (or several windows added up)."""

    requests: float
    errors: float
    latencies: list[float]  # seconds, one per answered (non-5xx) request
    distribution: dict[str, float]
    latency_source: str = "samples"  # or "histogram" (a server without samples), "" (none)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    @property
    def p95(self) -> float:
        from .statistics import percentile

        return percentile(self.latencies, 0.95)

    @property
    def median(self) -> float:
        from .statistics import median

        return median(self.latencies)

    def __add__(self, other: Stats) -> Stats:
        dist = dict(self.distribution)
        for k, v in other.distribution.items():
            dist[k] = dist.get(k, 0.0) + v
        return Stats(self.requests + other.requests, self.errors + other.errors, self.latencies + other.latencies,
                     dist, self.latency_source if self.latency_source == other.latency_source else "histogram")


def _sub(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: max(0.0, v - before.get(k, 0.0)) for k, v in after.items()}


def window(before: Snapshot | None, after: Snapshot) -> Stats:
    """The counters of ``after`` minus ``before`` (a restarted server: ``after`` alone)."""
    if before is None or after.total() < before.total():
        before = Snapshot()
    req = _sub(after.requests, before.requests)
    errors = sum(v for status, v in req.items() if status.startswith("5"))
    if after.seq >= 0 and (before.seq >= 0 or not before.requests):
        since = max(before.seq, 0)
        latencies = [lat for seq, lat, status in after.samples if since < seq <= after.seq and status < 500]
        source = "samples"
    else:
        latencies, source = histogram_values(_sub(after.buckets, before.buckets)), "histogram"
    return Stats(requests=sum(req.values()), errors=errors, latencies=latencies,
                 distribution=_distribution(_sub(after.outputs, before.outputs)),
                 latency_source=source if latencies else "")


def histogram_values(buckets: dict[float, float]) -> list[float]:
    """A latency histogram (cumulative ``le`` -> count) as one value per request at its bucket's upper bound (the
    +Inf bucket at twice the highest finite bound)."""
    ordered = sorted(buckets.items())
    finite = [le for le, _ in ordered if not math.isinf(le)]
    out: list[float] = []
    prev = 0.0
    for le, cum in ordered:
        n = int(round(cum - prev))
        if n > 0:
            out.extend([le if not math.isinf(le) else (finite[-1] * 2 if finite else 1.0)] * n)
        prev = max(prev, cum)
    return out


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

