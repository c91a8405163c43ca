"""The model to serve: fetched from MLflow (``models:/``, ``runs:/``) or a local directory, with its digest.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import gh, models, serve, tracking
from ..errors import BadInput, InfraError
from .plan import Plan

TAG_LOCK = "leanops.dvc_lock_sha256"  # train-with-cache's data hash tag on the run and the version


@dataclass
class Model:
    path: Path
    name: str
    version: str
    run_id: str = ""
    data_hash: str = ""
    sha256: str = ""


def fetch_model(p: Plan, dest: Path, tracking_uri: str, configured_uri: str | None, fallback_name: str) -> Model:
    """Copy (a path) or download (MLflow) the model into ``dest``; check it has a signature."""
    uri = p.model_uri
    if not re.match(r"^(models|runs|mlflow-artifacts|s3|gs|wasbs|dbfs)://?", uri):
        src = Path(uri) if Path(uri).is_absolute() else p.root / uri
        if not src.is_dir():
            raise BadInput(f"model-uri: model directory {uri} not found; expected an MLflow model directory "
                           "or models:/NAME@ALIAS")
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        model = Model(path=dest, name=fallback_name or src.name, version="")
    else:
        model = _download(uri, dest, *tracking.resolve_uri(tracking_uri or None, configured_uri, p.root))
    serve.read_signature(dest)  # BadInput when the signature is missing
    model.sha256 = models.model_digest(dest)
    if not model.version:
        model.version = f"sha256-{model.sha256[:12]}"
    return model


def _download(uri: str, dest: Path, store_uri: str, local: bool) -> Model:
    tracking.configure_mlflow(store_uri)
    where = tracking.mask_uri(store_uri)
    info = None
    store = tracking.reader(store_uri)
    if uri.startswith("models:/") and store is not None:
        store.probe()
        info = tracking.resolve_model_uri(uri, store)  # BadInput: no such model or alias
    with gh.group(f"MLflow: download {uri} from {where}"):
        import mlflow
        from mlflow.exceptions import MlflowException

        client = mlflow.MlflowClient(store_uri, registry_uri=store_uri)
        name, version, run_id, data_hash = "", "", "", ""
        try:
            if uri.startswith("models:/"):
                m = tracking.ALIAS_URI.match(uri)
                if m:
                    mv = client.get_model_version_by_alias(m["name"], m["alias"])
                else:
                    name_, _, ver = uri.removeprefix("models:/").partition("/")
                    mv = client.get_model_version(name_, ver)
                name, version, run_id = mv.name, str(mv.version), mv.run_id or ""
                data_hash = (mv.tags or {}).get(TAG_LOCK, "")
                if info is not None and info.version != version:
                    raise InfraError(f"{uri}: the registry moved while reading ({info.version} -> {version})")
                uri = f"models:/{name}/{version}"
            elif uri.startswith("runs:/"):
                run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            if run_id and not data_hash:
                try:
                    data_hash = client.get_run(run_id).data.tags.get(TAG_LOCK, "")
                except MlflowException:
                    data_hash = ""
            tmp = Path(tempfile.mkdtemp(prefix="leanops-model-"))
            try:
                got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp),
                                                               tracking_uri=store_uri))
                if (got / serve.MLMODEL).is_file():
                    shutil.copytree(got, dest)
                else:
                    found = next((m.parent for m in got.rglob(serve.MLMODEL)), None)
                    if found is None:
                        raise BadInput(f"model-uri: {uri} holds no MLmodel file; expected an MLflow model")
                    shutil.copytree(found, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except MlflowException as exc:
            text = " ".join(str(exc.message).split())[:300]
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise BadInput(f"model-uri: {uri} not found in {where}: {text}") from None
            raise InfraError(f"tracking server {where}: {text}") from None
        gh.step(f"model {name or uri} version {version or '-'} (run {run_id or '-'}) -> {dest}"
                + (" from the local store" if local else ""))
    return Model(path=dest, name=name or "model", version=version, run_id=run_id, data_hash=data_hash)
