"""Starter training stage (written by `leanops init`): a scikit-learn pipeline on one CSV, binary target.

Reads params.yaml (``train``), holds out a stratified test split, fits one-hot encoding + scaling + a
logistic regression, and writes the pickled pipeline (model.path in leanops.yml) and its metrics
(train-with-cache.metrics). Replace it with your own model; keep the two outputs.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models/model.pkl"
METRICS = ROOT / "metrics/eval.json"


def write(path: Path, data: bytes) -> None:
    """Atomically: a half-written model never lands in DVC's cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main() -> int:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    df = pd.read_csv(ROOT / p["data"])
    target = p["target"]
    if target not in df.columns:
        sys.exit(f"train: params.yaml train.target is {target!r}; expected one of {', '.join(map(str, df.columns))}")
    y = df[target]
    if y.nunique() != 2:
        sys.exit(f"train: {target} has {y.nunique()} classes; this starter expects a binary target")
    x = df.drop(columns=[target, *p.get("drop", [])])
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    numeric = [c for c in x.columns if c not in categorical]
    pre = ColumnTransformer([
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         categorical),
        ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
    ])
    model = Pipeline([("preprocess", pre), ("model", LogisticRegression(
        C=float(p.get("C", 1.0)), class_weight="balanced", max_iter=1000, random_state=int(p["seed"])))])
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=float(p["test_size"]), random_state=int(p["seed"]), stratify=y)
    model.fit(x_train, y_train)
    positive = model.classes_[1]
    score = model.predict_proba(x_test)[:, 1]
    pred = model.predict(x_test)
    metrics = {
        "roc_auc": round(float(roc_auc_score(y_test == positive, score)), 6),
        "f1": round(float(f1_score(y_test, pred, pos_label=positive)), 6),
        "accuracy": round(float(accuracy_score(y_test, pred)), 6),
    }
    write(MODEL, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    write(METRICS, (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    print(f"train: {len(x_train)} rows, {len(x.columns)} features -> {MODEL.relative_to(ROOT)} {metrics}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
