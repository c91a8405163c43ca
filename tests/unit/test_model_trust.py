"""Models are verified by digest before they are loaded (issue 13, path 5).

The digest covers every file of the model directory (``__pycache__`` too: bytecode runs); the model server
refuses to start without a recorded digest unless told ``--allow-unverified``; gate-metrics loads a registry
model only after its files matched the digest train-with-cache recorded on the version.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leanops import models
from leanops.errors import BadInput
from leanops.gate_metrics import measure

from .test_serve import save_churn_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_churn_model(tmp_path_factory.mktemp("trust") / "model")


def test_the_digest_covers_bytecode_but_not_the_registry_bookkeeping(model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(model_dir, tmp_path / "copy"))
    digest = models.model_digest(copy)
    (copy / "code" / "__pycache__").mkdir(parents=True)
    (copy / "code" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert models.model_digest(copy) != digest
    shutil.rmtree(copy / "code")
    (copy / models.REGISTRY_META).write_text("model_name: m\nmodel_version: '7'\n")
    assert models.model_digest(copy) == digest


def serve(model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leanops", "serve", "--model-dir", str(model), "--port", "0", *args],
                          capture_output=True, text=True, timeout=120)


def test_serve_refuses_a_model_without_a_recorded_digest(model_dir: Path) -> None:
    res = serve(model_dir)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no recorded digest; expected --model-sha256" in lines[0], res.stderr


def test_gate_metrics_refuses_to_load_an_unverified_registry_model(model_dir: Path, tmp_path: Path) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.create_experiment("m", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifacts(str(model_dir), "model")
    source = f"runs:/{run.info.run_id}/model"
    bare = mlflow.register_model(source, "m")
    good = mlflow.register_model(source, "m", tags={models.TAG_SHA256: models.model_digest(model_dir)})
    with pytest.raises(BadInput, match="no leanops.model_sha256 tag"):
        measure.load_model(f"models:/m/{bare.version}", uri, None)
    predict, what = measure.load_model(f"models:/m/{good.version}", uri, None)
    assert callable(predict) and what == f"models:/m/{good.version}"
