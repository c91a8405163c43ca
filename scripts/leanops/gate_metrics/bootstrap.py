"""Per-example predictions and the paired bootstrap of metric differences (numpy only, no pandas).

Candidate and champion are scored on the same evaluation set; their rows are paired by an id column.
Each resample draws the same example indices for both, so what varies between examples (hard and easy
ones) cancels out and the interval of ``metric(candidate) - metric(champion)`` is much narrower than two
separate intervals would suggest. Resamples are drawn as weight matrices (how often each example was drawn),
and every metric is computed from weighted sums: 1000 resamples of 10,000 rows, three metrics, take about
2 s on a loaded 2-core machine (bench/gate-metrics/run.py), 50-90x faster than resampling with scikit-learn.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .gates import Interval

CHUNK_CELLS = 2_000_000  # resamples x rows per weight matrix (about 16 MB of float64)


@dataclass
class Predictions:
    path: str
    ids: list[str]
    y_true: Any  # numpy arrays
    y_pred: Any
    y_score: Any | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)  # the other columns, as text
    id_name: str = "id"

    def __len__(self) -> int:
        return len(self.ids)


def pick_id_column(header: Sequence[str], wanted: str | None) -> str:
    if wanted:
        return wanted
    if "id" in header:
        return "id"
    for name in header:
        if name.lower().endswith("_id"):
            return name
    return header[0]


def read_predictions(path: Path, *, shown: str | None = None, id_column: str | None = None,
                     label: str = "y_true", prediction: str = "y_pred", score: str = "y_score") -> Predictions:
    """A predictions CSV: an id column, the label, the prediction, optionally a score and other columns."""
    import numpy as np

    name = shown or str(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise BadInput("predictions file not found; expected a CSV with one row per evaluation example",
                       file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the predictions: {exc}", file=name) from None
    if not rows or not rows[0]:
        raise BadInput("empty predictions file; expected a header and one row per example", file=name)
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    id_name = pick_id_column(header, id_column)
    missing = [c for c in (id_name, label, prediction) if c not in header]
    if missing:
        raise BadInput(f"no column {', '.join(map(repr, missing))}; the columns are {', '.join(header)}", file=name)
    if not body:
        raise BadInput("no rows; expected one row per evaluation example", file=name)
    index = {h: i for i, h in enumerate(header)}
    for n, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise BadInput(f"{len(row)} fields, expected {len(header)}", file=name, line=n)

    def numbers(column: str) -> Any:
        i = index[column]
        try:
            return np.array([float(r[i]) if r[i].strip() else math.nan for r in body], dtype=float)
        except ValueError:
            bad = next(n for n, r in enumerate(body, start=2) if not _is_number(r[i]))
            raise BadInput(f"column {column!r}: {body[bad - 2][i]!r} is not a number", file=name, line=bad) from None

    ids = [r[index[id_name]] for r in body]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise BadInput(f"column {id_name!r} repeats {dup!r}; expected one row per example", file=name)
    others = {h: [r[i] for r in body] for h, i in index.items() if h not in (id_name, label, prediction, score)}
    return Predictions(name, ids, numbers(label), numbers(prediction),
                       numbers(score) if score in index else None, others, id_name)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return not text.strip()


# ---------------------------------------------------------------------------- weighted metrics
# Each takes the weight matrix W (resamples x rows) and returns one value per resample.


def _confusion(w: Any, y: Any, p: Any) -> tuple[Any, Any, Any, Any]:
    y1, p1 = (y > 0.5).astype(float), (p > 0.5).astype(float)
    return w @ (y1 * p1), w @ ((1 - y1) * p1), w @ (y1 * (1 - p1)), w @ ((1 - y1) * (1 - p1))


def _ratio(num: Any, den: Any) -> Any:
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)  # sklearn's zero_division=0


def _accuracy(w: Any, t: Predictions) -> Any:
    tp, fp, fn, tn = _confusion(w, t.y_true, t.y_pred)
    return _ratio(tp + tn, tp + fp + fn + tn)


def _precision(w: Any, t: Predictions) -> Any:
    tp, fp, _, _ = _confusion(w, t.y_true, t.y_pred)
    return _ratio(tp, tp + fp)


def _recall(w: Any, t: Predictions) -> Any:
    tp, _, fn, _ = _confusion(w, t.y_true, t.y_pred)
    return _ratio(tp, tp + fn)


def _f1(w: Any, t: Predictions) -> Any:
    tp, fp, fn, _ = _confusion(w, t.y_true, t.y_pred)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _roc_auc(w: Any, t: Predictions) -> Any:
    """Weighted Mann-Whitney: P(score of a positive > score of a negative), ties counting a half."""
    import numpy as np

    score: Any = t.y_score
    order = np.argsort(score, kind="mergesort")
    s, y = score[order], (t.y_true[order] > 0.5).astype(float)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores
    ws = w[:, order]
    pos = np.add.reduceat(ws * y, starts, axis=1)
    neg = np.add.reduceat(ws * (1 - y), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
    return np.where((total_pos > 0) & (total_neg > 0), auc, np.nan)


def _mean_error(power: int) -> Callable[[Any, Predictions], Any]:
    def metric(w: Any, t: Predictions) -> Any:
        import numpy as np

        return (w @ (np.abs(t.y_true - t.y_pred) ** power)) / w.sum(axis=1)

    return metric


def _rmse(w: Any, t: Predictions) -> Any:
    import numpy as np

    return np.sqrt(_mean_error(2)(w, t))


METRICS: dict[str, Callable[[Any, Predictions], Any]] = {
    "accuracy": _accuracy, "precision": _precision, "recall": _recall, "f1": _f1, "roc_auc": _roc_auc,
    "mae": _mean_error(1), "mse": _mean_error(2), "rmse": _rmse,
}


def computable(metric: str, table: Predictions) -> bool:
    return metric in METRICS and (metric != "roc_auc" or table.y_score is not None)


def point(metric: str, table: Predictions) -> float:
    """The metric on the whole table (every weight 1)."""
    import numpy as np

    return float(METRICS[metric](np.ones((1, len(table))), table)[0])


# ---------------------------------------------------------------------------- pairing and resampling


def align(candidate: Predictions, champion: Predictions) -> tuple[Predictions, Predictions, str]:
    """Both tables restricted to the same examples in the same order, or a reason why they cannot pair.

    Returns (candidate, champion, "") or (candidate, champion, reason) with reason non-empty.
    """
    import numpy as np

    where = {k: i for i, k in enumerate(champion.ids)}
    common = [i for i, k in enumerate(candidate.ids) if k in where]
    if len(common) != len(candidate) or len(common) != len(champion):
        return candidate, champion, (f"not the same evaluation set: {len(common)} of {len(candidate)} candidate and "
                                     f"{len(champion)} champion rows share an {candidate.id_name}")
    c_idx = np.array(common)
    h_idx = np.array([where[candidate.ids[i]] for i in common])
    a, b = _take(candidate, c_idx), _take(champion, h_idx)
    labels_differ = ~np.isclose(a.y_true, b.y_true, equal_nan=True)
    if labels_differ.any():
        return a, b, f"the labels differ on {int(labels_differ.sum())} of {len(a)} rows: not the same evaluation set"
    return a, b, ""


def _take(t: Predictions, idx: Any) -> Predictions:
    return Predictions(t.path, [t.ids[i] for i in idx], t.y_true[idx], t.y_pred[idx],
                       None if t.y_score is None else t.y_score[idx],
                       {k: [v[i] for i in idx] for k, v in t.columns.items()}, t.id_name)


def weights(rng: Any, resamples: int, n: int) -> Any:
    """How often each of ``n`` examples is drawn in each resample (rows sum to n)."""
    import numpy as np

    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def paired_bootstrap(candidate: Predictions, champion: Predictions, metrics: Sequence[str], *,
                     iterations: int = 1000, level: float = 0.05, seed: int = 0) -> dict[str, Interval]:
    """The (1 - level) percentile interval of ``metric(candidate) - metric(champion)`` for each metric.

    The tables must be aligned (same examples, same order). Metrics that cannot be computed from the
    predictions are left out.
    """
    import numpy as np

    names = [m for m in metrics if computable(m, candidate) and computable(m, champion)]
    n = len(candidate)
    if not names or n == 0:
        return {}
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[Any]] = {m: [] for m in names}
    chunk = max(1, min(iterations, CHUNK_CELLS // n))
    done = 0
    while done < iterations:
        size = min(chunk, iterations - done)
        w = weights(rng, size, n)
        for m in names:
            diffs[m].append(METRICS[m](w, candidate) - METRICS[m](w, champion))
        done += size
    out = {}
    for m in names:
        d = np.concatenate(diffs[m])
        d = d[np.isfinite(d)]
        if not len(d):
            continue
        low, high = np.percentile(d, [100 * level / 2, 100 * (1 - level / 2)])
        out[m] = Interval(diff=point(m, candidate) - point(m, champion), low=float(low), high=float(high),
                          level=level, n=n)
    return out


def intervals_for(candidate: Predictions, champion: Predictions, metrics: Sequence[str],
                  settings: Mapping[str, Any]) -> tuple[dict[str, Interval], str]:
    """Pair, then bootstrap; returns (intervals, "") or ({}, why the bootstrap could not run)."""
    a, b, reason = align(candidate, champion)
    if reason:
        return {}, reason
    found = paired_bootstrap(a, b, metrics, iterations=int(settings.get("iterations") or 1000),
                             level=float(settings.get("level") or 0.05), seed=int(settings.get("seed") or 0))
    return found, ""
