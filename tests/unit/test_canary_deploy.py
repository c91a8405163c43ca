"""`leanops canary-deploy` without an engine: the analysis (against scipy and by hand), the verdicts, the router's
nginx configuration, settings from leanops.yml and flags, the record, the summary, the Kubernetes manifests
(validated against the schemas for every step) and the planned kubectl sequence, and the workflow wiring."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leanops import config, serve
from leanops.canary_deploy import analysis as an
from leanops.canary_deploy import judge as jd
from leanops.canary_deploy import settings
from leanops.canary_deploy import statistics as st
from leanops.canary_deploy.controller import Report, Settings, Step
from leanops.canary_deploy.docker_target import render_conf, router_recipe_hash
from leanops.canary_deploy.kubernetes import KubernetesTarget, deployment, httproute, ingress, service, validate
from leanops.canary_deploy.record import Entry, Record
from leanops.canary_deploy.report import mermaid, summary
from leanops.errors import BadInput, InfraError

ROOT = Path(__file__).resolve().parents[2]
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def metrics_text(latencies: list[float], statuses: list[int], classes: list[int], values: list[float] = ()) -> str:
    """The exposition of a real ``leanops serve`` metrics registry after the given requests."""
    from prometheus_client import generate_latest

    from leanops import serve

    m = serve.Metrics(serve.ModelState(model_dir=Path("."), name="churn", version="3"))
    for lat, status in zip(latencies, statuses, strict=True):
        m.requests.labels(**m.base, path="/predict", status=str(status)).inc()
        m.latency.labels(**m.base, path="/predict").observe(lat)
    m.requests.labels(**m.base, path="/health", status="200").inc()
    m.observe_predictions([*classes, *values])
    return generate_latest(m.registry).decode()


# ---------------------------------------------------------------------------- statistics against scipy


def _samples(seed: int) -> list[tuple[list[float], list[float]]]:
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(60):
        n1, n2, digits = rng.randint(9, 150), rng.randint(9, 400), rng.choice([0, 1, 4])
        shift = rng.choice([0.0, 0.3, 2.0])
        out.append(([round(rng.lognormvariate(2 + shift, 0.4), digits) for _ in range(n1)],
                    [round(rng.lognormvariate(2, 0.4), digits) for _ in range(n2)]))
    return out


def test_mann_whitney_u_matches_scipy_within_1e_9() -> None:
    from scipy.stats import mannwhitneyu

    known = ([12.1, 15.3, 11.0, 19.5, 14.2, 13.3, 16.8, 12.9, 15.0, 14.4],
             [10.2, 11.9, 12.1, 9.8, 13.0, 10.7, 11.1, 12.6, 10.0, 11.5, 12.1])  # one tie across the samples
    for x, y in [known, *_samples(7)]:
        for alternative in ("two-sided", "greater", "less"):
            mine = st.mann_whitney_u(x, y, alternative)
            ref = mannwhitneyu(x, y, alternative=alternative)  # scipy's default method: asymptotic here
            assert abs(mine.p - ref.pvalue) <= 1e-9, (alternative, mine, ref)
            assert mine.u == pytest.approx(mannwhitneyu(x, y).statistic, abs=1e-9)
    assert st.mann_whitney_u(*known, "greater").p < 0.01  # the first sample is slower
    assert math.isnan(st.mann_whitney_u([], [1.0]).p) and math.isnan(st.mann_whitney_u([1.0] * 9, [1.0] * 9).p)
    with pytest.raises(ValueError):
        st.mann_whitney_u([1.0], [2.0], "bigger")


def test_binomial_chi2_and_bounds_match_scipy() -> None:
    from scipy import stats

    for n in (1, 26, 100, 500, 5000):
        for k in range(0, min(n, 40) + 2):
            for p in (0.001, 0.01, 0.02, 0.05, 0.5):
                assert st.binomial_sf(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-9, abs=1e-12)
    for df in range(1, 30):
        for x in (0.01, 0.7, 3.0, 12.0, 45.0, 150.0):
            assert st.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-14)
        assert st.chi2_isf(0.01, df) == pytest.approx(stats.chi2.isf(0.01, df), rel=1e-6)
    assert st.binomial_lower_bound(25, 500, 0.01) == pytest.approx(stats.beta.ppf(0.01, 25, 476), rel=1e-6)
    a, b = {"class=0": 70.0, "class=1": 30.0, "class=2": 4.0}, {"class=0": 40.0, "class=1": 60.0}
    ref = stats.chi2_contingency([[70, 30, 4], [40, 60, 0]], correction=False)
    h = st.homogeneity(a, b)
    assert h.statistic == pytest.approx(ref.statistic, rel=1e-9) and h.df == ref.dof
    assert h.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert math.isnan(st.homogeneity(a, {}).p) and st.homogeneity({"class=0": 5.0}, {"class=0": 9.0}).p == 1.0


def test_distances_against_scipy_and_by_hand() -> None:
    from scipy.spatial.distance import jensenshannon

    a = {"class=0": 70.0, "class=1": 30.0}
    b = {"class=0": 40.0, "class=1": 60.0}
    assert st.jensen_shannon(a, b) == pytest.approx(jensenshannon([0.7, 0.3], [0.4, 0.6], base=2), rel=1e-3)
    by_hand = (0.4 - 0.7) * math.log(0.4 / 0.7) + (0.6 - 0.3) * math.log(0.6 / 0.3)
    assert st.psi(a, b) == pytest.approx(by_hand, rel=1e-3)
    assert st.psi(a, a) == pytest.approx(0.0, abs=1e-9) and st.jensen_shannon(a, a) == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(st.psi(a, {"class=2": 5.0}))  # disjoint: large but finite
    assert math.isnan(st.psi(a, {})) and math.isnan(st.jensen_shannon({}, b))


def test_distance_noise_shrinks_with_the_sample_and_matches_simulation() -> None:
    import random

    rng = random.Random(3)
    for kind in ("psi", "jensen-shannon"):
        small, large = (st.distance_noise(kind, n, 9 * n, 2, 0.01) for n in (30, 3000))
        assert small > 10 * large > 0
        # two samples of one 70/30 distribution: the distance exceeds the noise floor about 1% of the time
        over = 0
        for _ in range(400):
            c = sum(rng.random() < 0.3 for _ in range(60))
            s_ = sum(rng.random() < 0.3 for _ in range(540))
            d = st.DISTANCES[kind]({"class=0": 540.0 - s_, "class=1": float(s_)},
                                   {"class=0": 60.0 - c, "class=1": float(c)})
            over += d > st.distance_noise(kind, 60, 540, 2, 0.01)
        assert over <= 16, (kind, over)
    assert st.distance_noise("psi", 0, 10, 2, 0.01) == math.inf


# ---------------------------------------------------------------------------- a server's window


def test_snapshot_parses_serve_metrics_and_a_window_is_the_difference() -> None:
    before = an.Snapshot.parse(metrics_text([0.004] * 10, [200] * 10, [0] * 10))
    after = an.Snapshot.parse(metrics_text([0.004] * 10 + [0.02] * 10, [200] * 10 + [500] * 4 + [200] * 6,
                                           [0] * 10 + [1] * 6))
    assert before.version == "3" and before.total() == 10  # /health is not counted
    w = an.window(before, after)
    assert w.requests == 10 and w.errors == 4 and w.error_rate == 0.4
    assert w.distribution == {"class=1": 6.0}
    # no samples endpoint: the latencies of the answered requests from the (fine) histogram, at bucket bounds
    assert w.latency_source == "histogram" and len(w.latencies) == 10 and 0.02 <= w.median <= 0.025
    restarted = an.window(after, before)  # counters went down: the server restarted, the window is `after` alone
    assert restarted.requests == 10


def test_window_latencies_are_the_samples_between_the_two_scrapes() -> None:
    m = serve.Metrics(serve.ModelState(model_dir=Path("."), name="churn", version="3"))
    known: list[tuple[int, float, int]] = []

    def scrape() -> an.Snapshot:
        from prometheus_client import generate_latest

        snap = an.Snapshot.parse(generate_latest(m.registry).decode())
        snap.add_samples(json.dumps(m.samples_since(known[-1][0] if known else 0)), known)
        return snap

    for _ in range(5):  # warm-up: before the window
        m.requests.labels(**m.base, path="/predict", status="200").inc()
        m.observe_request(200, 0.5)
    before = scrape()
    for i in range(30):
        status = 500 if i % 10 == 0 else 200
        m.requests.labels(**m.base, path="/predict", status=str(status)).inc()
        m.observe_request(status, 0.010 + i / 10000)
    w = an.window(before, scrape())
    assert w.latency_source == "samples" and w.requests == 30 and w.errors == 3
    assert len(w.latencies) == 27 and max(w.latencies) < 0.5  # warm-up and 5xx left out
    assert w.median == pytest.approx(st.median([0.010 + i / 10000 for i in range(30) if i % 10]))
    assert an.window(None, scrape()).latencies.count(0.5) == 5  # a whole life includes the warm-up


def test_value_buckets_become_counts_per_bucket() -> None:
    after = an.Snapshot.parse(metrics_text([0.01] * 4, [200] * 4, [], [0.3, 0.3, 0.6, 0.95]))
    assert an.window(None, after).distribution == {"value<=0.5": 2.0, "value<=0.75": 1.0, "value<=1": 1.0}


# ---------------------------------------------------------------------------- the judge


def stats(n: int = 300, errors: int = 0, latency: float = 0.010, spread: float = 0.3, seed: int = 1,
          dist: dict | None = None) -> an.Stats:
    import random

    rng = random.Random(seed)
    lat = [latency * rng.lognormvariate(0, spread) for _ in range(n - errors)]
    return an.Stats(requests=n, errors=errors, latencies=lat,
                    distribution=dist if dist is not None else {"class=0": n * 0.7, "class=1": n * 0.3})


def test_healthy_windows_pass_and_a_difference_needs_both_significance_and_effect() -> None:
    t = jd.Thresholds()
    v = jd.judge(stats(seed=1), stats(2000, seed=2), t)
    assert v.outcome == jd.PASS and v.score == 100, v.reason
    assert [m.name for m in v.metrics] == ["errors", "latency", "predictions"]
    # +20% latency, highly significant on 2000 samples, but within x1.5: passes
    lat = jd.latency(stats(2000, latency=0.012, seed=3), stats(2000, seed=4), t)
    assert lat.p < 1e-6 and lat.verdict == jd.PASS
    # twice as slow: significant and beyond the limit
    lat = jd.latency(stats(100, latency=0.020, seed=5), stats(900, seed=6), t)
    assert lat.verdict == jd.FAIL and lat.effect == pytest.approx(2.0, rel=0.2) and lat.p < 1e-9
    # twice as slow but within the slack (1 ms): 0.4 ms vs 0.8 ms
    assert jd.latency(stats(100, latency=0.0008, seed=5), stats(900, latency=0.0004, seed=6), t).verdict == jd.PASS
    # and beyond it once the medians are a few ms apart: 2 ms vs 4 ms
    assert jd.latency(stats(100, latency=0.004, seed=5), stats(900, latency=0.002, seed=6), t).verdict == jd.FAIL
    # beyond the limit on the medians, but 50 noisy samples: marginal, not a failure
    # (bimodal: half the canary's requests faster than any of the stable's, half slower)
    c = an.Stats(50, 0, [0.009] * 24 + [0.041] * 26, {"class=0": 50.0})
    lat = jd.latency(c, an.Stats(50, 0, [0.010] * 25 + [0.040] * 25, {"class=0": 50.0}), t)
    assert lat.verdict == jd.MARGINAL and lat.effect > 1.5 and lat.p >= t.significance, lat
    lat = jd.latency(stats(20), stats(900), t)
    assert lat.verdict == jd.INCONCLUSIVE and "fewer than min-requests 50" in lat.reason


def test_error_rate_one_500_is_not_a_verdict_five_percent_of_500_is_gross() -> None:
    t = jd.Thresholds()
    one = jd.errors(stats(26, errors=1), stats(234), t)
    assert one.verdict == jd.INCONCLUSIVE and not one.gross  # too few requests to pass, never a failure
    one = jd.errors(stats(60, errors=1), stats(540), t)
    assert one.verdict == jd.PASS and one.p > 0.1
    gross = jd.errors(stats(500, errors=25), stats(4500, errors=2), t)
    assert gross.verdict == jd.FAIL and gross.gross and gross.p < 1e-4
    assert jd.judge(stats(500, errors=25), stats(4500, errors=2), t).gross
    # 50% of 30 requests: gross even below min-requests (the exact test holds at any size)
    assert jd.errors(stats(30, errors=15), stats(270), t).gross
    # 2 errors of 20: beyond the limit on the point estimate, but fewer than min-errors
    assert jd.errors(stats(60, errors=2), stats(540), t).verdict == jd.PASS
    # 5% of 100: significant over +1%: errors reach users, out at once
    assert jd.errors(stats(100, errors=5), stats(900), t).gross
    # 4% of 100: beyond the limit but not significant at this size: marginal (the window is extended)
    mid = jd.errors(stats(100, errors=4), stats(900), t)
    assert mid.verdict == jd.MARGINAL and not mid.gross and 0.01 < mid.p < 0.05, mid
    # the stable's own errors are the baseline
    assert jd.errors(stats(500, errors=25), stats(4500, errors=225), t).verdict == jd.PASS


def test_prediction_shift_needs_significance_at_the_sample_size() -> None:
    t = jd.Thresholds()
    shifted = {"class=0": 30.0, "class=1": 70.0}
    v = jd.predictions(stats(100, dist=shifted), stats(900), t)
    assert v.verdict == jd.FAIL and v.effect > 0.5 and v.p < 1e-9
    # a small sample: the distance beyond the limit is within what chance gives at this size
    few = jd.predictions(stats(50, dist={"class=0": 25.0, "class=1": 25.0}), stats(50, dist={"class=0": 37.0,
                                                                                              "class=1": 13.0}), t)
    assert few.effect > 0.2 and few.verdict == jd.MARGINAL and few.p > 0.01, few
    assert "noise 0.2" in few.interval  # chance alone reaches about that distance on 50 + 50 predictions
    js = jd.Thresholds(distance="jensen-shannon", max_prediction_distance=0.1)
    assert jd.predictions(stats(100, dist=shifted), stats(900), js).verdict == jd.FAIL
    none = jd.predictions(stats(100, dist={}), stats(900), t)
    assert none.verdict == jd.INCONCLUSIVE


def test_window_outcome_is_the_worst_metric() -> None:
    t = jd.Thresholds()
    v = jd.judge(stats(100, latency=0.03, dist={"class=0": 30.0, "class=1": 70.0}), stats(900), t)
    assert v.outcome == jd.FAIL and not v.gross and v.score == pytest.approx(100 / 3)
    assert "latency median" in v.reason and "prediction psi" in v.reason
    v = jd.judge(stats(20), stats(900), t)
    assert v.outcome == jd.INCONCLUSIVE and math.isnan(v.score)
    d = v.metric("latency").to_dict()
    assert d["p"] is None and d["verdict"] == "inconclusive" and json.dumps(d)


# ---------------------------------------------------------------------------- evidence across windows


class Scripted:
    """A target whose two servers are real ``leanops serve`` metrics registries; each analysis window the script
    says what traffic each served (or that the canary crashed). The controller, judge and windows are real."""

    kind = "scripted"
    dry_run = False

    def __init__(self, windows: list[dict | str]) -> None:
        import random

        self.windows = list(windows)
        self.metrics = {r: serve.Metrics(serve.ModelState(model_dir=Path("."), name="churn", version=r))
                        for r in ("canary", "stable")}
        self.known: dict[str, list[tuple[int, float, int]]] = {"canary": [], "stable": []}
        self.record = Record(name="churn", stable=Entry(image="r/x@" + DIGEST_A))
        self.events: list[str] = []
        self.rng = random.Random(11)
        self.weight = 0
        # the stable alone at the whole load, the canary idle (a target without turns): its traffic
        self.alone: dict = {"n": 600}
        self.traffic("stable", 500)  # the stable's life before the deploy

    def traffic(self, role: str, n: int, errors: int = 0, latency: float = 0.010, p1: float = 0.3) -> None:
        m = self.metrics[role]
        for i in range(n):
            status = 500 if i < errors else 200
            m.requests.labels(**m.base, path="/predict", status=str(status)).inc()
            m.observe_request(status, latency * self.rng.lognormvariate(0, 0.3))
            if status == 200:
                m.observe_predictions([int(self.rng.random() < p1)])

    def describe(self) -> str:
        return "scripted"

    def read_record(self) -> Record:
        return self.record

    def write_record(self, record: Record) -> None:
        self.record = record

    def pull(self, image: str) -> Entry:
        return Entry(image=image)

    def prepare(self, record: Record | None) -> bool:
        return True

    def first_deploy(self, entry: Entry) -> None:
        raise AssertionError("not a first deploy")

    def start_canary(self, entry: Entry) -> str:
        self.events.append("start")
        return ""

    def warm_up(self, requests: int) -> int:
        self.events.append(f"warm-up {requests}")
        self.traffic("canary", requests, latency=0.5)  # a cold container's first requests: slow
        return requests

    def set_weight(self, weight: int) -> None:
        self.events.append(f"weight {weight}")
        self.weight = weight

    def scrape(self, role: str) -> an.Snapshot:
        from prometheus_client import generate_latest

        m, known = self.metrics[role], self.known[role]
        snap = an.Snapshot.parse(generate_latest(m.registry).decode())
        snap.add_samples(json.dumps(m.samples_since(known[-1][0] if known else 0)), known)
        return snap

    def canary_problem(self) -> str:  # called once per window (window 0.01 s, poll 1 s)
        if self.weight == 0:  # the window before the canary takes traffic: the stable alone
            self.events.append("alone")
            self.traffic("stable", **self.alone)
            return ""
        spec = self.windows.pop(0) if self.windows else "exhausted"
        self.events.append("window")
        if isinstance(spec, str):
            return spec
        self.traffic("canary", **spec.get("canary", {}))
        self.traffic("stable", **spec.get("stable", {}))
        return ""

    def abort(self) -> None:
        self.events.append("abort")

    def promote(self) -> None:
        self.events.append("promote")

    def switch_to(self, entry: Entry) -> None:
        raise AssertionError("no rollback here")


HEALTHY = {"canary": {"n": 60}, "stable": {"n": 540}}
SLOW = {"canary": {"n": 60, "latency": 0.025}, "stable": {"n": 540}}
FEW = {"canary": {"n": 20}, "stable": {"n": 180}}


def canary(windows: list[dict | str], steps: int = 3, **kw: object) -> tuple[Report, Scripted]:
    from leanops.canary_deploy.controller import Controller

    target = Scripted(windows)
    s = Settings(steps=[Step(w, 0.01) for w in (10, 50, 100)[:steps]], **kw)  # type: ignore[arg-type]
    return Controller(target, s, "churn").deploy("r/x@" + DIGEST_B, "abc"), target


def test_a_healthy_canary_is_warmed_then_promoted_and_the_warm_up_is_not_judged() -> None:
    report, target = canary([HEALTHY] * 3)
    assert report.verdict == "promoted", report.reason
    assert target.events[:4] == ["start", "warm-up 10", "alone", "weight 10"] and target.events[-1] == "promote"
    assert [(r["step"], r["window"], r["verdict"]) for r in report.steps] == [(1, 1, "pass"), (2, 1, "pass"),
                                                                              (3, 1, "pass")]
    first = report.steps[0]
    assert first["canary_requests"] == 60 and first["canary_median_ms"] < 100  # the slow warm-up is not in it
    assert report.to_dict()["windows"] == 3 and report.warm_up == {"requests": 10, "ok": 10,
                                                                   "seconds": report.warm_up["seconds"]}


def test_gross_errors_roll_back_after_one_window() -> None:
    report, target = canary([{"canary": {"n": 500, "errors": 25}, "stable": {"n": 4500}}, HEALTHY, HEALTHY])
    assert report.verdict == "rolled-back" and "error rate 5.00% vs stable 0.00%" in report.reason
    assert report.to_dict()["windows"] == 1 and target.events[-1] == "abort"


def test_a_crash_rolls_back_at_once() -> None:
    report, _ = canary([HEALTHY, "container leanops-churn-bbb exited (exit code 1): boom"])
    assert report.verdict == "rolled-back" and "exited" in report.reason and report.steps[-1]["gross"]
    assert report.to_dict()["windows"] == 2


def test_a_slow_canary_is_rolled_back_once_the_failure_is_confirmed() -> None:
    report, _ = canary([SLOW, SLOW, HEALTHY])
    assert report.verdict == "rolled-back" and "2 failed windows in a row" in report.reason
    assert [(r["step"], r["window"], r["verdict"]) for r in report.steps] == [(1, 1, "fail"), (1, 2, "fail")]
    latency = next(m for m in report.steps[0]["metrics"] if m["name"] == "latency")
    assert latency["verdict"] == "fail" and latency["p"] < 0.01 and latency["canary_n"] == 60


class WithBaseline(Scripted):
    """The docker target's shape: a baseline container of the stable's image beside the canary."""

    has_baseline = True

    def __init__(self, windows: list[dict | str]) -> None:
        super().__init__(windows)
        self.metrics["baseline"] = serve.Metrics(serve.ModelState(model_dir=Path("."), name="churn", version="b"))
        self.known["baseline"] = []

    def warm_up(self, requests: int) -> int:
        self.traffic("baseline", requests, latency=0.5)
        return super().warm_up(requests)

    def canary_problem(self) -> str:
        spec = self.windows[0] if self.windows and not isinstance(self.windows[0], str) else {}
        idle = self.weight == 0
        why = super().canary_problem()
        if not why and not idle and "baseline" in spec:
            self.traffic("baseline", **spec["baseline"])
        return why


# a busy host: the stable takes 90% of the load and queues (60 ms), the canary and its baseline take 10% each
QUEUED_STABLE = {"n": 540, "latency": 0.060}
SLOW_UNDER_LOAD = {"canary": {"n": 60, "latency": 0.025}, "stable": QUEUED_STABLE, "baseline": {"n": 60}}
HEALTHY_UNDER_LOAD = {"canary": {"n": 60}, "stable": QUEUED_STABLE, "baseline": {"n": 60}}


def test_the_canary_is_compared_with_a_baseline_at_its_own_load() -> None:
    from leanops.canary_deploy.controller import Controller

    def run(target: Scripted) -> Report:
        s = Settings(steps=[Step(10, 0.01)])
        return Controller(target, s, "churn").deploy("r/x@" + DIGEST_B, "abc")

    # against the queued stable, a canary twice as slow as the model looks fast: it would be promoted
    hidden = run(Scripted([SLOW_UNDER_LOAD] * 3))
    assert hidden.verdict == "promoted" and hidden.steps[0]["against"] == "stable"
    # against the baseline, which sees the canary's request rate, it is caught and confirmed
    report = run(WithBaseline([SLOW_UNDER_LOAD] * 3))
    assert report.verdict == "rolled-back" and "vs baseline" in report.reason, report.reason
    assert [(r["window"], r["verdict"], r["against"], r["stable_requests"]) for r in report.steps] == [
        (1, "fail", "baseline", 60), (2, "fail", "baseline", 60)]
    # and a healthy one passes against it (the baseline's warm-up is not judged either)
    report = run(WithBaseline([HEALTHY_UNDER_LOAD]))
    assert report.verdict == "promoted" and report.steps[0]["stable_median_ms"] < 20, report.steps


class StableAloneQueues(Scripted):
    """A busy host without a baseline: the stable alone at the whole load queues (60 ms); while the canary's
    container starts and loads its model on the same cores, the stable is slower still (500 ms)."""

    def __init__(self, windows: list[dict | str]) -> None:
        super().__init__(windows)
        self.alone = {"n": 600, "latency": 0.060}

    def start_canary(self, entry: Entry) -> str:
        self.traffic("stable", 600, latency=0.500)
        return super().start_canary(entry)


class ByTurns(WithBaseline):
    """The Docker target's router at 100%: the canary and the baseline take the whole load by turns of a second
    (``turns_full``); a window's spec says how each side fared in its turns."""

    turns_full = True


