"""Under act: adopters' own repositories (issue 16). One repository holds five models, each a folder `leanops
init` made (at the root, then `leanops init teams/<name>`: one more model, its own caller workflows
ml-pipeline-<model>.yml with working-directory: teams/<name>), and each brings its own model format and task:

| folder | data | task | the stage saves its model | model.path |
| --- | --- | --- | --- | --- |
| (root) | churn | binary | `pickle.dump`: init's starter stage (the README's quickstart) | models/model.pkl |
| teams/fraud | churn | binary | `joblib.dump`; predictions for the bootstrap and fairness | models/model.pkl |
| teams/wine | wine | multiclass | a skops file (`numpy.dtype` trusted in leanops.yml) | models/model.skops |
| teams/diabetes | diabetes | regression | LightGBM, `mlflow.lightgbm.save_model` | models/model (a folder) |
| teams/boost | churn | binary | XGBoost logged by the stage into the kit's run (`model.run`) | models/run.json |

- a pull request: each model validates, trains and gates with the starter gates of its task (the report names
  the task and its metrics); five sticky comments, one per folder; nothing deploys;
- a push to the default branch with a tracking server, the local registry and the real engine: five images
  (the LightGBM one with its extra and libgomp, the XGBoost one with xgboost-cpu), five canary deployments
  behind five routers, each answering /predict in its task's shape, five champions, five lineage records.

What the runs share must not collide: comments, DVC caches, MLflow's models, images, deployments, routers. One
workflow run per folder, as on GitHub (act runs the nested reusable workflows of only one of two calls in one
run; one workflow calling ml-pipeline once per folder is walked by tests/unit/test_workflows.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
CHURN_RECORD = {"tenure_months": 3, "monthly_charges": 95.0, "total_charges": 285.0, "contract": "month-to-month",
                "payment_method": "electronic-check", "internet_service": "fiber", "support_calls": 4,
                "senior_citizen": 0, "gender": "female"}


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


def push_event(path: Path, full_name: str) -> Path:
    path.write_text(json.dumps({"ref": "refs/heads/main", "repository": {"full_name": full_name,
                                                                         "default_branch": "main"}}))
    return path


def post(port: int, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """/predict through the canary's router on ``port`` for one record: the HTTP status and the answer."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps({"records": [record]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.status), dict(json.loads(resp.read()))


def predict(port: int) -> int:
    """One prediction of a churn record through the canary's router on ``port``: the HTTP status."""
    return post(port, CHURN_RECORD)[0]


def deployable(files: dict[str, str], key: str, base: str, port: int) -> dict[str, str]:
    """The leanops.yml at ``key`` with this test's registry, base images and router port."""
    cfg = yaml.safe_load(files[key])
    cfg.setdefault("build-push-image", {}).update({"registry": f"{REGISTRY}/leanops-tests", "base-image": base})
    canary = cfg.setdefault("canary-deploy", {})
    canary.setdefault("router", {}).update({"publish": f"127.0.0.1:{port}", "base-image": base})
    canary["ready-timeout"] = 120
    return {**files, key: yaml.safe_dump(cfg, sort_keys=False)}


def cleanup(name: str) -> None:
    """The canary's containers, network and state volume, and this test's images (the engine is shared)."""
    cleanup_deployment(name)
    remove_images(f"{REGISTRY}/leanops-tests/{name}")


Files = dict[str, str]

PICKLED = "write(MODEL, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))"


def with_predictions(files: Files) -> Files:
    """What an adopter adds to the binary starter: the stage also writes per-example predictions (with the
    sensitive column) and its test rows, and leanops.yml turns on the paired bootstrap and fairness."""
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


def with_joblib(files: Files) -> Files:
    """The starter stage saving its model with `joblib.dump` (scikit-learn's own recommended persistence)."""
    assert PICKLED in files["src/train.py"]
    files["src/train.py"] = files["src/train.py"].replace(
        PICKLED, "import joblib\n    MODEL.parent.mkdir(parents=True, exist_ok=True)\n    joblib.dump(model, MODEL)")
    return files


