"""`leanops serve` in process: FastAPI's TestClient on the churn example's real model, saved as an MLflow model."""

from __future__ import annotations

import functools
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from leanops import serve

ROOT = Path(__file__).resolve().parents[2]
CHURN = ROOT / "examples" / "churn"
FEATURES = ["contract", "payment_method", "internet_service", "tenure_months", "monthly_charges", "total_charges",
            "support_calls", "senior_citizen"]


def churn_rows(n: int = 50):  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.read_csv(CHURN / "data" / "raw" / "churn.csv", nrows=n)[FEATURES]


@functools.cache
def churn_model_bytes() -> bytes:
    """The example's pickled model, trained once per session by its own prepare and train stages.

    It is a DVC output (not committed), so a fresh clone has none: the stages run in a temporary copy.
    """
    work = Path(tempfile.mkdtemp(prefix="leanops-churn-model-"))
    try:
        for part in ("src", "params.yaml", "data/raw"):
            src, dst = CHURN / part, work / part
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
        for stage in ("prepare", "train"):
            subprocess.run([sys.executable, f"src/{stage}.py"], cwd=work, check=True, capture_output=True)
        return (work / "models" / "model.pkl").read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def save_churn_model(dst: Path, *, signature: bool = True) -> Path:
    """The example's pickled scikit-learn Pipeline as an MLflow model directory (with its signature)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    model = pickle.loads(churn_model_bytes())  # noqa: S301 - the example's own artifact
    x = churn_rows(200)
    mlflow.sklearn.save_model(model, str(dst), signature=infer_signature(x, model.predict(x)) if signature else None,
                              pip_requirements=["scikit-learn", "pandas"], serialization_format="cloudpickle")
    return dst


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_churn_model(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def state(model_dir: Path) -> serve.ModelState:
    return serve.load_model(serve.ModelState(model_dir=model_dir, name="churn-classifier", version="7"))


@pytest.fixture
def client(state: serve.ModelState, tmp_path: Path):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    app = serve.create_app(state, log_predictions=str(tmp_path / "log" / "predictions.jsonl"))
    with TestClient(app) as c:
        yield c


def expected(model_dir: Path, frame) -> list:  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    return [v.item() if hasattr(v, "item") else v for v in mlflow.pyfunc.load_model(str(model_dir)).predict(frame)]


def test_predict_records_and_columnar_match_mlflow_in_process(client, model_dir: Path) -> None:
    rows = churn_rows(40)
    want = expected(model_dir, rows)
    records = json.loads(rows.to_json(orient="records"))
    res = client.post("/predict", json={"records": records})
    assert res.status_code == 200, res.text
    assert res.json()["predictions"] == want
    assert res.headers["X-Model-Version"] == "7"
    assert client.post("/predict", json=records).json()["predictions"] == want
    columns = {k: list(v.values()) for k, v in json.loads(rows.to_json(orient="columns")).items()}
    assert client.post("/predict", json={"columns": columns}).json()["predictions"] == want
    split = json.loads(rows.to_json(orient="split", index=False))
    assert client.post("/predict", json={"dataframe_split": split}).json()["predictions"] == want


def test_bad_fields_are_named_in_a_422(client) -> None:
    records = json.loads(churn_rows(3).to_json(orient="records"))
    del records[0]["tenure_months"]
    records[1]["contract"] = 12
    records[2]["monthly_charges"] = "a lot"
    res = client.post("/predict", json={"records": records})
    assert res.status_code == 422
    problems = {p["field"]: p for p in res.json()["detail"]}
    assert set(problems) == {"tenure_months", "contract", "monthly_charges"}
    assert problems["tenure_months"]["error"] == "missing" and problems["tenure_months"]["rows"] == [0]
    assert problems["contract"]["error"] == "expected a string (string)"
    assert problems["monthly_charges"]["rows"] == [2]
    assert client.post("/predict", json={"nothing": 1}).status_code == 422
    assert client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code \
        == 422
    assert client.post("/predict", json={"columns": {"a": [1], "b": [1, 2]}}).status_code == 422


def test_health_ready_metrics_and_prediction_log(client, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["version"] == "7"
    records = json.loads(churn_rows(5).to_json(orient="records"))
    preds = client.post("/predict", json={"records": records}).json()["predictions"]
    client.post("/predict", json={"records": [{}]})
    res = client.get("/metrics")
    assert res.headers["X-Model-Version"] == "7"
    families = {f.name: f for f in text_string_to_metric_families(res.text)}
    samples = [s for f in families.values() for s in f.samples]
    assert all(s.labels.get("model_name") == "churn-classifier" and s.labels.get("model_version") == "7"
               for s in samples)
    by_status = {s.labels["status"]: s.value for s in families["leanops_requests"].samples
                 if s.name == "leanops_requests_total" and s.labels["path"] == "/predict"}
    assert by_status == {"200": 1.0, "422": 1.0}
    assert any(s.name == "leanops_request_duration_seconds_bucket" for s in samples)
    classes = {s.labels["class"]: s.value for s in families["leanops_prediction_class"].samples
               if s.name.endswith("_total")}
    assert sum(classes.values()) == 5 and set(classes) == {str(p) for p in preds}
    lines = [json.loads(x) for x in (tmp_path / "log" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["inputs"] == records and lines[0]["predictions"] == preds
    assert lines[0]["model_version"] == "7"


def test_not_ready_until_loaded(model_dir: Path) -> None:
    from fastapi.testclient import TestClient

    state = serve.ModelState(model_dir=model_dir, columns=serve.read_signature(model_dir))
    with TestClient(serve.create_app(state)) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/ready").status_code == 503
        assert c.post("/predict", json=[{"a": 1}]).status_code == 503


def test_digest_covers_every_file(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    digest = serve.model_digest(model_dir)
    assert serve.verify(model_dir, digest) == digest
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    assert serve.model_digest(copy) == digest
    pkl = next(copy.glob("*.pkl"))
    pkl.write_bytes(pkl.read_bytes() + b"\0")
    with pytest.raises(serve.BadInput, match="do not match the digest recorded at build time"):
        serve.verify(copy, digest)
    (copy / "extra.txt").write_text("x")
    assert serve.model_digest(copy) != digest


def test_serve_refuses_a_tampered_model_with_one_line(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = shutil.copytree(model_dir, tmp_path / "copy")
    digest = serve.model_digest(copy)
    pkl = next(copy.glob("*.pkl"))
    pkl.write_bytes(pkl.read_bytes()[:-1] + b"\1")
    res = subprocess.run([sys.executable, "-m", "leanops", "serve", "--model-dir", str(copy), "--model-sha256", digest,
                          "--port", "0"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "do not match the digest recorded at build time" in lines[0], res.stderr


def test_signature_missing_is_bad_input(tmp_path: Path) -> None:
    bare = save_churn_model(tmp_path / "bare", signature=False)
    with pytest.raises(serve.BadInput, match="signature missing"):
        serve.read_signature(bare)
    with pytest.raises(serve.BadInput, match="no MLmodel file"):
        serve.read_signature(tmp_path)


def test_probes_and_metrics_answer_while_every_worker_thread_predicts(model_dir: Path) -> None:
    """A saturated server (more slow predictions in flight than worker threads) still answers /health, /ready
    and /metrics: the canary's analysis scrapes the stable under full traffic."""
    import threading

    from fastapi.testclient import TestClient

    release = threading.Event()
    started = threading.Semaphore(0)

    class Blocking:  # a model whose predictions take until `release` is set
        def predict(self, frame):  # type: ignore[no-untyped-def]
            started.release()
            release.wait(60)
            return [0] * len(frame)

    state = serve.ModelState(model_dir=model_dir, columns=serve.read_signature(model_dir), model=Blocking())
    record = json.loads(churn_rows(1).to_json(orient="records"))
    with TestClient(serve.create_app(state)) as c:
        busy = [threading.Thread(target=c.post, args=("/predict",), kwargs={"json": record}) for _ in range(48)]
        for t in busy:
            t.start()
        try:
            for _ in range(40):  # anyio's default worker pool: 40 threads, all now inside predict
                assert started.acquire(timeout=30), "the predictions did not start"
            answers: dict[str, int] = {}

            def probe() -> None:
                for path in ("/health", "/ready", "/metrics"):
                    answers[path] = c.get(path).status_code

            prober = threading.Thread(target=probe)
            prober.start()
            prober.join(20)
            assert answers == {"/health": 200, "/ready": 200, "/metrics": 200}, answers
        finally:
            release.set()
            for t in busy:
                t.join(60)


