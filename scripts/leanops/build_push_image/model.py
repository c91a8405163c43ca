"""The model to serve: fetched from MLflow (``models:/``, ``runs:/``) or a local directory, with its digest.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import models, serve, tracking
from ..errors import BadInput
from .plan import Plan


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
        shutil.copytree(src, dest)
        model = Model(path=dest, name=fallback_name or src.name, version="")
        model.sha256 = models.model_digest(dest)
    else:
        store_uri, local = tracking.resolve_uri(tracking_uri or None, configured_uri, p.root)
        got = models.fetch(uri, dest, store_uri, local=local)
        model = Model(path=dest, name=got.name or "model", version=got.version, run_id=got.run_id,
                      data_hash=got.data_hash)
        # the files that go into the image are the ones training logged: checked before anything else reads them
        model.sha256 = models.check_recorded(got)
    serve.read_signature(dest)  # BadInput when the signature is missing
    if not model.version:
        model.version = f"sha256-{model.sha256[:12]}"
    return model
