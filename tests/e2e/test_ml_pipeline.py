"""Under act: a throwaway repository made by `leanops init` from the example dataset passes ml-pipeline.yml

- on a pull request: plan, validate, train (the starter stage), gate (one sticky comment on the API recorder);
  the deployment jobs stay off;
- on a push to the default branch with a tracking server (the `mlflow_server` fixture), the local registry and
  the real engine: the image is built and pushed by digest, the canary's first deploy starts it behind the
  router, the candidate becomes the champion and the lineage record is kept with the model version.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from leanops import cli
from leanops.tools.harness import REGISTRY, ActRun, ensure_base_image

from ..api_recorder import Recorder
from ..conftest import ROOT, free_port, make_repo
from ..services import remove_images
from .test_canary_deploy import cleanup_deployment

pytestmark = pytest.mark.e2e

NUMBER = 7
CHURN = ROOT / "examples/churn/data/raw/churn.csv"


def scaffold(path: Path, model: str = "churn") -> dict[str, str]:
    """The files `leanops init --data` writes, as text (make_repo commits them)."""
    assert cli.main(["init", str(path), "--data", str(CHURN), "--model-name", model]) == 0
    return {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def pull_request_event(path: Path, full_name: str) -> Path:
    repo = {"full_name": full_name, "default_branch": "main"}
    path.write_text(json.dumps({
        "action": "opened", "number": NUMBER, "repository": repo,
        "pull_request": {"number": NUMBER, "head": {"ref": "first-model", "repo": repo},
                         "base": {"ref": "main", "repo": repo}},
    }))
    return path


def test_a_repository_made_by_init_passes_ml_pipeline_on_a_pull_request(harness, tmp_path: Path) -> None:
    files = scaffold(tmp_path / "scaffold")
    # a repository name of its own: the DVC cache key starts with a digest of it, so no earlier run can hit
    name = f"example/churn-{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")

    with Recorder() as rec:
        rec.fake.add_pull_request(NUMBER)
        run = ActRun(repo=repo, event="pull_request", event_file=pull_request_event(tmp_path / "event.json", name),
                     workflow=".github/workflows/ml-pipeline.yml", env={"GITHUB_API_URL": rec.url},
                     secrets={"GITHUB_TOKEN": "ghs_e2e_token"})
        res = harness.run(run, log=tmp_path / "act.log")
        out = res.stdout + res.stderr
        comments = rec.fake.comments_on(NUMBER)

    assert res.returncode == 0, out[-8000:]
    assert "ml-pipeline: tracking=embedded deploy=false" in out
    # validate: the starter suite profiled by init passes on the data it came from
    assert "expectations/churn.json" in out and "expectation(s) of" not in out
    # train: the starter stage ran under DVC, registered version 1 in the embedded store
    assert "Running stage 'train'" in out, out[-8000:]
    # gate: the starter gates of leanops.yml, against no champion yet, one comment on the pull request
    assert "gate-metrics: 2 gates passed" in out
    assert len(comments) == 1 and "## gate-metrics: ✅ passed" in comments[0]["body"]
    assert re.search(r"ml-pipeline/plan\s*\] 🏁  Job succeeded", out)
    assert re.search(r"gate-metrics/gate\s*\] 🏁  Job succeeded", out)
    # no deployment from a pull request
    assert not re.search(r"ml-pipeline/(recorded image|release)\s*\]", out)
    assert "build-push-image/image" not in out and "leanops lineage" not in out


def with_predictions(files: dict[str, str]) -> dict[str, str]:
    """What an adopter adds to the starter project: the training stage also writes per-example predictions
    (with the sensitive column) and its test rows, and leanops.yml turns on the paired bootstrap and fairness."""
    train = files["src/train.py"]
    anchor = "    write(METRICS,"
    assert anchor in train
    extra = (
        "    rows = df.loc[x_test.index]\n"
        "    for folder in ('data/eval', 'metrics'):\n"
        "        (ROOT / folder).mkdir(parents=True, exist_ok=True)\n"
        "    rows.to_csv(ROOT / 'data/eval/test.csv', index=False)\n"
        "    pd.DataFrame({'customer_id': rows['customer_id'], 'y_true': (y_test == positive).astype(int),\n"
        "                  'y_pred': (pred == positive).astype(int), 'y_score': score.round(6),\n"
        "                  'gender': rows['gender']}).to_csv(ROOT / 'metrics/predictions.csv', index=False)\n"
    )
    files["src/train.py"] = train.replace(anchor, extra + anchor, 1)
    dvc = yaml.safe_load(files["dvc.yaml"])
    dvc["stages"]["train"]["outs"] += [{"metrics/predictions.csv": {"cache": False}}, "data/eval/test.csv"]
    files["dvc.yaml"] = yaml.safe_dump(dvc, sort_keys=False)
    cfg = yaml.safe_load(files["leanops.yml"])
    cfg["gate-metrics"]["bootstrap"] = {"predictions": "metrics/predictions.csv", "iterations": 200,
                                        "evaluation-data": "data/eval/test.csv"}
    cfg["gate-metrics"]["fairness"] = {"sensitive-column": "gender", "min-demographic-parity-ratio": 0.3,
                                       "max-equalized-odds-difference": 0.6}
    files["leanops.yml"] = yaml.safe_dump(cfg, sort_keys=False)
    return files


PICKLED = "write(MODEL, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))"


def with_joblib(files: dict[str, str]) -> dict[str, str]:
    """The starter stage saving its model with `joblib.dump` (scikit-learn's own recommended persistence)."""
    assert PICKLED in files["src/train.py"]
    files["src/train.py"] = files["src/train.py"].replace(
        PICKLED, "import joblib\n    MODEL.parent.mkdir(parents=True, exist_ok=True)\n    joblib.dump(model, MODEL)")
    return files


def test_an_adopters_pull_request_joblib_bootstrap_and_fairness_without_a_tracking_server(
        harness, tmp_path: Path) -> None:
    """An adopter's shape of the init project, one act run for two issues' reports:

    - issue 16: the stage saves its model with `joblib.dump` ("not a pickled model (UnpicklingError: STACK_GLOBAL
      requires str)"): train-with-cache reads the file from its content and registers it;
    - issue 15: with gate-metrics.bootstrap.predictions and fairness set, the gate job (neither the DVC outputs
      nor the training job's embedded store) read "predictions.csv not found"; now training ships them."""
    files = with_predictions(with_joblib(scaffold(tmp_path / "scaffold")))
    name = f"example/churn-{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")
    with Recorder() as rec:
        rec.fake.add_pull_request(NUMBER)
        run = ActRun(repo=repo, event="pull_request", event_file=pull_request_event(tmp_path / "event.json", name),
                     workflow=".github/workflows/ml-pipeline.yml", env={"GITHUB_API_URL": rec.url},
                     secrets={"GITHUB_TOKEN": "ghs_e2e_token"})
        res = harness.run(run, log=tmp_path / "act.log")
        out = res.stdout + res.stderr
        comments = rec.fake.comments_on(NUMBER)
    assert res.returncode == 0, out[-8000:]
    assert "ml-pipeline: tracking=embedded deploy=false" in out
    # the file is models/model.pkl by name, a joblib file by content: read, logged and registered
    assert "STACK_GLOBAL" not in out and "is not a model" not in out
    assert re.search(r"model: models/model\.pkl \(pickle\)", out), out[-8000:]
    assert re.search(r"registered \S+ version 1 with alias challenger", out)
    assert "gate inputs for gate-metrics: metrics/predictions.csv, data/eval/test.csv" in out, out[-8000:]
    assert "candidate predictions: metrics/predictions.csv (train-with-cache's gate inputs)" in out
    assert "predictions.csv not found" not in out
    assert "gate-metrics: 4 gates passed" in out, out[-8000:]
    body = comments[-1]["body"]
    assert "demographic_parity_ratio" in body and "equalized_odds_difference" in body


