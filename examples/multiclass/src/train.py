"""Starter training stage (written by `leanops init --task multiclass`): a scikit-learn pipeline on one CSV.

Reads params.yaml (``train``), holds out a stratified test split, fits one-hot encoding + scaling + a
multinomial logistic regression, and writes the pickled pipeline (model.path in leanops.yml), its metrics
(train-with-cache.metrics: f1_macro, log_loss, accuracy) and one row per test example
(gate-metrics.bootstrap.predictions: id, y_true, y_pred and proba_<class> for every class), which the
gate's paired bootstrap compares with the champion's. Replace it with your own model; keep the outputs.
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
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models/model.pkl"
METRICS = ROOT / "metrics/eval.json"
PREDICTIONS = ROOT / "metrics/predictions.csv"


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
    if y.nunique() < 3:
        sys.exit(f"train: {target} has {y.nunique()} classes; this starter expects 3 or more (leanops init --task)")
    x = df.drop(columns=[target, *p.get("drop", [])])
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    numeric = [c for c in x.columns if c not in categorical]
    pre = ColumnTransformer([
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         categorical),
        ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
    ])
    model = Pipeline([("preprocess", pre), ("model", LogisticRegression(
        C=float(p.get("C", 1.0)), max_iter=2000, random_state=int(p["seed"])))])
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=float(p["test_size"]), random_state=int(p["seed"]), stratify=y)
    model.fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    pred = model.predict(x_test)
    metrics = {
        "f1_macro": round(float(f1_score(y_test, pred, average="macro")), 6),
        "log_loss": round(float(log_loss(y_test, proba, labels=model.classes_)), 6),
        "accuracy": round(float(accuracy_score(y_test, pred)), 6),
    }
    rows = pd.DataFrame({"id": x_test.index, "y_true": y_test.to_numpy(), "y_pred": pred})
    for k, cls in enumerate(model.classes_):
        rows[f"proba_{cls}"] = proba[:, k].round(6)
    write(MODEL, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    write(METRICS, (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    write(PREDICTIONS, rows.to_csv(index=False, lineterminator="\n").encode())
    print(f"train: {len(x_train)} rows, {len(x.columns)} features, {len(model.classes_)} classes -> "
          f"{MODEL.relative_to(ROOT)} {metrics}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
