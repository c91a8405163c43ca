"""MLflow: the run that recorded a pipeline state, and logging and registering a new one (alias challenger).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
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


@dataclass
class Source:
    """What train-with-cache logs: an estimator (a pickle, joblib or skops file) or an MLflow model directory
    (the adopter's own ``save_model``, or the model its stage logged under ``model.run``), and what it was."""

    kind: str  # pickle, joblib, skops, mlflow, run
    shown: str  # model.path, or "run RUN_ID" for model.run
    estimator: Any = None
    directory: Path | None = None
    flavors: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # model.run: the stage's run's params and metrics
    metrics: dict[str, float] = field(default_factory=dict)


def _bad_path(s: Settings, text: str, key: str = "path") -> BadInput:
    return BadInput(f"model.{key}: {text}", file=str(s.cfg.path or "leanops.yml"), line=s.cfg.line_of("model", key))


def _mlflow_dir(s: Settings, path: Path, shown: str) -> Source:
    """An MLflow model directory as it is: its flavors read from ``MLmodel``; a signature is required (the image's
    server checks requests against it)."""
    import yaml

    try:
        meta = yaml.safe_load((path / models.MLMODEL).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _bad_path(s, f"{shown}/{models.MLMODEL} is not readable YAML ({type(exc).__name__}); expected the "
                        "MLmodel file mlflow.<flavor>.save_model writes") from None
    flavors = sorted((meta.get("flavors") or {}) if isinstance(meta, dict) else {})
    if "python_function" not in flavors:
        raise _bad_path(s, f"{shown} has no python_function flavor ({', '.join(flavors) or 'none'}); expected a "
                        "model MLflow can serve through pyfunc (mlflow.<flavor>.save_model writes one)")
    if not (meta.get("signature") or {}).get("inputs"):
        raise _bad_path(s, f"{shown} has no signature; save it with "
                        "signature=mlflow.models.infer_signature(X, model.predict(X))")
    return Source(kind="mlflow", shown=shown, directory=path, flavors=[f for f in flavors if f != "python_function"])


def _load_model(s: Settings) -> Source:
    """model.path, recognised from its content (never its name): see ``models.FORMATS``."""
    path = s.root / s.model_path
    if not path.exists():
        raise _bad_path(s, f"{s.model_path} does not exist after the pipeline ran; expected the model the "
                        f"pipeline writes: {models.FORMATS}")
    if path.is_dir():
        if not (path / models.MLMODEL).is_file():
            raise _bad_path(s, f"{s.model_path} is a directory without an {models.MLMODEL} file; expected "
                            f"{models.FORMATS}")
        return _mlflow_dir(s, path, s.model_path)
    try:
        kind, estimator = models.load_estimator(path, s.trusted_types)
    except models.Untrusted as exc:
        raise _bad_path(s, f"{s.model_path} is a skops file with untrusted types {', '.join(exc.types)}; "
                        "expected only types skops trusts, or these listed in model.trusted-types") from None
    except models.NotAModel as exc:
        raise _bad_path(s, f"{s.model_path} is not a model in a format the kit reads ({exc.reason}); "
                        f"expected {models.FORMATS}") from None
    return Source(kind=kind, shown=s.model_path, estimator=estimator)


# model.run: the scratch store and run the stage logs into, by repository root (created before dvc repro)
_STAGE_RUNS: dict[str, tuple[str, str, Path]] = {}


def stage_run_env(s: Settings) -> dict[str, str]:
    """model.run: a run in a scratch MLflow store of its own, for the stage to log its run and model into
    (``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID``, ``MLFLOW_EXPERIMENT_ID``); the kit copies the model into the
    job's store afterwards. The stage never gets the tracking server's address or credentials, on any ref."""
    if not s.model_run:
        return {}
    import tempfile

    import mlflow

    scratch = Path(tempfile.mkdtemp(prefix="leanops-stage-run-"))
    uri = f"sqlite:///{scratch / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    exp_id = client.create_experiment(s.experiment or "stage", artifact_location=(scratch / "artifacts").as_uri())
    run = client.create_run(exp_id, run_name="stage")
    _STAGE_RUNS[str(s.root)] = (uri, run.info.run_id, scratch)
    gh.step(f"model.run: the stage logs into run {run.info.run_id} (MLFLOW_RUN_ID, a scratch store)")
    return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLFLOW_RUN_ID": run.info.run_id,
            "MLFLOW_EXPERIMENT_ID": str(exp_id)}


def _stage_model(s: Settings, dest: Path) -> Source | None:
    """model.run: the model the stage logged in its run, downloaded to ``dest``; None when it logged none (the
    stage did not run: DVC restored its outputs)."""
    got = _STAGE_RUNS.get(str(s.root))
    if got is None:
        return None
    uri, run_id, _ = got
    import mlflow

    client = mlflow.MlflowClient(uri, registry_uri=uri)
    run = client.get_run(run_id)
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    if len(logged) > 1:
        names = ", ".join(sorted(m.name for m in logged))
        raise _bad_path(s, f"true: the stage logged {len(logged)} models in run {run_id} ({names}); expected one",
                        "run")
    if logged:  # its files where the scratch store keeps them (a models:/ URI would go to the global store)
        artifact = logged[0].artifact_location
    else:  # a model logged as the run's artifacts (mlflow.log_artifacts of a saved model directory)
        found = [a.path for a in client.list_artifacts(run_id) if a.is_dir
                 and any(f.path.endswith("/" + models.MLMODEL) for f in client.list_artifacts(run_id, a.path))]
        if not found:
            return None
        artifact = f"runs:/{run_id}/{found[0]}"
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact, dst_path=str(dest), tracking_uri=uri))
    if not (path / models.MLMODEL).is_file():
        path = next((m.parent for m in path.rglob(models.MLMODEL)), path)
    src = _mlflow_dir(s, path, f"the model of run {run_id}")
    src.kind, src.shown = "run", f"run {run_id}"
    src.params = {k: v for k, v in run.data.params.items()}
    src.metrics = {k: float(v) for k, v in run.data.metrics.items()}
    return src