def model_output(files: Files, path: str, **model: Any) -> Files:
    """The stage's model output renamed to ``path`` in src/train.py, dvc.yaml and leanops.yml (model.path and
    the other ``model`` keys given)."""
    old = "models/model.pkl"
    assert f'ROOT / "{old}"' in files["src/train.py"]
    files["src/train.py"] = files["src/train.py"].replace(f'ROOT / "{old}"', f'ROOT / "{path}"')
    dvc = yaml.safe_load(files["dvc.yaml"])
    outs = dvc["stages"]["train"]["outs"]
    outs[outs.index(old)] = path
    files["dvc.yaml"] = yaml.safe_dump(dvc, sort_keys=False)
    cfg = yaml.safe_load(files["leanops.yml"])
    cfg["model"].update({"path": path, **model})
    files["leanops.yml"] = yaml.safe_dump(cfg, sort_keys=False)
    return files


def with_skops(files: Files) -> Files:
    """The multiclass starter saving a skops file; the adopter vouches for the one type skops does not trust by
    default (the kit's one-line refusal names it)."""
    files = model_output(files, "models/model.skops", **{"trusted-types": ["numpy.dtype"]})
    assert PICKLED in files["src/train.py"]
    files["src/train.py"] = files["src/train.py"].replace(
        PICKLED, "import skops.io as sio\n    MODEL.parent.mkdir(parents=True, exist_ok=True)\n"
                 "    sio.dump(model, MODEL)")
    return files


RIDGE = 'model = Pipeline([("preprocess", pre), ("model", Ridge(alpha=float(p.get("alpha", 1.0))))])'


def with_lightgbm(files: Files) -> Files:
    """The regression starter with LightGBM on the columns as numbers (the categorical ones as codes), saved
    with MLflow's own flavor: an MLflow model directory, logged as it is."""
    files = model_output(files, "models/model")
    train = files["src/train.py"]
    assert RIDGE in train and PICKLED in train
    train = train.replace(RIDGE, (
        "from lightgbm import LGBMRegressor\n"
        "    x = x.assign(**{c: x[c].astype('category').cat.codes.astype('int64') for c in categorical})\n"
        "    model = LGBMRegressor(n_estimators=120, learning_rate=0.05, num_leaves=8, min_child_samples=10,\n"
        "                          verbose=-1, random_state=int(p['seed']))"))
    files["src/train.py"] = train.replace(PICKLED, (
        "import shutil\n"
        "    import mlflow.lightgbm\n"
        "    from mlflow.models import infer_signature\n"
        "    shutil.rmtree(MODEL, ignore_errors=True)\n"
        "    MODEL.parent.mkdir(parents=True, exist_ok=True)\n"
        "    mlflow.lightgbm.save_model(model, str(MODEL), signature=infer_signature(x_test, pred))"))
    return files


OWN_RUN = '''\
"""An adopter's own stage: XGBoost on the numeric columns, logged into the MLflow run leanops hands over
(model.run: true); models/run.json, the stage's DVC output, names the run."""

import json
from pathlib import Path

import mlflow
import mlflow.xgboost
import pandas as pd
import yaml
from mlflow.models import infer_signature
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "senior_citizen"]

p = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
df = pd.read_csv(ROOT / p["data"])
x, y = df[FEATURES].astype("float64"), df[p["target"]].astype(int)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=float(p["test_size"]),
                                                    random_state=int(p["seed"]), stratify=y)
model = XGBClassifier(n_estimators=60, max_depth=3, learning_rate=0.1, random_state=int(p["seed"]))
model.fit(x_train, y_train)
score = model.predict_proba(x_test)[:, 1]
pred = model.predict(x_test)
metrics = {"roc_auc": round(float(roc_auc_score(y_test, score)), 6),
           "f1": round(float(f1_score(y_test, pred)), 6),
           "accuracy": round(float(accuracy_score(y_test, pred)), 6)}
with mlflow.start_run() as run:  # the run leanops created (MLFLOW_RUN_ID), in its scratch store
    mlflow.log_params({"max_depth": 3, "n_estimators": 60})
    mlflow.log_metric("val_auc", metrics["roc_auc"])
    mlflow.xgboost.log_model(model, name="model", signature=infer_signature(x_test, pred))
for path, data in ((ROOT / "models/run.json", {"run": run.info.run_id}), (ROOT / "metrics/eval.json", metrics)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\\n")
print(f"train: xgboost {metrics} -> run {run.info.run_id}")
'''