def test_a_100_percent_step_without_turns_is_compared_with_the_stable_alone_before() -> None:
    from leanops.canary_deploy.controller import Controller

    s = Settings(steps=[Step(10, 0.01), Step(100, 0.01)])
    healthy_full = {"canary": {"n": 600, "latency": 0.060}, "stable": {"n": 0}}
    slow_full = {"canary": {"n": 600, "latency": 0.120}, "stable": {"n": 0}}
    # the stable alone, once the canary is warm and idle (not while it started: 500 ms)
    target = StableAloneQueues([HEALTHY_UNDER_LOAD, healthy_full])
    report = Controller(target, s, "churn").deploy("r/x@" + DIGEST_B, "abc")
    assert report.verdict == "promoted", report.reason
    assert [(r["step"], r["verdict"], r["against"]) for r in report.steps] == [
        (1, "pass", "stable"), (2, "pass", "the stable alone before the canary")]
    assert report.reference["role"] == "stable" and report.reference["requests"] == 600
    assert not report.reference["turns"] and 40 < report.reference["median_ms"] < 90, report.reference
    assert target.events[:4] == ["start", "warm-up 10", "alone", "weight 10"], target.events
    assert "the stable alone at the whole load" in summary(report)
    # twice as slow as the one alone, it is not promoted
    report = Controller(StableAloneQueues([HEALTHY_UNDER_LOAD] + [slow_full] * 2), s, "churn").deploy(
        "r/x@" + DIGEST_B, "abc")
    assert report.verdict == "rolled-back" and "vs the stable alone before the canary" in report.reason, report.reason


