"""`leanops serve` as a real process on loopback: ready after loading, predictions over HTTP equal MLflow's in
process, JSON lines of inputs and predictions for the drift check, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from leanops.serve import model_digest

from ..conftest import free_port, wait_for_http
from ..unit.test_serve import churn_rows, expected, save_churn_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_churn_model(tmp_path_factory.mktemp("serve-int") / "model")


def test_serve_process_end_to_end(model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "predictions.jsonl"
    env = dict(os.environ, LEANOPS_MODEL_DIR=str(model_dir), LEANOPS_MODEL_SHA256=model_digest(model_dir),
               LEANOPS_MODEL_NAME="churn-classifier", LEANOPS_MODEL_VERSION="3", LEANOPS_PORT=str(port),
               LEANOPS_LOG_PREDICTIONS=str(log))
    proc = subprocess.Popen([sys.executable, "-m", "leanops", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(f"{base}/ready", alive=lambda: proc.poll() is None, timeout=90), (
            proc.stderr.read() if proc.stderr and proc.poll() is not None else "not ready")
        rows = churn_rows(25)
        records = json.loads(rows.to_json(orient="records"))
        req = urllib.request.Request(f"{base}/predict", data=json.dumps({"records": records}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.headers["X-Model-Version"] == "3"
            predictions = json.loads(resp.read())["predictions"]
        assert predictions == expected(model_dir, rows)
        bad = urllib.request.Request(f"{base}/predict", data=b'{"records": [{"contract": 1}]}',
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=10)
        assert err.value.code == 422
        fields = {p["field"] for p in json.loads(err.value.read())["detail"]}
        assert "contract" in fields and "tenure_months" in fields
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert len(lines) == 1 and lines[0]["inputs"] == records and lines[0]["predictions"] == predictions
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code in (0, -signal.SIGTERM)  # uvicorn shuts down gracefully, then re-raises the signal