# ---------------------------------------------------------------------------- limits and exposure (issue 13)


def test_row_count_is_checked_before_rows_are_built_in_every_form() -> None:
    big = 10_001
    for body in ({"columns": {"a": [0] * big}}, {"inputs": {"a": [0] * big, "b": [1] * big}},
                 {"dataframe_split": {"columns": ["a"], "data": [[0]] * big}},
                 {"records": [{"a": 0}] * big}, [{"a": 0}] * big):
        with pytest.raises(serve.InvalidInput) as err:
            serve.to_records(body)
        assert err.value.problems == [{"field": "records", "error": "10001 rows; at most 10000 per request"}]
    with pytest.raises(serve.InvalidInput, match="6 rows; at most 5 per request"):
        serve.to_records({"columns": {"a": [0] * 6}}, max_rows=5)
    assert len(serve.to_records({"columns": {"a": [0] * 5}}, max_rows=5)) == 5


def test_body_over_the_limit_is_a_413_in_one_line(state: serve.ModelState) -> None:
    from fastapi.testclient import TestClient

    records = json.loads(churn_rows(3).to_json(orient="records"))
    body = json.dumps({"records": records}).encode()
    with TestClient(serve.create_app(state, max_body_bytes=len(body) - 1)) as c:
        res = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert res.status_code == 413
        assert res.json() == {"detail": [{"field": "body",
                                          "error": f"{len(body)} bytes; at most {len(body) - 1} per request"}]}
        chunked = c.post("/predict", content=iter([body[:10], body[10:]]), headers={"content-type": "application/json"})
        assert chunked.status_code == 413 and "at most" in chunked.json()["detail"][0]["error"]
    with TestClient(serve.create_app(state, max_body_bytes=len(body))) as c:
        assert c.post("/predict", content=body, headers={"content-type": "application/json"}).status_code == 200


def test_no_openapi_schema_and_no_exception_text_on_ready(model_dir: Path) -> None:
    from fastapi.testclient import TestClient

    state = serve.ModelState(model_dir=model_dir, columns=serve.read_signature(model_dir),
                             error="OSError: /secret/path/model.pkl: permission denied")
    with TestClient(serve.create_app(state)) as c:
        for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
            assert c.get(path).status_code == 404, path
        res = c.get("/ready")
        assert res.status_code == 503 and res.json() == {"status": "loading"}
        assert "secret" not in res.text


def test_deeply_nested_json_is_a_422_not_a_500(client) -> None:
    body = b"[" * 200_000 + b"]" * 200_000  # 400 KB, under the size limit; Python's parser gives up on the depth
    res = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 422 and res.json() == {"detail": [{"field": "body", "error": "not valid JSON"}]}
