"""Stage ``evaluate``: score the test split; write the metrics and the per-example predictions."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pandas as pd
from common import ID, METRICS, MODEL, PREDICTIONS, SENSITIVE, TARGET, TEST, params, rel, write_atomic
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score


def main() -> int:
    threshold = float(params("evaluate").get("threshold", 0.5))
    with open(MODEL, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - the pipeline's own artifact, written by train.py
    test = pd.read_csv(TEST)
    y_true = test[TARGET].astype(int)
    y_score = model.predict_proba(test)[:, 1]
    y_pred = (y_score >= threshold).astype(int)

    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "roc_auc": roc_auc_score(y_true, y_score),
        "f1": f1_score(y_true, y_pred, zero_division=0),
        "precision": precision_score(y_true, y_pred, zero_division=0),
        "recall": recall_score(y_true, y_pred, zero_division=0),
    }
    metrics = {k: round(float(v), 6) for k, v in metrics.items()}

    predictions = pd.DataFrame(
        {
            "customer_id": test[ID],
            "y_true": y_true,
            "y_pred": y_pred,
            "y_score": y_score.round(6),
            "gender": test[SENSITIVE],
        }
    )

    def dump_metrics(tmp: Path) -> None:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")

    write_atomic(METRICS, dump_metrics)
    write_atomic(PREDICTIONS, lambda tmp: predictions.to_csv(tmp, index=False, lineterminator="\n"))
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    print(f"evaluate: {shown} -> {rel(METRICS)}, {rel(PREDICTIONS)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
