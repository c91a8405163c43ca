"""Stage ``train``: fit a scikit-learn Pipeline (one-hot + scaling + classifier) and pickle it."""

from __future__ import annotations

import pickle
import sys
from typing import Any

import pandas as pd
from common import CATEGORICAL, MODEL, NUMERIC, TARGET, TRAIN, params, rel, write_atomic
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MODELS = ("logistic_regression", "random_forest")


def build(p: dict[str, Any]) -> Pipeline:
    """The model named by ``train.model``, behind the shared preprocessing."""
    kind = p.get("model", "logistic_regression")
    class_weight = p.get("class_weight")
    seed = int(p.get("seed", 42))
    if kind == "logistic_regression":
        clf: Any = LogisticRegression(
            C=float(p.get("C", 1.0)), class_weight=class_weight, max_iter=1000, random_state=seed
        )
    elif kind == "random_forest":
        depth = p.get("max_depth")
        clf = RandomForestClassifier(
            n_estimators=int(p.get("n_estimators", 200)),
            max_depth=None if depth is None else int(depth),
            class_weight=class_weight,
            random_state=seed,
            n_jobs=1,
        )
    else:
        raise SystemExit(f"train: params.yaml train.model is {kind!r}; expected one of {', '.join(MODELS)}")
    pre = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numeric", StandardScaler(), NUMERIC),
        ],
        remainder="drop",
    )
    return Pipeline([("preprocess", pre), ("model", clf)])


def main() -> int:
    p = params("train")
    df = pd.read_csv(TRAIN)
    model = build(p).fit(df[CATEGORICAL + NUMERIC], df[TARGET])

    def dump(tmp: Any) -> None:
        with open(tmp, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)

    write_atomic(MODEL, dump)
    print(f"train: {p.get('model')} on {len(df)} rows -> {rel(MODEL)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