def with_own_run(files: Files) -> Files:
    """The stage logs its own MLflow run and XGBoost model; the kit registers that (model.run: true)."""
    files = model_output(files, "models/run.json", run=True)
    files["src/train.py"] = OWN_RUN
    return files



@dataclass
class Model:
    folder: str  # "" for the repository's root
    stem: str  # the model's name without this test's suffix (also its deployment's and image's)
    data: Path
    task: str
    read: str  # what train-with-cache says it read ("model: ..."), a pattern
    change: Callable[[Files], Files] | None
    record: dict[str, Any]
    gates: list[str]
    classes: list[Any] = field(default_factory=list)  # a classifier's classes, in /predict's order


PICKLE = r"models/model\.pkl \(pickle"
MODELS = [
    Model("", "churn", CHURN, "binary", PICKLE, None, CHURN_RECORD, ["roc_auc", "f1"], [0, 1]),
    Model("teams/fraud", "fraud", CHURN, "binary", PICKLE, lambda f: with_predictions(with_joblib(f)), CHURN_RECORD,
          ["roc_auc", "f1", "demographic_parity_ratio", "equalized_odds_difference"], [0, 1]),
    Model("teams/wine", "wine", ROOT / "examples/multiclass/data/raw/wine.csv", "multiclass",
          r"models/model\.skops \(skops\)", with_skops,
          {"alcohol": 13.2, "malic_acid": 1.8, "ash": 2.4, "alcalinity_of_ash": 16.0, "magnesium": 110.0,
           "total_phenols": 2.8, "flavanoids": 3.0, "nonflavanoid_phenols": 0.3, "proanthocyanins": 2.0,
           "color_intensity": 5.5, "hue": 1.05, "od280_od315": 3.2, "proline": 1050.0},
          ["f1_macro", "log_loss"], ["class_0", "class_1", "class_2"]),
    Model("teams/diabetes", "diabetes", ROOT / "examples/regression/data/raw/diabetes.csv", "regression",
          r"models/model \(mlflow; flavor lightgbm\)", with_lightgbm,
          {"age": 59.0, "sex": 1, "bmi": 32.1, "bp": 101.0, "s1": 157.0, "s2": 93.2, "s3": 38.0, "s4": 4.0,
           "s5": 4.8598, "s6": 87.0}, ["rmse", "mae", "r2"]),
    Model("teams/boost", "boost", CHURN, "binary", r"run [0-9a-f]{32} \(run; flavor xgboost\)", with_own_run,
          {k: float(CHURN_RECORD[k]) for k in ("tenure_months", "monthly_charges", "total_charges",
                                               "support_calls", "senior_citizen")}, ["roc_auc", "f1"], [0, 1]),
]


def scaffold_models(path: Path, suffix: str) -> Files:
    """`leanops init` at the root, then `leanops init teams/<name>` for each other model; each model's stage
    changed as its adopter would; as text."""
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for m in MODELS:
        assert cli.main(["init", str(path / m.folder), "--data", str(m.data),
                         "--model-name", f"{m.stem}-{suffix}"]) == 0
    files = {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(path).parts[:1]}
    for m in MODELS:
        if m.folder:
            wf = yaml.safe_load(files[f".github/workflows/ml-pipeline-{m.stem}-{suffix}.yml"])
            assert wf["jobs"]["pipeline"]["with"]["working-directory"] == m.folder
        cfg = yaml.safe_load(files[prefixed(m, "leanops.yml")])
        assert cfg["model"].get("task", "binary") == m.task  # init inferred it from the data
        if m.change:
            files = adopt(files, m.folder, m.change)
    return files


def prefixed(m: Model, name: str) -> str:
    return f"{m.folder}/{name}" if m.folder else name


def workflow(m: Model, suffix: str) -> str:
    return f".github/workflows/ml-pipeline-{m.stem}-{suffix}.yml" if m.folder else ".github/workflows/ml-pipeline.yml"


