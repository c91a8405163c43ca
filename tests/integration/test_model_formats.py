"""Issue 16, model formats: what ``model.path`` may be (a pickle, a joblib file, a skops file, an MLflow model
directory of any flavor) or ``model.run: true`` (the stage logs its own run and model), each for real through
train-with-cache -> gate-metrics (the latency gate loads the registered model) -> the model directory
build-push-image would ship (downloaded and checked against the recorded digest) -> ``leanops serve`` answering
``/predict``. The embedded store of each repository stands in for the tracking server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from leanops import cli, models
from leanops.build_push_image.model import fetch_model, serve_extras
from leanops.build_push_image.plan import Plan

from ..conftest import free_port, make_repo, wait_for_http
from ..unit.test_gh import parse_outputs

for _key, _value in (("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1"),
                     ("GIT_PYTHON_REFRESH", "quiet")):
    os.environ.setdefault(_key, _value)

FEATURES = ["a", "b", "c"]

READ = """\
    import json
    import pandas as pd
    df = pd.read_csv("data.csv")
    X, y = df[["a", "b", "c"]], df["y"]
"""

# each format: the stage's code after READ (it writes `model` and metrics.json), model.path, and the answer's kind
STAGES: dict[str, tuple[str, str, str]] = {
    "pickle": ("""\
        import pickle
        from sklearn.linear_model import LogisticRegression
        m = LogisticRegression().fit(X, y)
        with open("model.bin", "wb") as fh:
            pickle.dump(m, fh)
    """, "model.bin", "classifier"),
    # joblib.dump writes numpy arrays after the pickle stream (pickle.load fails on it: the report); the
    # file's name says nothing of its format: the content decides
    "joblib": ("""\
        import joblib
        from sklearn.ensemble import RandomForestClassifier
        m = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
        joblib.dump(m, "model.bin")
    """, "model.bin", "classifier"),
    # a Pipeline whose FunctionTransformer holds numpy.nan_to_num, a type skops does not trust by default
    "skops": ("""\
        import numpy as np
        import skops.io as sio
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer
        m = make_pipeline(FunctionTransformer(np.nan_to_num), LogisticRegression()).fit(X, y)
        sio.dump(m, "model.bin")
    """, "model.bin", "classifier"),
    "xgboost": ("""\
        import mlflow.xgboost
        from mlflow.models import infer_signature
        from xgboost import XGBClassifier
        m = XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)
        mlflow.xgboost.save_model(m, "model", signature=infer_signature(X, m.predict(X)))
    """, "model", "classifier"),
    "lightgbm": ("""\
        import mlflow.lightgbm
        from lightgbm import LGBMRegressor
        from mlflow.models import infer_signature
        m = LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1).fit(X, y)
        mlflow.lightgbm.save_model(m, "model", signature=infer_signature(X, m.predict(X)))
    """, "model", "regressor"),
    # model.run: the stage logs its own run (the one whose ID the kit hands it) and model; model.path is a note
    "run": ("""\
        import os
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature
        from sklearn.linear_model import LogisticRegression
        m = LogisticRegression(C=0.5).fit(X, y)
        # what the stage was handed (mlflow.end_run() takes MLFLOW_RUN_ID out of the environment)
        seen = {k: os.environ.get(k, "") for k in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI",
                                                    "MLFLOW_TRACKING_PASSWORD")}
        with mlflow.start_run() as run:
            mlflow.log_param("stage.C", 0.5)
            mlflow.log_metric("stage_accuracy", float(m.score(X, y)))
            mlflow.sklearn.log_model(m, name="model", signature=infer_signature(X, m.predict(X)),
                                     pip_requirements=["scikit-learn"])
        json.dump({"run": run.info.run_id, "env": seen}, open("model-info.json", "w"))
    """, "model-info.json", "classifier"),
}

METRICS = """\
    json.dump({"score": float(m.score(X, y))}, open("metrics.json", "w"))
