"""MLflow: the run that recorded a pipeline state, and logging and registering a new one (alias challenger).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import gh, models, tracking
from ..dvcproject import Project
from ..errors import BadInput, InfraError
from .metrics import metrics_files
from .repro import StageResult, dvc_transfer
from .settings import Settings

ALIAS = "challenger"
TAG_LOCK = "leanops.dvc_lock_sha256"
TAG_KEY = "leanops.cache_key"
TAG_MODEL = "leanops.model_name"
TAG_VERSION = "leanops.model_version"
TAG_BATCH = "leanops.batch"
# "true" on a run logged to the tracking server by a trusted ref (the default branch, a release tag); a skip on a
# trusted ref reuses only such a run, never one that anything else could have written
TAG_TRUSTED = "leanops.trusted"


@dataclass
class Outcome:
    skipped: bool
    run_id: str
    model_uri: str
    model_version: str
    metrics: dict[str, float]
    cache_key: str
    tracking_uri: str
    local_store: bool
    stages: list[StageResult] = field(default_factory=list)

    def outputs(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "run-id": self.run_id, "model-uri": self.model_uri,
                "model-version": self.model_version, "metrics": json.dumps(self.metrics, indent=2, sort_keys=True),
                "cache-key": self.cache_key}


def find_existing(s: Settings, uri: str, tags: dict[str, str], *, trusted: bool = False) -> Outcome | None:
    """The run that recorded this pipeline state (its dvc.lock digest, or the cache key of the state it started
    from), with a registered version; without importing mlflow when possible. ``trusted``: only a run that a
    trusted-ref job logged (``leanops.trusted`` = true), and only its own version."""
    store = tracking.reader(uri)
    if store is None:
        return None
    exp = store.experiment_id(s.experiment)
    if exp is None:
        return None
    wanted = {**tags, TAG_MODEL: s.model_name, **({TAG_TRUSTED: "true"} if trusted else {})}
    run = store.find_run(exp, wanted)
    if run is None:
        return None
    versions = [v for v in store.versions_of_run(s.model_name, run.run_id) if v.run_id == run.run_id]
    if not versions:
        return None
    mv = versions[-1]
    return Outcome(skipped=True, run_id=run.run_id, model_uri=mv.uri, model_version=mv.version,
                   metrics=run.metrics, cache_key="", tracking_uri=uri, local_store=False)


def _load_model(s: Settings) -> Any:
    path = s.root / s.model_path
    if not path.is_file():
        raise BadInput(f"model.path: {s.model_path} does not exist after the pipeline ran; expected the file "
                       "the pipeline writes", file=str(s.cfg.path or "leanops.yml"),
                       line=s.cfg.line_of("model", "path"))
    try:
        return models.unpickle(path)
    except models.NotAModel as exc:
        raise BadInput(f"model.path: {s.model_path} is not a pickled model ({exc.reason}); "
                       "expected a pickled scikit-learn estimator", file=str(s.cfg.path or "leanops.yml"),
                       line=s.cfg.line_of("model", "path")) from None


def _gate_predictions(s: Settings) -> str:
    """gate-metrics.bootstrap.predictions when the pipeline wrote it ("" otherwise)."""
    name = str(((s.cfg.data.get("gate-metrics") or {}).get("bootstrap") or {}).get("predictions") or "")
    return name if name and (s.root / name).is_file() else ""


def _example_path(s: Settings, project: Project) -> tuple[Path | None, str]:
    """model.input-example, else the CSV/Parquet input of the stage that writes model.path."""
    explicit = (s.cfg.data.get("model") or {}).get("input-example")
    if explicit:
        return s.root / str(explicit), str(explicit)
    for dep in project.writer_inputs(s.model_path):
        if dep.endswith((".csv", ".parquet")):
            return s.root / dep, dep
    return None, ""


def _signature(s: Settings, project: Project, model: Any) -> Any:
    """The model's signature inferred from up to 100 example rows; None (and a warning) without them.

    build-push-image and the model server need it: they check request bodies against its columns.
    """
    from mlflow.models import infer_signature

    from ..datasets import read_table

    path, shown = _example_path(s, project)
    if path is None or not path.is_file():
        gh.warning(f"model signature not inferred: {'no example rows' if not shown else shown + ' is missing'}; "
                   "set model.input-example to rows the model accepts (build-push-image needs the signature)",
                   file=str(s.cfg.path or "leanops.yml"), title="leanops train-with-cache")
        return None
    rows = read_table(path).head(100)  # BadInput names the file when it cannot be read
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        missing = [str(n) for n in names if n not in rows.columns]
        if missing:
            raise BadInput(f"model.input-example: {shown} lacks the model's input columns {', '.join(missing)}; "
                           "expected rows the model accepts", file=str(s.cfg.path or "leanops.yml"),
                           line=s.cfg.line_of("model", "input-example"))
        rows = rows[[str(n) for n in names]]
    try:
        with warnings.catch_warnings():  # mlflow's hint about integer columns and missing values, on every run
            warnings.simplefilter("ignore", UserWarning)
            return infer_signature(rows, model.predict(rows))
    except Exception as exc:  # noqa: BLE001 - the adopter's model refused the example rows
        raise BadInput(f"model.input-example: the model cannot predict the rows of {shown} "
                       f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); expected rows the model accepts",
                       file=str(s.cfg.path or "leanops.yml"), line=s.cfg.line_of("model", "input-example")) from None


def _fault(point: str) -> None:
    """Fault injection for the tests of the clean-up path (LEANOPS_TRAIN_FAULT=<point>)."""
    if os.environ.get("LEANOPS_TRAIN_FAULT") == point:
        raise InfraError(f"injected fault at {point} (LEANOPS_TRAIN_FAULT)")


def log_and_register(s: Settings, project: Project, uri: str, key: str, lock_hash: str, metrics: dict[str, float],
                     stages: list[StageResult], trained: bool, push: bool, *, trusted: bool = False
                     ) -> tuple[str, str]:
    """One MLflow run with everything, then a model version with the alias challenger.

    Registration comes last; any failure before the alias is set deletes the version and marks the run
    FAILED, so no half-registered version remains.
    """
    tracking.configure_mlflow(uri)
    with gh.group("MLflow: log and register"):
        t0 = time.monotonic()
        import mlflow
        import mlflow.sklearn
        from mlflow import MlflowClient

        gh.step(f"mlflow {mlflow.__version__} imported in {time.monotonic() - t0:.1f}s")
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(uri, registry_uri=uri)
        model = _load_model(s)
        exp = client.get_experiment_by_name(s.experiment)
        if exp is None or exp.lifecycle_stage != "active":
            art = None
            if uri.startswith("sqlite:"):
                art = (s.root / tracking.LOCAL_STORE / "artifacts").resolve().as_uri()
            exp_id = client.create_experiment(s.experiment, artifact_location=art)
        else:
            exp_id = exp.experiment_id
        tags = {
            TAG_LOCK: lock_hash, TAG_KEY: key, TAG_MODEL: s.model_name, "leanops.trained": str(trained).lower(),
            TAG_TRUSTED: str(trusted).lower(),
            "mlflow.source.git.commit": gh.commit_sha(s.root), "mlflow.source.type": "JOB",
            "leanops.stages": ",".join(f"{r.name}:{r.state}" for r in stages),
        }
        if s.batch:
            tags[TAG_BATCH] = s.batch
        if os.environ.get("GITHUB_RUN_ID"):
            tags["github.run_url"] = (f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                                      f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/"
                                      f"{os.environ['GITHUB_RUN_ID']}")
        for path, md5 in project.locked_dep_hashes().items():
            tags[f"dvc.dep.{path}"] = md5
        params = {k: v for f in project.params(s.params_file, {}).values() for k, v in f.items()}
        # the first write: a credential that may only read (PERMISSION_DENIED) ends here in one line, exit 3
        run = tracking.mlflow_call(uri, f"create a run in experiment {s.experiment}", client.create_run, exp_id,
                                   tags=tags, run_name=f"train-{lock_hash[:8]}")
        run_id = run.info.run_id
        version: str | None = None
        try:
            from mlflow.entities import Metric, Param

            now = int(time.time() * 1000)
            client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                             metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
            client.log_artifact(run_id, str(s.root / "dvc.lock"), "dvc")
            client.log_artifact(run_id, str(s.root / "dvc.yaml"), "dvc")
            for name in metrics_files(s, project):
                if (s.root / name).is_file():
                    client.log_artifact(run_id, str(s.root / name), "metrics")
            mlflow.set_experiment(experiment_id=exp_id)  # start_run refuses a run outside the active experiment
            version_tags = {TAG_LOCK: lock_hash, TAG_KEY: key}
            predictions = _gate_predictions(s)
            if predictions:  # what gate-metrics compares, for a gate (or promotion) in a job of its own
                client.log_artifact(run_id, str(s.root / predictions), "gate-metrics")
                version_tags[tracking.TAG_PREDICTIONS] = f"gate-metrics/{Path(predictions).name}"
            with mlflow.start_run(run_id=run_id):
                signature = _signature(s, project, model)
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=_requirements(),
                                                serialization_format="cloudpickle", signature=signature)
            digest = logged_digest(info.model_uri, uri)
            client.set_tag(run_id, models.TAG_SHA256, digest)
            version_tags[models.TAG_SHA256] = digest
            gh.step(f"logged run {run_id} ({len(params)} params, {len(metrics)} metrics, model sha256:{digest[:12]})")
            _fault("before-register")
            if push:
                dvc_transfer(s, "push")
            mv = mlflow.register_model(info.model_uri, s.model_name, tags=version_tags)
            version = str(mv.version)
            client.set_tag(run_id, TAG_VERSION, version)
            _fault("before-alias")
            client.set_registered_model_alias(s.model_name, ALIAS, version)
            client.set_terminated(run_id, "FINISHED")
        except BaseException:
            if version is not None:
                try:
                    client.delete_model_version(s.model_name, version)
                    gh.step(f"deleted the unfinished version {s.model_name}/{version}")
                except Exception as exc:  # noqa: BLE001 - report, then raise the first failure
                    gh.warning(f"could not delete the unfinished version {s.model_name}/{version}: {exc}")
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception as exc:  # noqa: BLE001 - the first failure is the one to report
                gh.warning(f"could not mark run {run_id} FAILED: {exc}")
            raise
        gh.step(f"registered {s.model_name} version {version} with alias {ALIAS} "
                f"in {time.monotonic() - t0:.1f}s")
        return run_id, version


def logged_digest(model_uri: str, uri: str) -> str:
    """The digest (``models.model_digest``) of the model's files as the store now holds them, read back."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="leanops-logged-") as tmp:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp, tracking_uri=uri))
        found = got if (got / models.MLMODEL).is_file() else next((m.parent for m in got.rglob(models.MLMODEL)), got)
        return models.model_digest(found)


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("scikit-learn", "cloudpickle", "numpy", "pandas", "scipy"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out
