#!/usr/bin/env python3
"""Benchmark `leanops weekly-drift` on 1,000,000 reference vs 1,000,000 current rows (20 numeric, 5 categorical).

    uv run --frozen --all-extras python bench/weekly-drift/run.py [--rows N] [--repeat N] [--skip-evidently]
                                                                  [--format parquet|csv] [--json out.json]

In one run, each measurement a whole child process (start-up, imports, reading both files included), so the
times are what a job step waits for and the peak memory (max RSS) is the process's own:
  baseline   a plain numpy/scipy per-column test: pyarrow read, two-sample K-S (scipy.stats.ks_2samp) per
             numeric column, chi-square of the contingency table (scipy.stats.chi2_contingency) per
             categorical column, p < 0.05.
  leanops    `leanops weekly-drift --reference R --current C --open-issue false`: the complete run, with the
             Evidently HTML report (from a 10,000-row sample, verdicts from all rows), result.json and the job
             summary.
  evidently  Evidently 0.7's DataDriftPreset run its default way on all rows (pandas.read_parquet, Report.run,
             save_html): the verdicts leanops must reproduce, and the time it takes.
Before timing, each child runs once on 20,000 rows so that bytecode (in a private PYTHONPYCACHEPREFIX) and the
page cache are warm for all of them alike.

Targets: leanops <= 2x the baseline (median of --repeat); leanops' verdict per column == Evidently's on the
same full data. Exit 0 whether the targets pass or not; 1 if a measurement broke. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
MAX_TIME_RATIO = 2.0
NUMERIC = 20
CATEGORICAL = 5


# ---------------------------------------------------------------------------- data


def make_table(rows: int, seed: int, shifted: bool):  # type: ignore[no-untyped-def]
    """20 numeric and 5 categorical columns; the current data moves some columns a lot, some a little, some not."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    # shift per numeric column, in units of its spread: large, near Evidently's 0.1 threshold, or none
    moves = [0.5, 0.0, 0.12, 0.0, 0.08, 0.0, 0.3, 0.0, 0.0, 0.15, 0.0, 0.0, 0.05, 0.0, 0.2, 0.0, 0.0, 0.0, 0.11, 0.0]
    for i in range(NUMERIC):
        d = moves[i] if shifted else 0.0
        kind = i % 4
        if kind == 0:
            values = rng.normal(d, 1.0, rows)
        elif kind == 1:
            values = rng.lognormal(0.2 * d, 0.5, rows)
        elif kind == 2:
            values = rng.gamma(2.0, 3.0, rows) * (1 + d)
        else:
            values = rng.integers(0, 1000 + int(1000 * d), rows)  # an integer column, many values
        cols[f"num_{i:02d}"] = values
    levels = [3, 5, 8, 12, 20]
    for j in range(CATEGORICAL):
        k = levels[j]
        p = np.linspace(1.0, 2.0, k)
        if shifted and j in (0, 3):
            p = p[::-1]  # the shares of the levels reverse
        cols[f"cat_{j}"] = pa.array(np.array([f"level_{x}" for x in range(k)])[rng.choice(k, rows, p=p / p.sum())])
    return pa.table(cols)


def write(table, path: Path) -> None:  # type: ignore[no-untyped-def]
    if path.suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, path)


# ---------------------------------------------------------------------------- children


def child_baseline(ref_path: str, cur_path: str) -> None:
    import numpy as np
    import pyarrow.compute as pc
    from scipy import stats

    from leanops.weekly_drift.data import read_file

    ref = read_file(Path(ref_path))
    cur = read_file(Path(cur_path))
    verdicts = {}
    for name in ref.column_names:
        a, b = ref[name], cur[name]
        if name.startswith("num_"):
            p = stats.ks_2samp(a.to_numpy(), b.to_numpy()).pvalue
        else:
            ca = {v.as_py(): c.as_py() for v, c in zip(*pc.value_counts(a).flatten(), strict=True)}
            cb = {v.as_py(): c.as_py() for v, c in zip(*pc.value_counts(b).flatten(), strict=True)}
            keys = sorted(set(ca) | set(cb))
            p = stats.chi2_contingency(np.array([[ca.get(k, 0) for k in keys], [cb.get(k, 0) for k in keys]]))[1]
        verdicts[name] = bool(p < 0.05)
    print(json.dumps(verdicts))


def child_evidently(ref_path: str, cur_path: str, html: str) -> None:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    read = pd.read_parquet if ref_path.endswith(".parquet") else pd.read_csv
    snap = Report([DataDriftPreset()], include_tests=True).run(read(cur_path), read(ref_path))
    snap.save_html(html)
    d = snap.dict()
    scores = {m["config"]["column"]: (m["config"]["method"], m["value"]) for m in d["metrics"]
              if m["config"]["type"].endswith("ValueDrift")}
    status = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL" for t in d["tests"] if t["id"] == "drift"}
    print(json.dumps({c: {"method": m, "score": s, "drifted": status[c]} for c, (m, s) in scores.items()}))


