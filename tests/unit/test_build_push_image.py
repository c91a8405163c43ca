"""`leanops build-push-image` without an engine: inputs, defaults, tags, the model from a path or MLflow's
registry (a real sqlite store), the locked requirements, and the one-line errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from leanops import models, serve
from leanops.build_push_image import image as bpi_image
from leanops.build_push_image import model as bpi_model
from leanops.build_push_image import plan as bpi_plan
from leanops.errors import BadInput

from .test_serve import churn_rows, save_churn_model

LEANOPS_YML = "version: 1\nmodel:\n  name: churn-classifier\n"


def args(**kw: object) -> argparse.Namespace:
    base = dict(config=None, model_uri="", registry="", image="", version="", base_image="", dockerfile="",
                tracking_uri="", push=True)
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_runner: None) -> Path:
    (tmp_path / "leanops.yml").write_text(LEANOPS_YML)
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_REPOSITORY", "GITHUB_TOKEN", "GITHUB_ACTOR", "LEANOPS_REGISTRY_USERNAME",
                 "LEANOPS_REGISTRY_PASSWORD", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_defaults_ghcr_of_the_repository_with_the_job_token(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "Example/Caller")
    monkeypatch.setenv("GITHUB_ACTOR", "octo")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_x")
    p = bpi_plan.plan(args())
    assert p.model_uri == "models:/churn-classifier@challenger"
    assert p.repository == "ghcr.io/example/caller/churn-classifier" and p.registry_host == "ghcr.io"
    assert (p.username, p.password) == ("octo", "ghs_x")
    assert p.dockerfile == bpi_image.kit_root() / "templates" / "Dockerfile"
    other = bpi_plan.plan(args(registry="https://registry.example.com:5000/ml/", image="Churn", version="v1.2.3"))
    assert other.repository == "registry.example.com:5000/ml/churn" and other.version == "1.2.3"
    assert other.password == ""  # the job token goes to ghcr.io only


def test_bad_inputs_are_one_line_exit_2(project: Path) -> None:
    with pytest.raises(BadInput, match="GITHUB_REPOSITORY is not set"):
        bpi_plan.plan(args())
    with pytest.raises(BadInput, match="not a semantic version"):
        bpi_plan.plan(args(registry="r.example.com/x", version="latest"))
    with pytest.raises(BadInput, match="not a valid image repository"):
        bpi_plan.plan(args(registry="r.example.com/x", image="bad image"))
    res = subprocess.run([sys.executable, "-m", "leanops", "build-push-image", "--model-uri", "nowhere",
                          "--registry", "127.0.0.1:5000/x"], capture_output=True, text=True, cwd=project)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "leanops build-push-image: error: model-uri: model directory nowhere not found; expected an MLflow model "
        "directory or models:/NAME@ALIAS"]


def test_tags(project: Path) -> None:
    p = bpi_plan.plan(args(registry="r.example.com/x", version="2.0.1"))
    model = bpi_model.Model(path=project, name="churn-classifier", version="7")
    assert bpi_image.tags_for(p, model, "0123456789abcdef") == ["sha-0123456", "model-7", "2.0.1"]


def test_model_from_a_path_needs_a_signature(project: Path) -> None:
    p = bpi_plan.plan(args(registry="r.example.com/x", model_uri="m"))
    save_churn_model(project / "m")
    model = bpi_model.fetch_model(p, project / "ctx" / "model", "", None, "churn-classifier")
    assert model.sha256 == models.model_digest(project / "m") == serve.model_digest(project / "ctx" / "model")
    assert model.version == f"sha256-{model.sha256[:12]}" and model.name == "churn-classifier"
    save_churn_model(project / "bare", signature=False)
    p = bpi_plan.plan(args(registry="r.example.com/x", model_uri="bare"))
    with pytest.raises(BadInput, match="signature missing"):
        bpi_model.fetch_model(p, project / "ctx2" / "model", "", None, "x")


def test_model_from_the_registry_alias(project: Path) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    uri = f"sqlite:///{project / 'mlflow.db'}"
    save_churn_model(project / "m")
    model_obj = mlflow.sklearn.load_model(str(project / "m"))
    x = churn_rows(50)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.create_experiment("churn", artifact_location=(project / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.set_tag("leanops.dvc_lock_sha256", "abc123")
        info = mlflow.sklearn.log_model(model_obj, name="model", signature=infer_signature(x, model_obj.predict(x)),
                                        pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
    from leanops.train_with_cache.registry import logged_digest

    digest = logged_digest(info.model_uri, uri)  # what train-with-cache records on the version it registers
    # a version without the recorded digest, and one whose digest does not match its files: refused, exit 2
    bare = mlflow.register_model(info.model_uri, "churn-classifier")
    forged = mlflow.register_model(info.model_uri, "churn-classifier", tags={models.TAG_SHA256: "0" * 64})
    for version, why in ((bare.version, "no leanops.model_sha256 tag"), (forged.version, "do not match the digest")):
        p = bpi_plan.plan(args(registry="r.example.com/x", model_uri=f"models:/churn-classifier/{version}"))
        with pytest.raises(BadInput, match=why):
            bpi_model.fetch_model(p, project / f"ctx-{version}" / "model", uri, None, "")
    mv = mlflow.register_model(info.model_uri, "churn-classifier", tags={models.TAG_SHA256: digest})
    mlflow.MlflowClient().set_registered_model_alias("churn-classifier", "challenger", mv.version)
    p = bpi_plan.plan(args(registry="r.example.com/x"))
    model = bpi_model.fetch_model(p, project / "ctx" / "model", uri, None, "")
    assert model.sha256 == digest
    assert (model.name, model.version, model.run_id, model.data_hash) == (
        "churn-classifier", str(mv.version), run.info.run_id, "abc123")
    assert (project / "ctx" / "model" / "MLmodel").is_file()
    assert serve.read_signature(project / "ctx" / "model")[0].name == "contract"
    p = bpi_plan.plan(args(registry="r.example.com/x", model_uri="models:/churn-classifier@champion"))
    with pytest.raises(BadInput, match="no version of churn-classifier has the alias 'champion'"):
        bpi_model.fetch_model(p, project / "ctx2" / "model", uri, None, "")


def test_requirements_are_locked_with_hashes(tmp_path: Path) -> None:
    text = bpi_image.requirements(tmp_path / "requirements.txt").read_text()
    for name in ("scikit-learn==", "fastapi==", "uvicorn==", "prometheus-client==", "mlflow-skinny==", "pandas=="):
        assert name in text, name
    assert "--hash=sha256:" in text and "\nleanops" not in text and "-e " not in text
    assert "\nmlflow==" not in text and "great-expectations" not in text


def test_the_publish_path_restores_no_cache_and_alone_may_write_packages() -> None:
    import yaml

    root = bpi_image.kit_root()
    action = yaml.safe_load((root / "actions/build-push-image/action.yml").read_text())
    setup, run = action["runs"]["steps"]
    from leanops.tools import release

    (kit_ref,) = {r.ref for r in release.find_self_refs(root)}
    assert setup["uses"] == f"leanops/leanops@{kit_ref}" and setup["with"]["extras"] == "build-push-image"
    assert setup["with"]["cache"] == "false"
    assert run["run"] == "leanops build-push-image" and all(k.startswith(("LEANOPS_", "DO_NOT", "MLFLOW_"))
                                                            for k in run["env"])
    workflow_text = (root / ".github/workflows/build-push-image.yml").read_text()
    assert "actions/cache" not in workflow_text and "actions/cache" not in yaml.safe_dump(action)
    job = yaml.safe_load(workflow_text)["jobs"]["image"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    # elsewhere, packages: write only on a job that calls this workflow (a caller must grant what it asks for)
    granting = []
    for path in (root / ".github/workflows").glob("*.yml"):
        if path.name == "build-push-image.yml":
            continue
        for name, other in (yaml.safe_load(path.read_text()).get("jobs") or {}).items():
            if (other.get("permissions") or {}).get("packages") == "write":
                granting.append((path.name, name, str(other.get("uses", "")).split("@")[0]))
    assert all(uses.endswith("/.github/workflows/build-push-image.yml") for _, _, uses in granting), granting
