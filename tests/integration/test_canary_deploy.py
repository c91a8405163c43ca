"""The analysis against real ``leanops serve`` apps (in process): the same MLflow models the e2e images carry,
real requests, real ``/metrics`` and ``/metrics/samples`` scraped before and after a window, and the verdict the
judge gives with the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from leanops import serve
from leanops.canary_deploy import analysis as an
from leanops.canary_deploy import judge as jd

from ..e2e.test_canary_deploy import BEHAVIOURS, rows, save_model


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    base = tmp_path_factory.mktemp("canary-apps")
    clients = {}
    for name in ("stable", "healthy", "errors", "shifted"):
        path = save_model(base / name, BEHAVIOURS[name])
        state = serve.load_model(serve.ModelState(model_dir=Path(path), name="churn", version=name))
        clients[name] = TestClient(serve.create_app(state))
    yield clients
    for c in clients.values():
        c.close()


def scrape(client, known: list) -> an.Snapshot:  # type: ignore[no-untyped-def]
    snap = an.Snapshot.parse(client.get("/metrics").text)
    snap.add_samples(client.get("/metrics/samples", params={"since": known[-1][0] if known else 0}).text, known)
    return snap


def traffic(client, n: int, offset: int = 0) -> tuple[an.Snapshot, an.Snapshot]:  # type: ignore[no-untyped-def]
    data = rows(200)
    known: list = []
    before = scrape(client, known)
    for i in range(n):
        client.post("/predict", json={"records": [data[(offset + i) % len(data)]]})
    return before, scrape(client, known)


def verdict(apps, canary: str, thresholds: jd.Thresholds | None = None) -> jd.Verdict:  # type: ignore[no-untyped-def]
    s = an.window(*traffic(apps["stable"], 300))
    c = an.window(*traffic(apps[canary], 100, offset=37))
    return jd.judge(c, s, thresholds or jd.Thresholds())


def test_the_same_model_passes(apps) -> None:  # type: ignore[no-untyped-def]
    v = verdict(apps, "healthy")
    assert v.outcome == jd.PASS, v.reason
    assert v.canary.requests == 100 and v.canary.errors == 0 and v.canary.latency_source == "samples"
    assert len(v.canary.latencies) == 100 and set(v.canary.distribution) <= {"class=0", "class=1"}


def test_errors_fail_on_the_error_rate_at_once(apps) -> None:  # type: ignore[no-untyped-def]
    v = verdict(apps, "errors")
    assert v.outcome == jd.FAIL and v.gross and v.canary.errors == 50, v.reason
    assert v.reason.startswith("error rate 50.00%"), v.reason


def test_shifted_predictions_fail_on_psi_and_on_jensen_shannon(apps) -> None:  # type: ignore[no-untyped-def]
    v = verdict(apps, "shifted")
    assert v.outcome == jd.FAIL and v.metric("predictions").verdict == jd.FAIL and not v.gross, v.reason
    js = verdict(apps, "shifted", jd.Thresholds(distance="jensen-shannon", max_prediction_distance=0.1))
    assert js.outcome == jd.FAIL and js.metric("predictions").effect > 0.25


def test_too_few_requests_are_inconclusive(apps) -> None:  # type: ignore[no-untyped-def]
    s = an.window(*traffic(apps["stable"], 100))
    c = an.window(*traffic(apps["healthy"], 10))
    v = jd.judge(c, s, jd.Thresholds())
    assert v.outcome == jd.INCONCLUSIVE and "canary: 10 latency samples" in v.reason, v.reason