def adopt(files: Files, folder: str, change: Callable[[Files], Files]) -> Files:
    """Apply a change written for a model's own files to the model in ``folder``."""
    prefix = f"{folder}/"
    mine = {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)}
    return {**{k: v for k, v in files.items() if not k.startswith(prefix)},
            **{prefix + k: v for k, v in change(mine).items()}}


def test_five_models_of_their_own_formats_and_tasks_on_one_pull_request(harness, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    files = scaffold_models(tmp_path / "scaffold", suffix)
    name = f"example/models-{suffix}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")
    outs: dict[str, str] = {}
    with Recorder() as rec:
        rec.fake.add_pull_request(NUMBER)
        for m in MODELS:
            run = ActRun(repo=repo, event="pull_request", workflow=workflow(m, suffix),
                         event_file=pull_request_event(tmp_path / "event.json", name),
                         env={"GITHUB_API_URL": rec.url}, secrets={"GITHUB_TOKEN": "ghs_e2e_token"})
            res = harness.run(run, log=tmp_path / f"act-{m.stem}.log")
            outs[m.stem] = res.stdout + res.stderr
            assert res.returncode == 0, (m.folder, outs[m.stem][-10000:])
        comments = rec.fake.comments_on(NUMBER)
    by_marker = {c["body"].split("\n", 1)[0]: c["body"] for c in comments}
    assert len(comments) == len(MODELS) == len(by_marker), sorted(by_marker)
    for m in MODELS:
        out = outs[m.stem]
        assert "Conflict" not in out and "not found in this workflow run" not in out
        assert "ml-pipeline: tracking=embedded deploy=false" in out
        # validate: the starter suite init profiled passes on the data it came from
        assert f"expectations/{m.data.stem}.json" in out and "expectation(s) of" not in out
        # train: the stage ran under DVC; the model was read for what its content is and registered
        assert out.count("Running stage 'train'") == 1, out[-8000:]
        assert re.search(r"registered \S+ version 1 with alias challenger", out), out[-8000:]
        assert re.search(f"model: {m.read}", out), (m.read, out[-8000:])
        # gate: the starter gates of the task (and the adopter's fairness gates), one comment per folder
        assert f"gate-metrics: {len(m.gates)} gates passed" in out, out[-8000:]
        marker = "<!-- leanops:gate-metrics" + (f"-{m.folder.replace('/', '-')}" if m.folder else "") + " -->"
        body = by_marker[marker]
        title = "## gate-metrics: ✅ passed" + (f" · `{m.folder}`" if m.folder else "\n")
        assert title in body, body
        assert f"**task**: {m.task}" in body and all(g in body for g in m.gates), body
        # no deployment from a pull request
        assert not re.search(r"ml-pipeline/(recorded image|release)\s*\]", out)
        assert "build-push-image/image" not in out and "leanops lineage" not in out
    assert re.search(r"ml-pipeline/plan\s*\] 🏁  Job succeeded", outs["churn"])
    assert "workdir=teams/fraud" in outs["fraud"]
    # the adopter's shape of issues 15 and 16: a joblib file named .pkl; the gate job reads the predictions
    # and evaluation rows training shipped (neither DVC's outputs nor the training job's store are there)
    fraud = outs["fraud"]
    assert "STACK_GLOBAL" not in fraud and "is not a model" not in fraud
    assert "gate inputs for gate-metrics: metrics/predictions.csv, data/eval/test.csv" in fraud, fraud[-8000:]
    assert "candidate predictions: metrics/predictions.csv (train-with-cache's gate inputs)" in fraud
    assert "predictions.csv not found" not in fraud
    artifacts = {p.name for p in (harness.store / "artifacts").iterdir()}
    for m in MODELS:
        tail = f"-{m.folder.replace('/', '-')}" if m.folder else ""
        assert {f"leanops-gate-metrics{tail}", f"data-validate-report{tail}"} <= artifacts, (m.folder, artifacts)


