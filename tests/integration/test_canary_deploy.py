"""The analysis against real ``leanops serve`` apps (in process): the same MLflow models the e2e images carry,
real requests, real ``/metrics`` scraped before and after a window, and the verdict the controller would take."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from leanops import serve
from leanops.canary_deploy import analysis as an

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


def traffic(client, n: int, offset: int = 0) -> tuple[an.Snapshot, an.Snapshot]:  # type: ignore[no-untyped-def]
    data = rows(200)
    before = an.Snapshot.parse(client.get("/metrics").text)
    for i in range(n):
        client.post("/predict", json={"records": [data[(offset + i) % len(data)]]})
    return before, an.Snapshot.parse(client.get("/metrics").text)


def verdict(apps, canary: str, thresholds: an.Thresholds | None = None) -> an.Verdict:  # type: ignore[no-untyped-def]
    s = an.window(*traffic(apps["stable"], 150))
    c = an.window(*traffic(apps[canary], 60, offset=37))
    return an.judge(c, s, thresholds or an.Thresholds(min_requests=50, latency_slack_ms=50))


def test_the_same_model_passes(apps) -> None:  # type: ignore[no-untyped-def]
    v = verdict(apps, "healthy")
    assert v.outcome == an.PASS, v.reason
    assert v.canary.requests == 60 and v.canary.errors == 0 and v.distance < 0.2
    assert not math.isnan(v.canary.p95) and set(v.canary.distribution) <= {"class=0", "class=1"}


def test_errors_fail_on_the_error_rate(apps) -> None:  # type: ignore[no-untyped-def]
    v = verdict(apps, "errors")
    assert v.outcome == an.FAIL and v.canary.errors == 30 and v.reason.startswith("error rate 50.0%"), v.reason


def test_shifted_predictions_fail_on_psi_and_on_jensen_shannon(apps) -> None:  # type: ignore[no-untyped-def]
    v = verdict(apps, "shifted")
    assert v.outcome == an.FAIL and v.reason.startswith("prediction psi"), v.reason
    js = verdict(apps, "shifted", an.Thresholds(min_requests=50, latency_slack_ms=50, distance="jensen-shannon",
                                                max_prediction_distance=0.1))
    assert js.outcome == an.FAIL and js.distance > 0.25


def test_too_few_requests_are_inconclusive(apps) -> None:  # type: ignore[no-untyped-def]
    s = an.window(*traffic(apps["stable"], 100))
    c = an.window(*traffic(apps["healthy"], 10))
    # loose limits elsewhere: ten rows alone may differ in their class mix (a failure would beat inconclusive)
    v = an.judge(c, s, an.Thresholds(min_requests=50, latency_slack_ms=1000, max_prediction_distance=10))
    assert v.outcome == an.INCONCLUSIVE and "canary served 10 requests" in v.reason
