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

# the libraries of MLflow's flavors that the serve image holds only for a model that needs them: the model's own
# requirements.txt (written by MLflow when it was logged) naming one -> the kit's extra that installs it
FLAVOR_EXTRAS = {"xgboost": "serve-xgboost", "xgboost-cpu": "serve-xgboost", "lightgbm": "serve-lightgbm"}


def serve_extras(model_dir: Path) -> list[str]:
    """The kit's extras the image needs beyond ``serve`` for this model, from its ``requirements.txt`` (only the
    names: what is installed is the kit's locked, hash-pinned versions, never the model's own pins)."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return []
    wanted = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if m and not line.lstrip().startswith(("#", "-")):
            extra = FLAVOR_EXTRAS.get(re.sub(r"[-_.]+", "-", m[1]).lower())
            if extra:
                wanted.add(extra)
    return sorted(wanted)


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
