"""Benchmark: the paired bootstrap of gate-metrics against the obvious loop, measured in the same run.

    uv run --frozen --all-extras python bench/gate-metrics/run.py [--rows 10000] [--iterations 1000]
                                                                   [--naive 100] [--json PATH]

leanops draws each resample as a weight matrix and computes roc_auc, f1 and accuracy for candidate and champion
from weighted sums (``leanops.gate_metrics.bootstrap.paired_bootstrap``). The baseline is what one writes
first: for each resample, index both prediction tables and call scikit-learn's metrics (timed on ``--naive``
resamples and scaled to ``--iterations``). Targets: 1000 resamples of 10,000 rows (three metrics) in <= 3 s,
and >= 20x faster than the baseline. Prints a table to stdout, progress to stderr; exits 0 whether the
targets pass or not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from leanops.fsutil import atomic_write_json
from leanops.gate_metrics import bootstrap as bs

METRICS = ["roc_auc", "f1", "accuracy"]


def tables(rows: int, folder: Path) -> tuple[bs.Predictions, bs.Predictions]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, rows)
    out = []
    for name, noise in (("candidate", 0.30), ("champion", 0.32)):
        score = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, noise, rows), 0, 1).round(4)
        lines = ["id,y_true,y_pred,y_score"] + [f"{i},{y[i]},{int(score[i] >= 0.5)},{score[i]}" for i in range(rows)]
        path = folder / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n")
        out.append(bs.read_predictions(path))
    return out[0], out[1]


def naive(candidate: bs.Predictions, champion: bs.Predictions, iterations: int) -> dict[str, tuple[float, float]]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    rng = np.random.default_rng(1)
    n = len(candidate)
    diffs: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(iterations):
        idx = rng.integers(0, n, n)
        y = candidate.y_true[idx]
        for table, sign in ((candidate, 1), (champion, -1)):
            p, s = table.y_pred[idx], table.y_score[idx]
            values = {"roc_auc": roc_auc_score(y, s), "f1": f1_score(y, p), "accuracy": accuracy_score(y, p)}
            for m in METRICS:
                if sign == 1:
                    diffs[m].append(values[m])
                else:
                    diffs[m][-1] -= values[m]
    return {m: (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))) for m, d in diffs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--naive", type=int, default=100, help="resamples the baseline is timed on")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cand, champ = tables(args.rows, Path(tmp))
    print(f"rows {args.rows}, resamples {args.iterations}, metrics {', '.join(METRICS)}", file=sys.stderr)
    bs.paired_bootstrap(cand, champ, METRICS, iterations=10)  # warm-up (numpy's first calls)
    start = time.perf_counter()
    found = bs.paired_bootstrap(cand, champ, METRICS, iterations=args.iterations)
    leanops_s = time.perf_counter() - start
    print(f"leanops: {leanops_s:.3f}s", file=sys.stderr)
    start = time.perf_counter()
    baseline = naive(cand, champ, args.naive)
    naive_s = (time.perf_counter() - start) * args.iterations / args.naive
    print(f"naive: {naive_s:.3f}s (scaled from {args.naive} resamples)", file=sys.stderr)
    ratio = naive_s / leanops_s
    print("| measurement | seconds | naive / leanops |\n| --- | --- | --- |")
    print(f"| leanops paired bootstrap | {leanops_s:.3f} | {ratio:.0f} |")
    print(f"| naive loop with scikit-learn (scaled) | {naive_s:.3f} | 1 |")
    print("\n| metric | leanops 95% interval | naive 95% interval |\n| --- | --- | --- |")
    for m in METRICS:
        print(f"| {m} | [{found[m].low:+.4f}, {found[m].high:+.4f}] | "
              f"[{baseline[m][0]:+.4f}, {baseline[m][1]:+.4f}] |")
    ok = leanops_s <= 3.0 and ratio >= 20
    print(f"\ntargets (<= 3 s, >= 20x the naive loop): {'met' if ok else 'NOT met'}")
    if args.json:
        atomic_write_json(args.json, {"rows": args.rows, "iterations": args.iterations, "leanops_s": leanops_s,
                                      "naive_s": naive_s, "ratio": ratio, "targets_met": ok,
                                      "intervals": {m: [found[m].low, found[m].high] for m in METRICS},
                                      "naive_intervals": baseline})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
