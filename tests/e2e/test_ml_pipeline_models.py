"""Under act: one repository, two models (issue 16). `leanops init` made the first at the root and the second in
teams/fraud (`leanops init teams/fraud`), with the caller workflows it writes: ml-pipeline.yml and
ml-pipeline-fraud.yml (working-directory: teams/fraud), two workflow runs on GitHub. What two runs share must not
collide: the pull request's comments, the DVC caches, MLflow's models, the images, the deployments and their
routers. (One workflow calling ml-pipeline once per folder, the same run, is walked by
tests/unit/test_workflows.py: act runs the nested reusable workflows of only one of two such calls.)

- a pull request: both validate, train and gate; two sticky comments, one per folder; the second folder is an
  adopter's shape (joblib model, the paired bootstrap and fairness, so its gate needs its own gate inputs);
- a push to the default branch with a tracking server, the local registry and the real engine: two images, two
  canary deployments behind two routers, two champions, two lineage records.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from leanops import cli
from leanops.tools.harness import REGISTRY, ActRun, ensure_base_image

from ..api_recorder import Recorder
from ..conftest import free_port, make_repo
from .test_ml_pipeline import (
    CHURN,
    NUMBER,
    cleanup,
    predict,
    pull_request_event,
    push_event,
    with_joblib,
    with_predictions,
)

pytestmark = pytest.mark.e2e

SECOND = "teams/fraud"  # not models/: the root model's .gitignore ignores its output folder


def scaffold_two(path: Path, first: str, second: str) -> dict[str, str]:
    """`leanops init` at the root, then `leanops init teams/fraud` (one more model), as text."""
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    assert cli.main(["init", str(path), "--data", str(CHURN), "--model-name", first]) == 0
    assert cli.main(["init", str(path / SECOND), "--data", str(CHURN), "--model-name", second]) == 0
    files = {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(path).parts[:1]}
    wf = yaml.safe_load(files[f".github/workflows/ml-pipeline-{second}.yml"])
    assert wf["jobs"]["pipeline"]["with"]["working-directory"] == SECOND
    return files


def workflows(second: str) -> list[str]:
    return [".github/workflows/ml-pipeline.yml", f".github/workflows/ml-pipeline-{second}.yml"]


def adopt(files: dict[str, str], folder: str, change) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Apply a change written for a model's own files to the model in ``folder``."""
    prefix = f"{folder}/"
    mine = {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)}
    return {**{k: v for k, v in files.items() if not k.startswith(prefix)},
            **{prefix + k: v for k, v in change(mine).items()}}


def test_two_model_folders_on_one_pull_request(harness, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    files = adopt(scaffold_two(tmp_path / "scaffold", f"churn-{suffix}", f"fraud-{suffix}"), SECOND,
                  lambda f: with_predictions(with_joblib(f)))
    name = f"example/models-{suffix}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")
    out = ""
    with Recorder() as rec:
        rec.fake.add_pull_request(NUMBER)
        for i, workflow in enumerate(workflows(f"fraud-{suffix}")):
            run = ActRun(repo=repo, event="pull_request", workflow=workflow,
                         event_file=pull_request_event(tmp_path / "event.json", name),
                         env={"GITHUB_API_URL": rec.url}, secrets={"GITHUB_TOKEN": "ghs_e2e_token"})
            res = harness.run(run, log=tmp_path / f"act-{i}.log")
            assert res.returncode == 0, (workflow, (res.stdout + res.stderr)[-10000:])
            out += res.stdout + res.stderr
        comments = rec.fake.comments_on(NUMBER)
    assert "Conflict" not in out and "not found in this workflow run" not in out
    assert out.count("Running stage 'train'") == 2, out[-10000:]
    assert "workdir=teams/fraud" in out
    assert "gate-metrics: 2 gates passed" in out and "gate-metrics: 4 gates passed" in out, out[-10000:]
    by_marker = {c["body"].split("\n", 1)[0]: c["body"] for c in comments}
    assert set(by_marker) == {"<!-- leanops:gate-metrics -->", "<!-- leanops:gate-metrics-teams-fraud -->"}
    assert "## gate-metrics: ✅ passed\n" in by_marker["<!-- leanops:gate-metrics -->"]
    second = by_marker["<!-- leanops:gate-metrics-teams-fraud -->"]
    assert "## gate-metrics: ✅ passed · `teams/fraud`" in second and "demographic_parity_ratio" in second
    artifacts = {p.name for p in (harness.store / "artifacts").iterdir()}
    assert {"leanops-gate-metrics", "leanops-gate-metrics-teams-fraud", "data-validate-report",
            "data-validate-report-teams-fraud", "leanops-gate-inputs-teams-fraud"} <= artifacts


def deployable(files: dict[str, str], folder: str, base: str, port: int) -> dict[str, str]:
    """This test's registry, base images, router port for the model in ``folder`` ("" for the root)."""
    key = f"{folder}/leanops.yml" if folder else "leanops.yml"
    cfg = yaml.safe_load(files[key])
    cfg.setdefault("build-push-image", {}).update({"registry": f"{REGISTRY}/leanops-tests", "base-image": base})
    canary = cfg.setdefault("canary-deploy", {})
    canary.setdefault("router", {}).update({"publish": f"127.0.0.1:{port}", "base-image": base})
    canary["ready-timeout"] = 120
    return {**files, key: yaml.safe_dump(cfg, sort_keys=False)}


def test_two_model_folders_on_one_push_deploy_two_models(harness, mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    base = ensure_base_image()
    suffix = uuid.uuid4().hex[:8]
    models = {"": f"churn-{suffix}", SECOND: f"fraud-{suffix}"}  # also the deployments' and images' names
    ports = {folder: free_port() for folder in models}
    files = scaffold_two(tmp_path / "scaffold", models[""], models[SECOND])
    for folder in models:
        files = deployable(files, folder, base, ports[folder])
    name = f"example/models-{suffix}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")
    try:
        outs = []
        for i, workflow in enumerate(workflows(models[SECOND])):
            run = ActRun(repo=repo, event="push", event_file=push_event(tmp_path / "event.json", name),
                         workflow=workflow, secrets={"GITHUB_TOKEN": "ghs_e2e_token",
                                                     "MLFLOW_TRACKING_URI": mlflow_server})
            res = harness.run(run, log=tmp_path / f"act-{i}.log")
            assert res.returncode == 0, (workflow, (res.stdout + res.stderr)[-10000:])
            outs.append(res.stdout + res.stderr)
        out = "".join(outs)
        assert "Conflict" not in out and "not found in this workflow run" not in out
        client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
        images = set()
        for folder, model in models.items():
            image = re.search(rf"{re.escape(REGISTRY)}/leanops-tests/{model}@sha256:[0-9a-f]{{64}}", out)
            assert image, (model, out[-10000:])
            assert f"lineage: kept with {model} version 1" in out
            version = client.get_model_version_by_alias(model, "champion")
            assert version.version == "1" and version.tags["leanops.image"] == image.group(0)
            assert version.tags["leanops.lineage.canary"] == "promoted"
            images.add(image.group(0))
            assert predict(ports[folder]) == 200, folder
        assert len(images) == 2
        # each model's own first deployment (its own router), not the other's canary
        assert all("first deploy: started as the stable without analysis" in o for o in outs)
        artifacts = {p.name for p in (harness.store / "artifacts").iterdir()}
        assert {"canary-report-production", "canary-report-production-teams-fraud"} <= artifacts
    finally:
        for model in models.values():
            cleanup(model)
