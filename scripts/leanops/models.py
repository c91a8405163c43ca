"""Models as the capabilities load them: the digest of a model's files, its check, and unpickling.

build-push-image, gate-metrics, serve and train-with-cache all read models; they do it through here, so one
place says what a model's digest covers and how a pickled estimator is opened.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import BadInput


class NotAModel(Exception):
    """The file could not be unpickled: ``reason`` is the unpickler's own words (``Type: message``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _files(model_dir: Path) -> Iterator[Path]:
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
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


def unpickle(path: Path) -> Any:
    """The object in a pickle file; ``NotAModel`` with the unpickler's words when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - the adopting pipeline's own artifact
    except Exception as exc:  # noqa: BLE001 - whatever the unpickler says, the file is not a model
        raise NotAModel(f"{type(exc).__name__}: {exc}") from None