def test_a_100_percent_step_is_compared_with_the_baseline_by_turns_in_the_same_window() -> None:
    """The baseline takes the whole load every other second of the canary's window: a host that got busier during
    the step slows both alike. Against the stable alone before the step (a reference measured at another
    time), the same healthy canary was rolled back."""
    from leanops.canary_deploy.controller import Controller

    s = Settings(steps=[Step(10, 0.01), Step(100, 0.01)])
    # the host got busier at 100%: the healthy canary and the baseline in its turns both at 60 ms
    busier = {"canary": {"n": 600, "latency": 0.060}, "stable": {"n": 0}, "baseline": {"n": 600, "latency": 0.060}}
    slow = {"canary": {"n": 600, "latency": 0.120}, "stable": {"n": 0}, "baseline": {"n": 600, "latency": 0.060}}
    target = ByTurns([HEALTHY_UNDER_LOAD, busier])
    report = Controller(target, s, "churn").deploy("r/x@" + DIGEST_B, "abc")
    assert report.verdict == "promoted", report.reason
    assert [(r["step"], r["verdict"], r["against"], r["stable_requests"]) for r in report.steps] == [
        (1, "pass", "baseline", 60), (2, "pass", "baseline (by turns)", 600)]
    assert "alone" not in target.events and target.events[:3] == ["start", "warm-up 10", "weight 10"]
    assert report.reference == {"role": "baseline", "turns": True, "requests": 600,
                                "median_ms": report.reference["median_ms"]}
    assert 40 < report.reference["median_ms"] < 90 and "by turns of a second" in summary(report)
    # the stable alone before the step (10 ms, a quieter host then) would have rolled the same canary back
    quiet_before = StableAloneQueues([HEALTHY_UNDER_LOAD, busier, busier])
    quiet_before.alone = {"n": 600, "latency": 0.010}
    report = Controller(quiet_before, s, "churn").deploy("r/x@" + DIGEST_B, "abc")
    assert report.verdict == "rolled-back" and "vs the stable alone before the canary" in report.reason
    # twice as slow as the baseline in its turns, it is rolled back
    report = Controller(ByTurns([HEALTHY_UNDER_LOAD, slow, slow]), s, "churn").deploy("r/x@" + DIGEST_B, "abc")
    assert report.verdict == "rolled-back" and "vs baseline (by turns)" in report.reason, report.reason