def _source(s: Settings, scratch: Path) -> Source:
    if s.model_run:
        src = _stage_model(s, scratch)
        if src is not None:
            return src
        if s.model_path and (s.root / s.model_path).exists():
            gh.notice(f"model.run: no model logged by the stage in this job (DVC restored its outputs); "
                      f"logging model.path {s.model_path}")
            return _load_model(s)
        raise _bad_path(s, "true: the stage logged no model in the run handed to it (MLFLOW_RUN_ID) and model.path "
                        "holds none; expected the stage to call mlflow.<flavor>.log_model under "
                        "mlflow.start_run()", "run")
    return _load_model(s)


def _log_directory(client: Any, exp_id: str, run_id: str, directory: Path) -> str:
    """The MLflow model directory logged as it is (every file, the flavor untouched) as the run's model."""
    logged = client.create_logged_model(exp_id, name="model", source_run_id=run_id)
    try:
        client.log_model_artifacts(logged.model_id, str(directory))
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    return str(logged.model_uri)


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
    scratch = Path(tempfile.mkdtemp(prefix="leanops-model-"))
    try:
        # the model first: a file in no known format stops here, before anything is written to the store
        source = _source(s, scratch)
        gh.step(f"model: {source.shown} ({source.kind}"
                + (f"; flavor {', '.join(source.flavors)}" if source.flavors else "") + ")")
        tracking.configure_mlflow(uri)
        with gh.group("MLflow: log and register"):
            t0 = time.monotonic()
            import mlflow
            from mlflow import MlflowClient

            gh.step(f"mlflow {mlflow.__version__} imported in {time.monotonic() - t0:.1f}s")
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            client = MlflowClient(uri, registry_uri=uri)
            return _log_and_register(s, project, uri, key, lock_hash, metrics, stages, trained, push, trusted,
                                     client, source, t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        stage = _STAGE_RUNS.pop(str(s.root), None)
        if stage is not None:
            shutil.rmtree(stage[2], ignore_errors=True)


def _log_and_register(s: Settings, project: Project, uri: str, key: str, lock_hash: str, metrics: dict[str, float],
                  stages: list[StageResult], trained: bool, push: bool, trusted: bool, client: Any,
                  source: Source, t0: float) -> tuple[str, str]:
    import mlflow
    import mlflow.sklearn

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
    for path, md5 in project.locked_dep_hashes(s.refresh).items():  # refreshed data is the pipeline's input
        tags[f"dvc.dep.{path}"] = md5
    params = {**source.params, **{k: v for f in project.params(s.params_file, {}).values() for k, v in f.items()}}
    metrics = {**source.metrics, **metrics}
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
        if source.directory is not None:
            model_uri = _log_directory(client, exp_id, run_id, source.directory)
        else:
            with mlflow.start_run(run_id=run_id):
                signature = _signature(s, project, source.estimator)
                info = mlflow.sklearn.log_model(source.estimator, name="model",
                                                pip_requirements=_requirements(source.estimator),
                                                serialization_format="cloudpickle", signature=signature)
            model_uri = info.model_uri
        digest = logged_digest(model_uri, uri)
        client.set_tag(run_id, models.TAG_SHA256, digest)
        version_tags[models.TAG_SHA256] = digest
        gh.step(f"logged run {run_id} ({len(params)} params, {len(metrics)} metrics, model sha256:{digest[:12]})")
        _fault("before-register")
        if push:
            dvc_transfer(s, "push")
        mv = mlflow.register_model(model_uri, s.model_name, tags=version_tags)
        version = str(mv.version)
        client.set_tag(run_id, TAG_VERSION, version)
        _fault("before-alias")
        client.set_registered_model_alias(s.model_name, ALIAS, version)
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        left = _undo(client, s.model_name, run_id, version)
        if isinstance(exc, (BadInput, InfraError)) or not isinstance(exc, Exception):
            raise
        # the server took the run but not what followed (its artifact store down, a 5xx): one line, exit 3
        text = " ".join(str(exc).split())[:300].replace(uri, tracking.mask_uri(uri))
        where = "its artifact store" if "mlflow-artifacts" in text or "artifact" in type(exc).__name__.lower() \
            else "the server"
        raise InfraError(f"tracking server {tracking.mask_uri(uri)}: logging run {run_id} failed ({where}): "
                         f"{text}; the run is marked FAILED, "
                         + (f"version {version} is left: delete it" if left else "no version registered")) from None
    gh.step(f"registered {s.model_name} version {version} with alias {ALIAS} "
            f"in {time.monotonic() - t0:.1f}s")
    return run_id, version


def _undo(client: Any, name: str, run_id: str, version: str | None) -> bool:
    """A failed logging: delete the unfinished version and mark the run FAILED; whether a version is left."""
    left = False
    if version is not None:
        try:
            client.delete_model_version(name, version)
            gh.step(f"deleted the unfinished version {name}/{version}")
        except Exception as exc:  # noqa: BLE001 - report, then raise the first failure
            gh.warning(f"could not delete the unfinished version {name}/{version}: {exc}")
            left = True
    try:
        client.set_terminated(run_id, "FAILED")
    except Exception as exc:  # noqa: BLE001 - the first failure is the one to report
        gh.warning(f"could not mark run {run_id} FAILED: {exc}")
    return left


def logged_digest(model_uri: str, uri: str) -> str:
    """The digest (``models.model_digest``) of the model's files as the store now holds them, read back."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="leanops-logged-") as tmp:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp, tracking_uri=uri))
        found = got if (got / models.MLMODEL).is_file() else next((m.parent for m in got.rglob(models.MLMODEL)), got)
        return models.model_digest(found)


def _requirements(estimator: Any = None) -> list[str]:
    """scikit-learn's stack pinned to the installed versions, and the distribution of the estimator's own module
    (``xgboost`` for an XGBClassifier, ``lightgbm`` for an LGBMRegressor)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    dists = ["scikit-learn", "cloudpickle", "numpy", "pandas", "scipy"]
    top = type(estimator).__module__.split(".")[0] if estimator is not None else ""
    if top and top not in ("sklearn", "builtins", "__main__"):
        dists += [d for d in packages_distributions().get(top, []) if d not in dists][:1]
    out = []
    for dist in dists:
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out