def push_event(path: Path, full_name: str) -> Path:
    path.write_text(json.dumps({"ref": "refs/heads/main", "repository": {"full_name": full_name,
                                                                         "default_branch": "main"}}))
    return path


def predict(port: int) -> int:
    """One prediction of a churn record through the canary's router on ``port``: the HTTP status."""
    body = json.dumps({"records": [{"tenure_months": 3, "monthly_charges": 95.0, "total_charges": 285.0,
                                    "contract": "month-to-month", "payment_method": "electronic-check",
                                    "internet_service": "fiber", "support_calls": 4, "senior_citizen": 0,
                                    "gender": "female"}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.status)


def cleanup(name: str) -> None:
    """The canary's containers, network and state volume, and this test's images (the engine is shared)."""
    cleanup_deployment(name)
    remove_images(f"{REGISTRY}/leanops-tests/{name}")


def test_a_push_to_the_default_branch_deploys_promotes_and_records(harness, mlflow_server: str,
                                                                   tmp_path: Path) -> None:
    from mlflow import MlflowClient

    base = ensure_base_image()
    model = f"churn-{uuid.uuid4().hex[:8]}"  # also the deployment's name and the image's
    files = scaffold(tmp_path / "scaffold", model=model)
    port = free_port()
    # this test's registry, base images, router port (the template may or may not have these sections)
    cfg = yaml.safe_load(files["leanops.yml"])
    cfg.setdefault("build-push-image", {}).update({"registry": f"{REGISTRY}/leanops-tests", "base-image": base})
    canary = cfg.setdefault("canary-deploy", {})
    canary.setdefault("router", {}).update({"publish": f"127.0.0.1:{port}", "base-image": base})
    canary["ready-timeout"] = 120
    files["leanops.yml"] = yaml.safe_dump(cfg, sort_keys=False)
    name = f"example/{model}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")
    try:
        run = ActRun(repo=repo, event="push", event_file=push_event(tmp_path / "event.json", name),
                     workflow=".github/workflows/ml-pipeline.yml",
                     secrets={"GITHUB_TOKEN": "ghs_e2e_token", "MLFLOW_TRACKING_URI": mlflow_server})
        res = harness.run(run, log=tmp_path / "act.log")
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-10000:]
        assert "ml-pipeline: tracking=server deploy=true" in out
        assert "Running stage 'train'" in out and "gate-metrics: 2 gates passed" in out
        image = re.search(rf"{re.escape(REGISTRY)}/leanops-tests/{model}@sha256:[0-9a-f]{{64}}", out)
        assert image, out[-10000:]
        assert "first deploy: started as the stable without analysis" in out
        assert "alias champion -> version 1" in out
        assert f"lineage: kept with {model} version 1" in out

        client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
        version = client.get_model_version_by_alias(model, "champion")
        assert version.version == "1"
        assert version.tags["leanops.image"] == image.group(0)
        assert version.tags["leanops.lineage.canary"] == "promoted"
        record = client.list_artifacts(version.run_id, "lineage")
        assert [f.path for f in record] == [version.tags["leanops.lineage.record"]]
        rec = json.loads(Path(client.download_artifacts(version.run_id, record[0].path, str(tmp_path / "dl")))
                         .read_text())
        assert rec["gate"]["passed"] is True and [g["metric"] for g in rec["gate"]["gates"]] == ["roc_auc", "f1"]
        assert rec["validation"]["success"] is True and rec["validation"]["evaluated"] > 0
        assert rec["data"]["files"]["data/raw/churn.csv"] and rec["data"]["dvc_lock_sha256"]
        assert (rec["image"]["ref"], rec["canary"]["verdict"]) == (image.group(0), "promoted")
        assert rec["training"]["params"]["train.target"] == "churned"
        assert predict(port) == 200  # the model serves behind the canary's router
    finally:
        cleanup(model)