def test_turns_with_too_few_requests_are_inconclusive_never_the_baselines_earlier_windows() -> None:
    """Low traffic at 100%: the baseline's turns served fewer than min-requests. Its earlier windows (at a tenth
    of the load, 10 ms) are not the reference: against them the healthy canary at the whole load (40 ms) looked
    slow. The window is inconclusive, and the next one adds to it."""
    from leanops.canary_deploy.controller import Controller

    s = Settings(steps=[Step(10, 0.01), Step(100, 0.01)])
    quiet = {"canary": {"n": 60}, "stable": QUEUED_STABLE, "baseline": {"n": 60}}
    few = {"canary": {"n": 60, "latency": 0.040}, "stable": {"n": 0}, "baseline": {"n": 30, "latency": 0.040}}
    report = Controller(ByTurns([quiet, few, few]), s, "churn").deploy("r/x@" + DIGEST_B, "abc")
    assert report.verdict == "promoted", report.reason
    assert [(r["step"], r["window"], r["verdict"], r["against"], r["stable_requests"]) for r in report.steps] == [
        (1, 1, "pass", "baseline", 60), (2, 1, "inconclusive", "baseline (by turns)", 30),
        (2, 2, "pass", "baseline (by turns)", 60)]
    assert "baseline (by turns): 30 latency samples, fewer than min-requests" in report.steps[1]["reason"]


