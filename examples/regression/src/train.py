"""Starter training stage (written by `leanops init --task regression`): a scikit-learn pipeline on one CSV.

Reads params.yaml (``train``), holds out a test split, fits one-hot encoding + scaling + a ridge
regression, and writes the pickled pipeline (model.path in leanops.yml), its metrics (train-with-cache.metrics:
rmse, mae, r2) and one row per test example (gate-metrics.bootstrap.predictions: id, y_true, y_pred), which
the gate's paired bootstrap compares with the champion's. Replace it with your own model; keep the outputs.
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
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
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
    if not pd.api.types.is_numeric_dtype(y):
        sys.exit(f"train: {target} is not numeric ({y.dtype}); this starter expects a regression target")
    x = df.drop(columns=[target, *p.get("drop", [])])
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    numeric = [c for c in x.columns if c not in categorical]
    pre = ColumnTransformer([
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         categorical),
        ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
    ])
    model = Pipeline([("preprocess", pre), ("model", Ridge(alpha=float(p.get("alpha", 1.0))))])
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=float(p["test_size"]), random_state=int(p["seed"]))
    model.fit(x_train, y_train)
    pred = model.predict(x_test)
    metrics = {
        "rmse": round(float(mean_squared_error(y_test, pred) ** 0.5), 6),
        "mae": round(float(mean_absolute_error(y_test, pred)), 6),
        "r2": round(float(r2_score(y_test, pred)), 6),
    }
    rows = pd.DataFrame({"id": x_test.index, "y_true": y_test.to_numpy(), "y_pred": pred.round(6)})
    for column in p.get("carry", []):  # the example's addition: the fairness gate's groups travel with the rows
        rows[column] = df.loc[x_test.index, column].to_numpy()
    write(MODEL, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    write(METRICS, (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    write(PREDICTIONS, rows.to_csv(index=False, lineterminator="\n").encode())
    print(f"train: {len(x_train)} rows, {len(x.columns)} features -> {MODEL.relative_to(ROOT)} {metrics}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