def test_five_models_on_one_push_build_serve_and_become_champions(harness, mlflow_server: str,
                                                                  tmp_path: Path) -> None:
    from mlflow import MlflowClient

    base = ensure_base_image()
    suffix = uuid.uuid4().hex[:8]
    ports = {m.stem: free_port() for m in MODELS}
    files = scaffold_models(tmp_path / "scaffold", suffix)
    for m in MODELS:
        files = deployable(files, prefixed(m, "leanops.yml"), base, ports[m.stem])
    name = f"example/models-{suffix}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    try:
        images = set()
        for m in MODELS:
            model = f"{m.stem}-{suffix}"
            run = ActRun(repo=repo, event="push", event_file=push_event(tmp_path / "event.json", name),
                         workflow=workflow(m, suffix), secrets={"GITHUB_TOKEN": "ghs_e2e_token",
                                                                "MLFLOW_TRACKING_URI": mlflow_server})
            res = harness.run(run, log=tmp_path / f"act-{m.stem}.log")
            out = res.stdout + res.stderr
            assert res.returncode == 0, (m.folder, out[-10000:])
            assert "Conflict" not in out and "not found in this workflow run" not in out
            assert "ml-pipeline: tracking=server deploy=true" in out
            assert "Running stage 'train'" in out and f"gate-metrics: {len(m.gates)} gates passed" in out
            image = re.search(rf"{re.escape(REGISTRY)}/leanops-tests/{model}@sha256:[0-9a-f]{{64}}", out)
            assert image, (model, out[-10000:])
            # each model's own first deployment (its own router), not another's canary
            assert "first deploy: started as the stable without analysis" in out
            assert "alias champion -> version 1" in out and f"lineage: kept with {model} version 1" in out
            version = client.get_model_version_by_alias(model, "champion")
            assert version.version == "1" and version.tags["leanops.image"] == image.group(0)
            assert version.tags["leanops.lineage.canary"] == "promoted"
            images.add(image.group(0))
            # the image holds the flavor's library only for the model that needs it
            extra = {"diabetes": "serve-lightgbm", "boost": "serve-xgboost"}.get(m.stem)
            held = re.findall(r"serve requirements: the kit's locked serve extra(?: with ([\w, -]+) \()?", out)
            assert held == [extra or ""], (m.stem, held)
            if m.stem == "boost":  # the stage's own run: its params travel with the model into the kit's run
                assert client.get_run(version.run_id).data.params["max_depth"] == "3"

            # the model answers behind its router in its task's shape
            status, got = post(ports[m.stem], m.record)
            assert status == 200, got
            assert len(got["predictions"]) == 1, got
            if m.classes:
                assert got["classes"] == m.classes and got["predictions"][0] in m.classes, got
                assert len(got["probabilities"][0]) == len(m.classes)
                assert abs(sum(got["probabilities"][0]) - 1) < 1e-6
            else:
                assert "probabilities" not in got and isinstance(got["predictions"][0], float), got
            if m.stem == "churn":
                record_of(client, version, tmp_path)
        assert len(images) == len(MODELS)
        artifacts = {p.name for p in (harness.store / "artifacts").iterdir()}
        for m in MODELS:
            assert f"canary-report-production{'-' + m.folder.replace('/', '-') if m.folder else ''}" in artifacts
    finally:
        for m in MODELS:
            cleanup(f"{m.stem}-{suffix}")


def record_of(client: Any, version: Any, tmp_path: Path) -> None:
    """The lineage record kept with the root model's version: gate, validation, data, image, canary, params."""
    record = client.list_artifacts(version.run_id, "lineage")
    assert [f.path for f in record] == [version.tags["leanops.lineage.record"]]
    rec = json.loads(Path(client.download_artifacts(version.run_id, record[0].path, str(tmp_path / "dl")))
                     .read_text())
    assert rec["gate"]["passed"] is True and [g["metric"] for g in rec["gate"]["gates"]] == ["roc_auc", "f1"]
    assert rec["validation"]["success"] is True and rec["validation"]["evaluated"] > 0
    assert rec["data"]["files"]["data/raw/churn.csv"] and rec["data"]["dvc_lock_sha256"]
    assert (rec["image"]["ref"], rec["canary"]["verdict"]) == (version.tags["leanops.image"], "promoted")
    assert rec["training"]["params"]["train.target"] == "churned"