def test_without_a_100_percent_step_there_is_no_reference_window() -> None:
    from leanops.canary_deploy.controller import Controller

    target = WithBaseline([HEALTHY_UNDER_LOAD])
    report = Controller(target, Settings(steps=[Step(10, 0.01)]), "churn").deploy("r/x@" + DIGEST_B, "abc")
    assert report.verdict == "promoted" and "alone" not in target.events and not report.reference


def test_one_unlucky_window_is_not_a_rollback() -> None:
    report, _ = canary([HEALTHY, SLOW, HEALTHY, HEALTHY])
    assert report.verdict == "promoted", report.reason
    assert [(r["step"], r["window"], r["verdict"]) for r in report.steps] == [
        (1, 1, "pass"), (2, 1, "fail"), (2, 2, "pass"), (3, 1, "pass")]
    report, _ = canary([SLOW, SLOW], failure_threshold=3)
    assert report.verdict == "rolled-back" and "exhausted" in report.reason  # a third window was asked for


def test_inconclusive_windows_add_up_and_never_promote() -> None:
    report, _ = canary([FEW, FEW, FEW], steps=1)
    assert report.verdict == "promoted", report.reason
    assert [(r["window"], r["verdict"], r["canary_requests"]) for r in report.steps] == [
        (1, "inconclusive", 20), (2, "inconclusive", 40), (3, "pass", 60)]
    report, _ = canary([FEW, FEW], steps=1, max_extensions=1)
    assert report.verdict == "rolled-back" and "still inconclusive after 2 windows" in report.reason
    report, _ = canary([FEW], steps=1, on_inconclusive="rollback")
    assert report.verdict == "rolled-back" and report.to_dict()["windows"] == 1