"""


def data_csv(n: int = 240) -> str:
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 3)).round(4)
    y = ((x[:, 0] + 0.5 * x[:, 1] + 0.2 * rng.normal(size=n)) > 0).astype(int)
    return "a,b,c,y\n" + "".join(f"{r[0]},{r[1]},{r[2]},{t}\n" for r, t in zip(x, y, strict=True))


def leanops_yml(name: str, path: str, model_extra: str = "") -> str:
    """``model_extra``: more lines of the model section (``run: true``, ``trusted-types: [...]``)."""
    return textwrap.dedent(f"""\
        version: 1
        model:
          name: {name}
          path: {path}
        """) + "".join(f"  {line}\n" for line in model_extra.splitlines()) + textwrap.dedent("""\
        gate-metrics:
          champion: mlflow
          gates:
            score:
              direction: higher
              min: 0.6
          latency:
            data: data.csv
            exclude-columns: [y]
            max-p95-single-ms: 5000
            batch-size: 16
            samples: 20
        """)


def repo_for(tmp_path: Path, fmt: str, model_extra: str = "") -> Path:
    code, path, _ = STAGES[fmt]
    out = path if fmt != "run" else "model-info.json"
    repo = make_repo(tmp_path / fmt, {
        "data.csv": data_csv(),
        "train.py": textwrap.dedent(READ) + textwrap.dedent(code) + textwrap.dedent(METRICS),
        "dvc.yaml": textwrap.dedent(f"""\
            stages:
              train:
                cmd: python train.py
                deps: [train.py, data.csv]
                outs: [{out}]
                metrics:
                  - metrics.json:
                      cache: false
            """),
        "leanops.yml": leanops_yml(f"formats-{fmt}", path, model_extra),
        ".gitignore": ".leanops/\n",
    })
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    return repo


@pytest.fixture
def job(runner_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A trusted run on a laptop: no event, no tracking server (the embedded store)."""
    for name in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
                 "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    return runner_files


def outputs(files: dict[str, Path]) -> dict[str, str]:
    got = parse_outputs(files["GITHUB_OUTPUT"].read_text())
    files["GITHUB_OUTPUT"].write_text("")
    return got


def train(repo: Path) -> int:
    return cli.main(["train-with-cache", "--working-directory", str(repo)])


def gate(repo: Path, trained: dict[str, str]) -> int:
    return cli.main(["gate-metrics", "--working-directory", str(repo), "--model-version", trained["model-version"],
                     "--run-id", trained["run-id"], "--comment", "false"])


def shipped(repo: Path, trained: dict[str, str], dest: Path) -> tuple[Path, str]:
    """The model directory build-push-image puts into the image, checked against the recorded digest."""
    plan = Plan(model_uri=trained["model-uri"], registry="", image="", base_image="", dockerfile=Path("Dockerfile"),
                version="", push=False, root=repo)
    model = fetch_model(plan, dest, "", None, "")
    return model.path, model.sha256


