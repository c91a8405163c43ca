"""What the stages share: the example's root, its params and atomic file writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent  # examples/churn: every path below is relative to it
PARAMS = ROOT / "params.yaml"
RAW = ROOT / "data" / "raw" / "churn.csv"
TRAIN = ROOT / "data" / "prepared" / "train.csv"
TEST = ROOT / "data" / "prepared" / "test.csv"
MODEL = ROOT / "models" / "model.pkl"
METRICS = ROOT / "metrics" / "eval.json"
PREDICTIONS = ROOT / "metrics" / "predictions.csv"

TARGET = "churned"
ID = "customer_id"
SENSITIVE = "gender"
CATEGORICAL = ["contract", "payment_method", "internet_service"]
NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "senior_citizen"]
# customer_id is a key and gender the sensitive attribute: neither is a feature.


def params(section: str) -> dict[str, Any]:
    """One section of params.yaml."""
    with open(PARAMS, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return dict(data.get(section) or {})


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def rel(path: Path) -> str:
    return os.path.relpath(path, ROOT)