# ---------------------------------------------------------------------------- router


def test_router_conf_weights_and_weight_zero_left_out() -> None:
    conf = render_conf([("leanops-x-aaa", 90), ("leanops-x-bbb", 10)])
    assert "server leanops-x-aaa:8080 weight=90" in conf and "server leanops-x-bbb:8080 weight=10" in conf
    assert "proxy_next_upstream error timeout" in conf and "keepalive 32;" in conf
    # the router drops an idle upstream connection before the model server does (else a reused one is a 502)
    idle = re.search(r"keepalive_timeout (\d+)s;", conf)
    assert idle and int(idle.group(1)) < serve.KEEP_ALIVE
    only = render_conf([("leanops-x-aaa", 100), ("leanops-x-bbb", 0)])
    assert "leanops-x-bbb" not in only
    with pytest.raises(ValueError):
        render_conf([("a", 0)])
    # a 100% step: the canary and its reference by turns of a second (nginx's clock), the weights unused
    by_turns = render_conf([("leanops-x-aaa", 0), ("leanops-x-bbb", 100)], turns=("leanops-x-bbb", "leanops-x-base"))
    assert "upstream leanops_turn_0 {\n    server leanops-x-bbb:8080;" in by_turns
    assert "upstream leanops_turn_1 {\n    server leanops-x-base:8080;" in by_turns
    assert re.search(r'map \$msec \$leanops_turn \{\s+"~\[02468\]\\\." leanops_turn_0;\s+default leanops_turn_1;',
                     by_turns)
    assert "proxy_pass http://$leanops_turn;" in by_turns.split("location / {")[1]
    assert "leanops_turn" not in conf and "proxy_pass http://leanops_model;" in conf
    assert router_recipe_hash("debian:bookworm-slim") != router_recipe_hash("other:1")
    dockerfile = (ROOT / "scripts/leanops/canary_deploy/router/Dockerfile").read_text()
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in dockerfile and "apt-get install" in dockerfile


# ---------------------------------------------------------------------------- settings


def ns(**kw: object) -> argparse.Namespace:
    base = dict(name="", image="", target="", steps="", router_publish="", router_base_image="",
                manifests_dir="canary-manifests", dry_run=False)
    base.update(kw)
    return argparse.Namespace(**base)


def load(tmp_path: Path, text: str) -> config.Config:
    (tmp_path / "leanops.yml").write_text(text)
    return config.load(tmp_path / "leanops.yml")


def test_settings_defaults_config_and_flags(tmp_path: Path) -> None:
    s, name, target = settings(ns(), load(tmp_path, "version: 1\nmodel:\n  name: Churn\n"))
    assert (name, target) == ("churn", "docker")
    assert [(x.weight, x.window) for x in s.steps] == [(10, 60), (50, 60), (100, 60)]
    assert s.thresholds.max_prediction_distance == 0.2 and s.on_inconclusive == "extend"
    assert (s.failure_threshold, s.max_extensions, s.warm_up_requests, s.thresholds.significance) == (2, 2, 10, 0.01)
    cfg = load(tmp_path, "version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  target: kubernetes\n  steps:\n"
                         "    - {weight: 25, window: 30}\n    - {weight: 100}\n  distance: jensen-shannon\n"
                         "  on-inconclusive: rollback\n  latency-slack-ms: 2\n  failure-threshold: 3\n"
                         "  significance: 0.05\n  min-errors: 5\n  max-extensions: 0\n  warm-up-requests: 0\n")
    s, _, target = settings(ns(), cfg)
    assert target == "kubernetes" and [(x.weight, x.window) for x in s.steps] == [(25, 30), (100, 60)]
    assert s.thresholds.max_prediction_distance == 0.1 and s.on_inconclusive == "rollback"
    assert (s.failure_threshold, s.max_extensions, s.warm_up_requests) == (3, 0, 0)
    assert (s.thresholds.significance, s.thresholds.min_errors, s.thresholds.latency_slack_ms) == (0.05, 5, 2)
    s, _, _ = settings(ns(steps="5:2, 100:3", target="docker"), cfg)
    assert [(x.weight, x.window) for x in s.steps] == [(5, 2), (100, 3)]


def test_the_template_the_example_and_the_code_share_one_set_of_defaults(tmp_path: Path) -> None:
    """No demo-only limits: the adopter template's canary section is the code's defaults, and the example (which
    make demo runs) differs only in its window length."""
    template = config.load(ROOT / "templates/project/leanops.yml").section("canary-deploy")
    example = config.load(ROOT / "examples/churn/leanops.yml").section("canary-deploy")
    code, _, _ = settings(ns(), load(tmp_path, "version: 1\nmodel:\n  name: churn\n"))
    from_template, _, _ = settings(ns(), config.load(ROOT / "templates/project/leanops.yml"))
    assert from_template.thresholds == code.thresholds
    assert (from_template.failure_threshold, from_template.max_extensions, from_template.warm_up_requests,
            from_template.on_inconclusive) == (code.failure_threshold, code.max_extensions, code.warm_up_requests,
                                               code.on_inconclusive)
    assert [(x.weight, x.window) for x in from_template.steps] == [(x.weight, x.window) for x in code.steps]
    assert {k: v for k, v in example.items() if k != "steps"} == {k: v for k, v in template.items() if k != "steps"}
    assert [s["weight"] for s in example["steps"]] == [s["weight"] for s in template["steps"]]


