"""Models as the capabilities load them: the digest of a model's files, its check, and unpickling.

build-push-image, gate-metrics, serve and train-with-cache all read models; they do it through here, so one
place says what a model's digest covers and how a pickled estimator is opened.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gh, tracking
from .errors import BadInput, InfraError

MLMODEL = "MLmodel"
# the sha256 of every file of the logged MLflow model (model_digest), recorded by train-with-cache on the run and
# on the version it registers; whoever loads or ships the model checks the files against it first
TAG_SHA256 = "leanops.model_sha256"
TAG_LOCK = "leanops.dvc_lock_sha256"  # train-with-cache's data hash tag on the run and the version


class NotAModel(Exception):
    """The file could not be unpickled: ``reason`` is the unpickler's own words (``Type: message``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# MLflow's own bookkeeping, rewritten by the registry each time the logged model is registered (name and
# version, YAML): not part of what was logged, never loaded as code
REGISTRY_META = "registered_model_meta"


def _files(model_dir: Path) -> Iterator[Path]:
    """Every file, ``__pycache__`` included (compiled bytecode in a model directory runs as much as its source),
    but the registry's ``registered_model_meta`` at the top."""
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and path.relative_to(model_dir).as_posix() != REGISTRY_META:
            yield path


def model_digest(model_dir: str | os.PathLike[str]) -> str:
    """sha256 over every file of a model directory: its relative path and the sha256 of its bytes."""
    root = Path(model_dir)
    outer = hashlib.sha256()
    for path in _files(root):
        inner = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                inner.update(chunk)
        outer.update(f"{path.relative_to(root).as_posix()}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def verify(model_dir: str | os.PathLike[str], expected: str) -> str:
    """Check the model files against the recorded digest; raise BadInput naming the directory on mismatch."""
    root = Path(model_dir)
    if not root.is_dir():
        raise BadInput(f"model directory {root} does not exist")
    actual = model_digest(root)
    if expected and actual != expected.strip().lower().removeprefix("sha256:"):
        raise BadInput(f"{root}: model files do not match the digest recorded at build time "
                       f"(expected sha256:{expected.removeprefix('sha256:')[:16]}..., got sha256:{actual[:16]}...); "
                       "refusing to load them")
    return actual


# what model.path may be, in the words of every error that refuses one
FORMATS = ("a pickle or joblib file of a scikit-learn-compatible estimator, a skops file, "
           "or an MLflow model directory (with an MLmodel file)")
# the first bytes of joblib's compressed files (zlib, gzip, bz2, xz, lzma, lz4); plain joblib files are pickles
_JOBLIB_MAGIC = (b"x\x01", b"x\x5e", b"x\x9c", b"x\xda", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00\x00",
                 b"\x04\x22\x4d\x18")


class Untrusted(Exception):
    """A skops file holding types that neither skops nor the adopter (``model.trusted-types``) trusts."""

    def __init__(self, types: list[str]) -> None:
        super().__init__(", ".join(types))
        self.types = types


def sniff(path: Path) -> str:
    """What a model path holds, from its content (never its name): ``mlflow`` (a directory with ``MLmodel``),
    ``skops`` (a zip archive with skops' ``schema.json``), ``joblib`` (a compressed joblib file), ``pickle`` (a
    pickle stream: plain pickles and uncompressed joblib files alike), else ``unknown``."""
    if path.is_dir():
        return "mlflow" if (path / MLMODEL).is_file() else "unknown"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return "unknown"
    if head.startswith(b"PK\x03\x04"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as zf:
                return "skops" if "schema.json" in zf.namelist() else "unknown"
        except (zipfile.BadZipFile, OSError):
            return "unknown"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}", b"c"):  # protocol 2+ opcodes, or protocol 0/1 ones
        return "pickle"
    if head.startswith(_JOBLIB_MAGIC):
        return "joblib"
    return "unknown"


def unpickle(path: Path) -> Any:
    """The object in a pickle or joblib file (``joblib.load`` reads both, compressed or not); ``NotAModel`` with
    the loader's words when it cannot be read."""
    try:
        import joblib

        return joblib.load(path)  # noqa: S301 - the adopting pipeline's own artifact
    except Exception as exc:  # noqa: BLE001 - whatever the unpickler says, the file is not a model
        raise NotAModel(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None


def load_skops(path: Path, trusted: list[str]) -> Any:
    """The object in a skops file, after its trusted-types check: ``Untrusted`` names the types that neither skops'
    defaults nor ``trusted`` (the adopter's ``model.trusted-types``) cover; ``NotAModel`` when skops cannot read it."""
    try:
        import skops.io as sio

        unknown = [str(t) for t in sio.get_untrusted_types(file=path)]
    except Exception as exc:  # noqa: BLE001 - skops' own words: the file is not a skops model
        raise NotAModel(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    refused = [t for t in unknown if t not in trusted]
    if refused:
        raise Untrusted(refused)
    try:
        return sio.load(path, trusted=unknown)
    except Exception as exc:  # noqa: BLE001
        raise NotAModel(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None


def load_estimator(path: Path, trusted: list[str] | None = None) -> tuple[str, Any]:
    """(format, estimator) of a model file: skops (with its trusted-types check), else pickle or joblib.
    ``NotAModel`` when it is neither or the object has no ``predict``; ``Untrusted`` (skops) as above."""
    kind = sniff(path)
    if kind == "skops":
        obj = load_skops(path, list(trusted or []))
    elif kind in ("pickle", "joblib"):
        obj = unpickle(path)
    else:
        raise NotAModel("neither a pickle, a joblib nor a skops file")
    if not callable(getattr(obj, "predict", None)):
        raise NotAModel(f"it holds a {type(obj).__module__}.{type(obj).__qualname__}, which has no predict()")
    return kind, obj


@dataclass
class Fetched:
    """A model downloaded from MLflow: where it is, what it is, and the digest its training recorded."""

    path: Path
    uri: str
    name: str = ""
    version: str = ""
    run_id: str = ""
    data_hash: str = ""
    recorded: str = ""  # TAG_SHA256 of the version (or the run), "" when absent
    tags: dict[str, str] = field(default_factory=dict)


def fetch(uri: str, dest: Path, store_uri: str, *, local: bool = False) -> Fetched:
    """Download the MLflow model behind ``uri`` (``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/...``)
    into ``dest`` (the directory holding ``MLmodel``), with the digest train-with-cache recorded for it."""
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
        out = Fetched(path=dest, uri=uri)
        try:
            if uri.startswith("models:/"):
                m = tracking.ALIAS_URI.match(uri)
                if m:
                    mv = client.get_model_version_by_alias(m["name"], m["alias"])
                else:
                    name_, _, ver = uri.removeprefix("models:/").partition("/")
                    mv = client.get_model_version(name_, ver)
                out.name, out.version, out.run_id = mv.name, str(mv.version), mv.run_id or ""
                out.tags = dict(mv.tags or {})
                out.data_hash = out.tags.get(TAG_LOCK, "")
                out.recorded = out.tags.get(TAG_SHA256, "")
                if info is not None and info.version != out.version:
                    raise InfraError(f"{uri}: the registry moved while reading ({info.version} -> {out.version})")
                uri = f"models:/{out.name}/{out.version}"
            elif uri.startswith("runs:/"):
                out.run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            if out.run_id and not (out.data_hash and out.recorded):
                try:
                    run_tags = client.get_run(out.run_id).data.tags
                except MlflowException:
                    run_tags = {}
                out.data_hash = out.data_hash or run_tags.get(TAG_LOCK, "")
                if uri.startswith("runs:/"):  # a version's digest comes from the version, never from its run
                    out.recorded = run_tags.get(TAG_SHA256, "")
            tmp = Path(tempfile.mkdtemp(prefix="leanops-model-"))
            try:
                got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp),
                                                               tracking_uri=store_uri))
                found = got if (got / MLMODEL).is_file() else next((m.parent for m in got.rglob(MLMODEL)), None)
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
        gh.step(f"model {out.name or uri} version {out.version or '-'} (run {out.run_id or '-'}) -> {dest}"
                + (" from the local store" if local else ""))
    return out


def check_recorded(fetched: Fetched) -> str:
    """The downloaded files' digest, refused (BadInput, exit 2) when it differs from the recorded one or none was
    recorded: nothing is unpickled, built into an image or served before this passes."""
    actual = model_digest(fetched.path)
    shown = f"{fetched.name}/{fetched.version}" if fetched.version else fetched.uri
    if not fetched.recorded:
        raise BadInput(f"{shown}: no {TAG_SHA256} tag; expected a model registered by train-with-cache, which "
                       "records the digest of its files (refusing to load an unverified model)")
    if actual != fetched.recorded.strip().lower().removeprefix("sha256:"):
        raise BadInput(f"{shown}: model files do not match the digest recorded at training "
                       f"(expected sha256:{fetched.recorded[:16]}..., got sha256:{actual[:16]}...); "
                       "refusing to load them")
    gh.step(f"{shown}: model files match the recorded sha256:{actual[:12]}")
    return actual


def load_verified(uri: str, store_uri: str) -> tuple[Any, Fetched]:
    """The pyfunc model behind ``uri``, loaded only after its files matched the recorded digest."""
    dest = Path(tempfile.mkdtemp(prefix="leanops-verified-")) / "model"
    fetched = fetch(uri, dest, store_uri)
    check_recorded(fetched)
    import mlflow.pyfunc

    return tracking.mlflow_call(store_uri, f"load {uri}", mlflow.pyfunc.load_model, str(dest)), fetched