def predict(model_dir: Path, sha256: str, rows: list[dict[str, float]]) -> dict:  # type: ignore[type-arg]
    """``leanops serve`` as a process on loopback, one /predict."""
    port = free_port()
    env = dict(os.environ, LEANOPS_MODEL_DIR=str(model_dir), LEANOPS_MODEL_SHA256=sha256, LEANOPS_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "leanops", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(f"{base}/ready", alive=lambda: proc.poll() is None, timeout=180), (
            proc.stderr.read() if proc.stderr and proc.poll() is not None else "not ready")
        req = urllib.request.Request(f"{base}/predict", data=json.dumps({"records": rows}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


ROWS = [{"a": 1.5, "b": 0.5, "c": 0.0}, {"a": -1.5, "b": -0.5, "c": 0.1}, {"a": 0.2, "b": -2.0, "c": -0.3}]


@pytest.mark.parametrize("fmt", ["pickle", "joblib", "skops", "xgboost", "lightgbm", "run"])
def test_each_format_trains_gates_ships_and_serves(fmt: str, tmp_path: Path, job: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repo = repo_for(tmp_path, fmt, "run: true" if fmt == "run" else "")
    monkeypatch.chdir(repo)
    if fmt == "run":  # a credential the kit holds: the stage that logs its own run never sees it
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    if fmt == "skops":
        # numpy.nan_to_num is not among the types skops trusts: refused in one line, exit 2, nothing registered
        assert train(repo) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "model.path: model.bin is a skops file with untrusted types numpy.nan_to_num" in err
        assert "model.trusted-types" in err
        trusting = leanops_yml(f"formats-{fmt}", "model.bin", "trusted-types: [numpy.nan_to_num]")
        (repo / "leanops.yml").write_text(trusting)
        outputs(job)
    assert train(repo) == 0, capsys.readouterr().err
    trained = outputs(job)
    assert trained["model-version"] == "1" and trained["model-uri"] == f"models:/formats-{fmt}/1"
    kind = {"pickle": "pickle", "joblib": "pickle", "skops": "skops", "xgboost": "mlflow", "lightgbm": "mlflow",
            "run": "run"}[fmt]
    log = capsys.readouterr().out
    assert f"({kind}" in log.split("model: ", 1)[1].split("\n", 1)[0]

    import mlflow

    store = f"sqlite:///{repo / '.leanops/mlflow/mlflow.db'}"
    client = mlflow.MlflowClient(store, registry_uri=store)
    version = client.get_model_version(f"formats-{fmt}", "1")
    run = client.get_run(trained["run-id"])
    assert version.tags[models.TAG_SHA256] == run.data.tags[models.TAG_SHA256]
    assert str(client.get_model_version_by_alias(f"formats-{fmt}", "challenger").version) == "1"
    if fmt == "run":
        seen = json.loads((repo / "model-info.json").read_text())
        # the stage logged into the run the kit handed it, in a scratch store: never the server, no credential
        assert seen["env"]["MLFLOW_RUN_ID"] == seen["run"] and seen["env"]["MLFLOW_TRACKING_URI"].startswith("sqlite:")
        assert ".leanops" not in seen["env"]["MLFLOW_TRACKING_URI"] and not seen["env"]["MLFLOW_TRACKING_PASSWORD"]
        # its params and metrics travel with the model into the kit's run
        assert run.data.params["stage.C"] == "0.5" and "stage_accuracy" in run.data.metrics
    if fmt in ("xgboost", "lightgbm"):  # logged as it is: the flavor preserved, the files the adopter saved
        flavors = mlflow.models.get_model_info(trained["model-uri"]).flavors
        assert fmt in flavors and "python_function" in flavors
        assert version.tags[models.TAG_SHA256] == models.model_digest(repo / "model")

    # the gate: its latency check loads the registered model (verified first) through pyfunc
    assert gate(repo, trained) == 0, capsys.readouterr().err
    gated = outputs(job)
    assert gated["passed"] == "true"

    # build-push-image's model directory, and the extras its image adds for the flavor
    model_dir, sha256 = shipped(repo, trained, tmp_path / "context" / "model")
    assert sha256 == version.tags[models.TAG_SHA256]
    assert serve_extras(model_dir) == {"xgboost": ["serve-xgboost"], "lightgbm": ["serve-lightgbm"]}.get(fmt, [])

    answer = predict(model_dir, sha256, ROWS)
    assert len(answer["predictions"]) == len(ROWS)
    if STAGES[fmt][2] == "classifier":
        assert answer["classes"] == [0, 1] and all(p in (0, 1) for p in answer["predictions"])
        assert [len(p) for p in answer["probabilities"]] == [2, 2, 2]
        assert all(abs(sum(p) - 1) < 1e-6 for p in answer["probabilities"])
        # the label is the likelier class
        assert [max((0, 1), key=lambda k, p=p: p[k]) for p in answer["probabilities"]] == answer["predictions"]
    else:
        assert "probabilities" not in answer and all(isinstance(v, float) for v in answer["predictions"])
        assert len({round(v, 6) for v in answer["predictions"]}) > 1


def test_a_file_in_no_known_format_is_refused_in_one_line(tmp_path: Path, job: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "unknown", {
        "train.py": "open('model.onnx', 'wb').write(b'\\x08\\x07\\x12\\x04onnx')\n"
                    "open('metrics.json', 'w').write('{\"score\": 1}')\n",
        "dvc.yaml": "stages:\n  train:\n    cmd: python train.py\n    deps: [train.py]\n    outs: [model.onnx]\n"
                    "    metrics:\n      - metrics.json:\n          cache: false\n",
        "leanops.yml": "version: 1\nmodel:\n  name: formats-unknown\n  path: model.onnx\n",
    })
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    assert train(repo) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and " INFO mlflow." not in ln]
    assert len(err) == 1, err
    assert "model.path: model.onnx is not a model in a format the kit reads" in err[0]
    assert models.FORMATS in err[0] and "leanops.yml" in err[0]
    assert not (repo / ".leanops/mlflow/artifacts").exists() or not any((repo / ".leanops/mlflow/artifacts").rglob(
        "MLmodel"))


def test_model_run_on_a_trusted_ref_is_registered_on_the_tracking_server(
        tmp_path: Path, job: dict[str, Path], mlflow_server: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A push with a tracking server: the stage still logs into its scratch store (it never learns the server's
    address), and the kit logs that model into its own run on the server and registers it with its digest."""
    import mlflow

    repo = repo_for(tmp_path, "run", "run: true")
    (repo / "leanops.yml").write_text((repo / "leanops.yml").read_text().replace("formats-run", "formats-run-srv"))
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert cli.main(["train-with-cache", "--working-directory", str(repo), "--tracking-uri", mlflow_server]) == 0, (
        capsys.readouterr().err)
    trained = outputs(job)
    seen = json.loads((repo / "model-info.json").read_text())["env"]
    assert seen["MLFLOW_TRACKING_URI"].startswith("sqlite:") and mlflow_server not in json.dumps(seen)
    client = mlflow.MlflowClient(mlflow_server, registry_uri=mlflow_server)
    version = client.get_model_version("formats-run-srv", trained["model-version"])
    assert version.run_id == trained["run-id"]
    assert client.get_run(trained["run-id"]).data.tags["leanops.trusted"] == "true"
    fetched = models.fetch(trained["model-uri"], tmp_path / "fetched", mlflow_server)
    assert models.check_recorded(fetched) == version.tags[models.TAG_SHA256]
    assert "sklearn" in mlflow.models.Model.load(str(tmp_path / "fetched")).flavors