def test_bad_settings_are_bad_input(tmp_path: Path) -> None:
    cfg = load(tmp_path, "version: 1\nmodel:\n  name: churn\n")
    with pytest.raises(BadInput, match="must rise strictly"):
        settings(ns(steps="50:1,10:1"), cfg)
    with pytest.raises(BadInput, match="WEIGHT:WINDOW_SECONDS"):
        settings(ns(steps="half"), cfg)
    with pytest.raises(BadInput, match="not a valid deployment name"):
        settings(ns(name="Bad_Name"), cfg)
    with pytest.raises(BadInput, match=r"canary-deploy.on-inconclusive: expected one of rollback, extend") as err:
        load(tmp_path, "version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  on-inconclusive: ignore\n")
    assert err.value.line == 5 and err.value.file and err.value.file.endswith("leanops.yml")
    with pytest.raises(BadInput, match="unknown key 'weights'"):
        load(tmp_path, "version: 1\ncanary-deploy:\n  weights: [1]\n")


def test_cli_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "leanops.yml").write_text("version: 1\nmodel:\n  name: churn\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=tmp_path)
    res = run()
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "leanops canary-deploy: error: image: empty; expected REGISTRY/IMAGE@sha256:... (build-push-image's image "
        "output)"]
    res = run("--image", "reg.example.com/churn:latest", "--target", "kubernetes", "--dry-run")
    assert res.returncode == 2 and "is not pinned by digest" in res.stderr.strip().splitlines()[-1]
    res = run("rollback", "--target", "kubernetes", "--dry-run")
    assert res.returncode == 2 and "has no deployment record" in res.stderr and "Traceback" not in res.stderr


# ---------------------------------------------------------------------------- record and report


def test_record_promote_and_roll_back() -> None:
    r = Record(name="churn")
    a, b, c = (Entry(image=f"r/x@sha256:{ch * 64}", model_version=v) for ch, v in (("a", "1"), ("b", "2"), ("c", "3")))
    for e in (a, b, c):
        r.promote(e)
    assert r.stable == c and r.previous == [b, a]
    again = Record.from_json(r.to_json(), "x")
    assert again == r and again.stable is not None and again.stable.digest == "sha256:" + "c" * 64
    assert r.roll_back() == b and r.previous == [a] and r.stable == b
    with pytest.raises(InfraError, match="damaged"):
        Record.from_json("{", "router:/var/lib/leanops/record.json")


def test_summary_tables_per_window_and_per_metric_and_the_report_file(tmp_path: Path) -> None:
    import re

    report, _ = canary([HEALTHY, SLOW, SLOW])
    text = summary(report)
    assert text.startswith("### canary-deploy churn: rolled-back\n") and "Warm-up: 10 of 10 requests" in text
    assert "| step | weight | window | took | requests canary / compared with | score | verdict |" in text
    assert re.search(r"\| 1 \| 10% \| 1 \| [0-9.]+ s \| 60 / 540 \(stable\) \| 100 \| pass: ", text), text
    assert "| 2 | 50% | 2 |" in text and "2 failed windows in a row" in text
    head = ("| window | metric | samples canary / compared with | canary | compared with | effect | limit | p-value "
            "| interval | verdict |")
    assert head in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| 2.2 | latency |")]
    assert len(rows) == 1 and "| 60 / 540 |" in rows[0] and "x1.5 and +1 ms" in rows[0] and "**fail**" in rows[0]
    assert re.search(r"\| 1\.1 \| errors \| 60 / 540 \| 0 of 60 \(0\.00%\) \|", text)
    assert re.search(r"\| 1\.1 \| predictions \| 60 / 540 \|.*\| psi 0\.2 \| [0-9.e-]+ \| noise 0\.", text)
    chart = mermaid(report)
    assert chart.startswith("```mermaid\nxychart-beta") and '"2.2: 50%"' in chart
    from leanops.canary_deploy.report import publish

    out, summ = tmp_path / "out", tmp_path / "summary"
    out.write_text("")
    summ.write_text("")
    import os

    os.environ.update(GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(summ))
    try:
        publish(report, tmp_path / "report.json")
    finally:
        del os.environ["GITHUB_OUTPUT"], os.environ["GITHUB_STEP_SUMMARY"]
    d = json.loads((tmp_path / "report.json").read_text())
    assert d["verdict"] == "rolled-back" and d["stable_digest"] == DIGEST_A and d["windows"] == 3
    assert d["settings"]["failure_threshold"] == 2 and d["settings"]["thresholds"]["significance"] == 0.01
    metric = d["steps"][2]["metrics"][1]
    assert set(metric) >= {"name", "verdict", "canary_n", "stable_n", "effect", "p", "interval", "reason"}
    assert "verdict=rolled-back" in out.read_text() and "| 2.2 | latency |" in summ.read_text()


# ---------------------------------------------------------------------------- kubernetes


@pytest.mark.parametrize("traffic", ["ingress-nginx", "gateway-api"])
def test_manifests_of_every_step_validate(tmp_path: Path, traffic: str) -> None:
    k = KubernetesTarget("churn", tmp_path, namespace="ml", traffic=traffic, host="churn.example.com", dry_run=True)
    stable, canary = Entry(image="r.example.com/churn@" + DIGEST_A), Entry(image="r.example.com/churn@" + DIGEST_B)
    for m in k._base(stable):
        validate(m)
    for w in (0, 10, 50, 100):
        for m in k._split(w):
            validate(m)
    validate(deployment("churn", "canary", canary.image, 1))
    bad = deployment("churn", "stable", stable.image, 2)
    bad["spec"]["replicas"] = "two"
    with pytest.raises(InfraError, match="does not match the Kubernetes 1.30 schema"):
        validate(bad)
    typo = ingress("churn", "", "nginx", "churn-canary", 10)
    typo["spec"]["rule"] = []
    with pytest.raises(InfraError):
        validate(typo)
    route = httproute("churn", "churn.example.com", "gw", 10)
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [90, 10]
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(InfraError, match="not a valid HTTPRoute"):
        validate(route)
    assert service("churn", None)["spec"]["selector"] == {"app.kubernetes.io/name": "churn",
                                                          "app.kubernetes.io/managed-by": "leanops"}