# ---------------------------------------------------------------------------- the parent


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall time (s), peak RSS (MB) and stdout of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {err[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of baseline and leanops (median)")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--skip-evidently", action="store_true", help="skip Evidently on all rows (slow, 2.5 GB)")
    parser.add_argument("--json", help="write the results here (atomically)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"baseline": child_baseline, "evidently": child_evidently}[kind](*rest)
        return 0

    work = Path(tempfile.mkdtemp(prefix="leanops-bench-drift-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "LEANOPS_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPYCACHEPREFIX=str(work / "pycache"), DO_NOT_TRACK="1", PYTHONPATH=str(REPO / "scripts"))
    leanops = [str(Path(sys.executable).parent / "leanops")]
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    load = os.getloadavg()[1]
    print(f"weekly-drift bench: {args.rows:,} + {args.rows:,} rows, {NUMERIC} numeric + {CATEGORICAL} categorical "
          f"columns, {args.format}; {os.cpu_count()} cores, load {load:.2f}", file=sys.stderr)

    files = {}
    for label, rows in (("warm", 20_000), ("full", args.rows)):
        for side, seed, shifted in (("reference", 1, False), ("current", 2, True)):
            path = work / f"{label}-{side}.{args.format}"
            write(make_table(rows, seed, shifted), path)
            files[(label, side)] = str(path)
    print(f"data written: {sum(os.path.getsize(p) for p in files.values()) / 1e6:.0f} MB in {work}", file=sys.stderr)

    def commands(label: str) -> dict[str, list[str]]:
        ref, cur = files[(label, "reference")], files[(label, "current")]
        return {
            "baseline": [*me, "baseline", ref, cur],
            "leanops": [*leanops, "weekly-drift", "--reference", ref, "--current", cur, "--open-issue", "false",
                        "--report-dir", str(work / f"report-{label}")],
            "evidently": [*me, "evidently", ref, cur, str(work / f"evidently-{label}.html")],
        }

    kinds = ["baseline", "leanops"] + ([] if args.skip_evidently else ["evidently"])
    for kind in kinds:  # warm-up: bytecode and page cache, not timed
        measure(commands("warm")[kind], env)
    results: dict[str, dict[str, object]] = {k: {"seconds": [], "peak_mb": []} for k in kinds}
    outputs: dict[str, str] = {}
    try:
        for i in range(args.repeat):
            for kind in ("baseline", "leanops"):  # interleaved: both see the same background load
                seconds, peak, out = measure(commands("full")[kind], env)
                results[kind]["seconds"].append(round(seconds, 2))  # type: ignore[union-attr]
                results[kind]["peak_mb"].append(peak)  # type: ignore[union-attr]
                outputs[kind] = out
                print(f"  {kind} run {i + 1}: {seconds:.1f} s, peak {peak} MB", file=sys.stderr)
        if not args.skip_evidently:
            seconds, peak, out = measure(commands("full")["evidently"], env)
            results["evidently"]["seconds"].append(round(seconds, 2))  # type: ignore[union-attr]
            results["evidently"]["peak_mb"].append(peak)  # type: ignore[union-attr]
            outputs["evidently"] = out
            print(f"  evidently: {seconds:.1f} s, peak {peak} MB", file=sys.stderr)
    except RuntimeError as exc:
        print(f"measurement broke: {exc}", file=sys.stderr)
        return 1

    med = {k: statistics.median(v["seconds"]) for k, v in results.items()}  # type: ignore[arg-type]
    ratio = med["leanops"] / med["baseline"]
    ours = {c["column"]: c for c in json.loads((work / "report-full" / "result.json").read_text())["columns"]}
    agree = None
    mismatches: list[str] = []
    if "evidently" in outputs:
        theirs = json.loads(outputs["evidently"])
        for col, t in theirs.items():
            o = ours.get(col)
            if o is None or o["drifted"] != t["drifted"] or o["statistic"] != t["method"]:
                mismatches.append(col)
        agree = not mismatches and set(ours) == set(theirs)
    drifted = sorted(c for c, o in ours.items() if o["drifted"])
    baseline_drifted = sorted(c for c, v in json.loads(outputs["baseline"]).items() if v)

    print("| measurement | median s | runs s | peak MB | x baseline |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        r = results[kind]
        print(f"| {kind} | {med[kind]:.1f} | {', '.join(f'{s:.1f}' for s in r['seconds'])} | "  # type: ignore[union-attr]
              f"{max(r['peak_mb'])} | {med[kind] / med['baseline']:.2f} |")  # type: ignore[arg-type]
    print()
    print(f"leanops drifted columns ({len(drifted)} of {len(ours)}): {', '.join(drifted)}")
    print(f"baseline (K-S/chi-square p < 0.05) flags {len(baseline_drifted)}: {', '.join(baseline_drifted)}")
    if agree is not None:
        print(f"verdicts equal Evidently's on all rows, column by column: {agree}"
              + (f" (differ: {', '.join(mismatches)})" if mismatches else ""))
    print(f"target leanops <= {MAX_TIME_RATIO}x baseline: {'PASS' if ratio <= MAX_TIME_RATIO else 'FAIL'} "
          f"({ratio:.2f}x)")
    print(f"load average (5 min) at the end: {os.getloadavg()[1]:.2f}", file=sys.stderr)
    if args.json:
        from leanops.fsutil import atomic_write_json

        atomic_write_json(args.json, {"rows": args.rows, "format": args.format, "results": results, "median": med,
                                      "ratio": ratio, "verdicts_agree": agree, "mismatches": mismatches,
                                      "drifted": drifted, "load_start": load})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