def dry(tmp_path: Path, image: str, *extra: str, traffic: str = "ingress-nginx") -> subprocess.CompletedProcess[str]:
    (tmp_path / "leanops.yml").write_text(
        "version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  target: kubernetes\n"
        f"  kubernetes:\n    namespace: ml\n    traffic: {traffic}\n    host: churn.example.com\n")
    return subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", "--image", image, "--dry-run",
                           "--manifests-dir", "k8s", *extra], capture_output=True, text=True, cwd=tmp_path)


def planned(tmp_path: Path) -> list[str]:
    plan = json.loads((tmp_path / "k8s" / "plan.json").read_text())
    return [" ".join(p["command"]).replace(str(tmp_path / "k8s") + "/", "") for p in plan]


@pytest.mark.parametrize("traffic", ["ingress-nginx", "gateway-api"])
def test_kubectl_plan_first_deploy_then_canary(tmp_path: Path, traffic: str) -> None:
    res = dry(tmp_path, "r.example.com/churn@" + DIGEST_A, traffic=traffic)
    assert res.returncode == 0, res.stderr
    assert planned(tmp_path) == [
        "kubectl --namespace ml apply -f 01-stable.yaml",
        "kubectl --namespace ml rollout status deployment/churn-stable --timeout=120s",
        "kubectl --namespace ml apply -f 02-record.yaml",
    ]
    kinds = [d["kind"] for d in yaml.safe_load_all((tmp_path / "k8s" / "01-stable.yaml").read_text())]
    split = ["Ingress", "Ingress"] if traffic == "ingress-nginx" else ["HTTPRoute"]
    assert kinds == ["Deployment", "Service", "Service", "Service", *split]
    res = dry(tmp_path, "r.example.com/churn@" + DIGEST_B, "--steps", "10:60,50:60,100:60", traffic=traffic)
    assert res.returncode == 0, res.stderr
    assert planned(tmp_path) == [
        "kubectl --namespace ml apply -f 01-canary.yaml",
        "kubectl --namespace ml rollout status deployment/churn-canary --timeout=120s",
        "kubectl --namespace ml apply -f 02-weight-10.yaml",
        "kubectl --namespace ml apply -f 03-weight-50.yaml",
        "kubectl --namespace ml apply -f 04-weight-100.yaml",
        "kubectl --namespace ml apply -f 05-promote.yaml",
        "kubectl --namespace ml rollout status deployment/churn-stable --timeout=120s",
        "kubectl --namespace ml apply -f 06-weight-0.yaml",
        "kubectl --namespace ml delete deployment churn-canary --ignore-not-found",
        "kubectl --namespace ml apply -f 07-record.yaml",
    ]
    for f in sorted((tmp_path / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            validate(doc)
    weights = yaml.safe_load((tmp_path / "k8s" / "03-weight-50.yaml").read_text())
    if traffic == "ingress-nginx":
        assert weights["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "50"
    else:
        assert [b["weight"] for b in weights["spec"]["rules"][0]["backendRefs"]] == [50, 50]
    promoted = yaml.safe_load((tmp_path / "k8s" / "05-promote.yaml").read_text())
    assert promoted["spec"]["template"]["spec"]["containers"][0]["image"] == "r.example.com/churn@" + DIGEST_B
    record = json.loads((tmp_path / "k8s" / "record.json").read_text())
    assert record["stable"]["image"].endswith(DIGEST_B) and record["previous"][0]["image"].endswith(DIGEST_A)
    res = subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", "rollback", "--dry-run", "--manifests-dir",
                          "k8s"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert planned(tmp_path) == [
        "kubectl --namespace ml apply -f 01-rollback.yaml",
        "kubectl --namespace ml rollout status deployment/churn-stable --timeout=120s",
        "kubectl --namespace ml apply -f 02-record.yaml",
    ]


def test_kubectl_plan_of_an_abort(tmp_path: Path) -> None:
    k = KubernetesTarget("churn", tmp_path, namespace="ml", dry_run=True)
    k.start_canary(Entry(image="r.example.com/churn@" + DIGEST_B))
    k.set_weight(10)
    k.abort()
    assert [" ".join(p["command"][3:]) for p in k.plan][-2:] == [
        f"apply -f {tmp_path}/03-weight-0.yaml", "delete deployment churn-canary --ignore-not-found"]


# ---------------------------------------------------------------------------- wiring


def test_reusable_workflow_deploys_one_at_a_time_per_environment_without_cache() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/canary-deploy.yml").read_text())
    call = wf[True]["workflow_call"]  # `on` parses as True
    job = wf["jobs"]["deploy"]
    assert job["environment"] == "${{ inputs.environment }}"
    # per environment and model folder (issue 16: two models of a repository deploy side by side)
    assert job["concurrency"] == {"group": "leanops-canary-deploy-${{ inputs.environment }}${{ inputs.working-"
                                           "directory != '.' && format(':{0}', inputs.working-directory) || '' }}",
                                  "cancel-in-progress": False}
    assert job["permissions"] == {"contents": "read", "packages": "read"} and wf["permissions"] == {}
    assert not any("cache" in str(s.get("uses", "")) for s in job["steps"])
    assert set(call["outputs"]) == {"verdict", "stable-digest", "report-file"}
    for name, spec in call["inputs"].items():
        assert "Default:" in spec["description"], name
    action = yaml.safe_load((ROOT / "actions/canary-deploy/action.yml").read_text())
    env = action["runs"]["steps"][1]["env"]
    from leanops.cli import build_parser

    flags = {a.option_strings[0] for a in build_parser()._subparsers._group_actions[0].choices[  # type: ignore[union-attr]
        "canary-deploy"]._actions if a.option_strings}
    for name in action["inputs"]:
        if name not in ("working-directory", "python", "registry-username", "registry-password"):
            assert env[f"LEANOPS_{name.upper().replace('-', '_')}"] == f"${{{{ inputs.{name} }}}}", name
            assert f"--{name}" in flags, name
    assert action["runs"]["steps"][0]["with"]["extras"] == "canary-deploy"
