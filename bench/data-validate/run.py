#!/usr/bin/env python3
"""Benchmark `leanops data-validate` on a 1,000,000-row x 12-column CSV with a 10-expectation suite.

    uv run --frozen --all-extras python bench/data-validate/run.py [--rows N] [--repeat N] [--json out.json]
    uv run --frozen --all-extras python bench/data-validate/run.py --sql [--rows N] [--repeat N] [--json out.json]

In one run, each measurement in its own child process (so peak memory is its own):
  pandas     pandas.read_csv(path) alone: the baseline.
  leanops    what `leanops data-validate` does per dataset: pyarrow read -> pandas, GX ephemeral
             context, the suite with BOOLEAN_ONLY, a SUMMARY re-run of the failed expectations only.
  gx-default pandas.read_csv, then the same suite with GX's default result format (SUMMARY): how
             GX is usually run, for comparison.
Times exclude importing the libraries and creating the GX context (the same fixed cost for any data).
Peak memory is the child's peak RSS above its RSS just before reading, against the DataFrame's size
(memory_usage(deep=True)).

Targets: leanops <= 2x the pandas read alone; leanops peak memory <= 3x the DataFrame's size.

``--sql``: the same rows in a table of a private PostgreSQL on loopback (started here, thrown away after):
  sql         what `leanops data-validate` does with ``data: postgresql://...`` and ``table:``: GX's SQL
              datasource, the expectations run in the database; the runner keeps aggregates only.
  sql-pandas  the table read into pandas (``pandas.read_sql``), then validated as a file's frame is.
Target: the runner's peak memory in ``sql`` at most a tenth of ``sql-pandas``'s (it must not grow with the
table); the times are reported side by side (the database's own CPU is on the same machine here).
Exit 0 whether the targets pass or not; 1 if a measurement broke. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
MAX_TIME_RATIO = 2.0
MAX_MEMORY_RATIO = 3.0
MAX_SQL_MEMORY_SHARE = 0.1  # --sql: the runner's peak validating in the database, against reading it into pandas

def between(column: str, low: float, high: float) -> dict:
    kwargs = {"column": column, "min_value": low, "max_value": high}
    return {"type": "expect_column_values_to_be_between", "kwargs": kwargs}


def in_set(column: str, values: list) -> dict:
    return {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": column, "value_set": values}}


SUITE = {
    "name": "bench",
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 10_000_000}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        between("amount", 0, 1000),
        between("score", -10, 10),
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "count"}},
        between("count", 0, 100),
        in_set("plan", ["basic", "plus", "pro"]),
        in_set("region", ["north", "south", "east", "west"]),
        in_set("flag", [0, 1]),
    ],
}


def log(msg: str) -> None:
    print(f"[bench/data-validate] {msg}", file=sys.stderr, flush=True)


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    table = pa.table({
        "id": np.arange(1, rows + 1),
        "amount": np.round(rng.gamma(2.0, 50.0, rows).clip(0, 999), 2),
        "score": np.round(rng.normal(0, 2, rows).clip(-9.9, 9.9), 4),
        "ratio": np.round(rng.random(rows), 4),
        "weight": np.round(rng.normal(70, 10, rows), 1),
        "count": rng.integers(0, 100, rows),
        "visits": rng.integers(0, 1000, rows),
        "age": rng.integers(18, 90, rows),
        "plan": rng.choice(np.array(["basic", "plus", "pro"]), rows),
        "region": rng.choice(np.array(["north", "south", "east", "west"]), rows),
        "channel": rng.choice(np.array(["web", "store", "phone", "partner", "app"]), rows),
        "flag": rng.integers(0, 2, rows),
    })
    pcsv.write_csv(table, path)


def rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(mode: str, csv_path: str, suite_path: str) -> dict:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if mode.startswith("sql"):
        return sql_child(mode, csv_path, suite_path)
    import pandas as pd

    from leanops import datasets
    from leanops.data_validate import suite as dv_suite
    from leanops.data_validate import validate as dv_validate

    out: dict = {"mode": mode}
    if mode == "pandas":
        before = rss_now()
        t0 = time.perf_counter()
        df = pd.read_csv(csv_path)
        out["read_s"] = time.perf_counter() - t0
        out["seconds"] = out["read_s"]
    else:
        gx = dv_suite.import_gx()
        suite = dv_suite.load_suite(Path(suite_path), gx)
        ctx = dv_suite.ephemeral_context(gx)
        before = rss_now()
        t0 = time.perf_counter()
        if mode == "leanops":
            df = datasets.read_table(Path(csv_path))
            out["read_s"] = time.perf_counter() - t0
            res = dv_validate.validate_dataset(ctx, suite, Path(csv_path), df, "BOOLEAN_ONLY", "bench")
            out["failed"] = len(res.failed)
        else:  # gx-default
            df = pd.read_csv(csv_path)
            out["read_s"] = time.perf_counter() - t0
            source = ctx.data_sources.add_pandas("gx")
            batch = source.add_dataframe_asset("bench").add_batch_definition_whole_dataframe("all").get_batch(
                batch_parameters={"dataframe": df})
            result = batch.validate(suite.gx_suite)
            out["failed"] = sum(not r.success for r in result.results)
        out["seconds"] = time.perf_counter() - t0
    out["validate_s"] = out["seconds"] - out["read_s"]
    out["df_bytes"] = int(df.memory_usage(deep=True).sum())
    out["rows"], out["columns"] = df.shape
    out["peak_above_start"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return out


def measure(modes: tuple[str, ...], repeat: int, data: str, suite_path: Path,
            env: dict[str, str] | None = None) -> dict[str, list[dict]] | None:
    """Each mode ``repeat`` times, each run in its own child process; None (logged) when one broke."""
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for i in range(repeat):
        for mode in modes:
            res = subprocess.run([sys.executable, __file__, "--child", mode, data, str(suite_path)],
                                 capture_output=True, text=True, check=False, env=env)
            if res.returncode != 0:
                log(f"{mode} broke:\n{res.stderr[-3000:]}")
                return None
            m = json.loads(res.stdout.strip().splitlines()[-1])
            runs[mode].append(m)
            log(f"run {i + 1} {mode}: {m['seconds']:.2f}s (read {m['read_s']:.2f}s), "
                f"peak +{m['peak_above_start'] / 2**20:.0f} MiB, failed {m.get('failed')}")
    return runs


def sql_child(mode: str, url: str, suite_path: str) -> dict:
    """``url``: postgresql://USER@127.0.0.1:PORT/DB (the password in PGPASSWORD); the table is ``bench``."""
    from leanops.data_validate import suite as dv_suite
    from leanops.data_validate import validate as dv_validate
    from leanops.sqlsource import SqlSource

    gx = dv_suite.import_gx()
    suite = dv_suite.load_suite(Path(suite_path), gx)
    ctx = dv_suite.ephemeral_context(gx)
    source = SqlSource.parse(url, table="bench")
    import pandas as pd
    import sqlalchemy as sa

    before = rss_now()
    t0 = time.perf_counter()
    out: dict = {"mode": mode}
    if mode == "sql":
        res = dv_validate.validate_sql(ctx, suite, source, "BOOLEAN_ONLY", "bench")
        out["read_s"] = 0.0
        out["rows"], out["columns"] = res.rows, 12
        out["df_bytes"] = 0
    else:  # sql-pandas
        engine = sa.create_engine(source.sqlalchemy_url())
        with engine.connect() as conn:
            df = pd.read_sql(sa.text("SELECT * FROM bench"), conn)
        engine.dispose()
        out["read_s"] = time.perf_counter() - t0
        res = dv_validate.validate_dataset(ctx, suite, Path("bench"), df, "BOOLEAN_ONLY", "bench")
        out["rows"], out["columns"] = df.shape
        out["df_bytes"] = int(df.memory_usage(deep=True).sum())
    out["failed"] = len(res.failed)
    out["seconds"] = time.perf_counter() - t0
    out["validate_s"] = out["seconds"] - out["read_s"]
    out["peak_above_start"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return out


def sql_main(args: argparse.Namespace) -> int:
    """The ``--sql`` comparison: load the rows into PostgreSQL once, then each mode in its own process."""
    from leanops.tools.services import start_postgres

    pg = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dv-sql-", dir=args.workdir) as tmp:
            csv_path, suite_path = Path(tmp) / "data.csv", Path(tmp) / "suite.json"
            make_csv(csv_path, args.rows)
            suite_path.write_text(json.dumps(SUITE))
            db = pg.create_database("bench")
            t0 = time.perf_counter()
            with pg.connect(db) as conn:
                conn.execute(b"CREATE TABLE bench (id bigint, amount double precision, score double precision, "
                             b"ratio double precision, weight double precision, count bigint, visits bigint, "
                             b"age bigint, plan text, region text, channel text, flag bigint)")
                with conn.cursor().copy(b"COPY bench FROM STDIN WITH (FORMAT csv, HEADER true)") as copy, \
                        open(csv_path, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        copy.write(chunk)
                conn.execute(b"ANALYZE bench")
            log(f"{args.rows:,} rows x 12 columns loaded into PostgreSQL in {time.perf_counter() - t0:.1f}s")
            url = f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{db}"
            env = dict(os.environ, PGPASSWORD=pg.password)
            runs = measure(("sql", "sql-pandas"), args.repeat, url, suite_path, env)
            if runs is None:
                return 1
    finally:
        pg.stop()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    rows = [{"mode": mode, "seconds": med(mode, "seconds"), "read_s": med(mode, "read_s"),
             "validate_s": med(mode, "validate_s"), "peak_mib": med(mode, "peak_above_start") / 2**20,
             "failed": runs[mode][0]["failed"]} for mode in runs]
    df_bytes = runs["sql-pandas"][0]["df_bytes"]
    print(f"data-validate bench --sql: {args.rows:,} rows x 12 columns in PostgreSQL, 10 expectations, median of "
          f"{args.repeat}; the frame read into pandas {df_bytes / 2**20:.0f} MiB")
    print(f"{'mode':<11} {'total s':>8} {'read s':>7} {'GX s':>6} {'peak MiB':>9} {'failed':>6}")
    for r in rows:
        print(f"{r['mode']:<11} {r['seconds']:>8.2f} {r['read_s']:>7.2f} {r['validate_s']:>6.2f} "
              f"{r['peak_mib']:>9.0f} {r['failed']:>6}")
    ratio = rows[0]["peak_mib"] / rows[1]["peak_mib"] if rows[1]["peak_mib"] > 0 else float("nan")
    ok_mem = ratio <= MAX_SQL_MEMORY_SHARE
    same = rows[0]["failed"] == rows[1]["failed"]
    print(f"target runner peak memory in the database <= {MAX_SQL_MEMORY_SHARE:g}x the pandas path: "
          f"{'PASS' if ok_mem else 'FAIL'} ({ratio:.3f}x); same verdict both ways: {'yes' if same else 'NO'}; "
          f"time x{rows[0]['seconds'] / rows[1]['seconds']:.2f} the pandas path")
    if args.json:
        from leanops.fsutil import atomic_write_json

        atomic_write_json(args.json, {"rows": args.rows, "repeat": args.repeat, "df_bytes": df_bytes,
                                      "results": rows, "targets": {"memory_share": MAX_SQL_MEMORY_SHARE},
                                      "pass": {"memory": ok_mem, "same_verdict": same}})
    return 0 if same else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--json", default=None, help="write the results here (atomically)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--sql", action="store_true", help="the same rows in PostgreSQL: in the database vs pandas")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "CSV", "SUITE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.sql:
        return sql_main(args)

    with tempfile.TemporaryDirectory(prefix="bench-dv-", dir=args.workdir) as tmp:
        csv_path, suite_path = Path(tmp) / "data.csv", Path(tmp) / "suite.json"
        t0 = time.perf_counter()
        make_csv(csv_path, args.rows)
        suite_path.write_text(json.dumps(SUITE))
        log(f"{args.rows:,} rows x 12 columns: {csv_path.stat().st_size / 2**20:.0f} MiB CSV "
            f"written in {time.perf_counter() - t0:.1f}s")
        found = measure(("pandas", "leanops", "gx-default"), args.repeat, str(csv_path), suite_path)
        if found is None:
            return 1
        runs = found

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    base = med("pandas", "seconds")
    df_bytes = runs["leanops"][0]["df_bytes"]
    rows = []
    for mode in runs:
        rows.append({
            "mode": mode, "seconds": med(mode, "seconds"), "read_s": med(mode, "read_s"),
            "validate_s": med(mode, "validate_s"), "ratio_to_pandas_read": med(mode, "seconds") / base,
            "peak_mib": med(mode, "peak_above_start") / 2**20,
            "peak_ratio_to_df": med(mode, "peak_above_start") / df_bytes,
            "failed": runs[mode][0].get("failed"),
        })
    print(f"data-validate bench: {args.rows:,} rows x 12 columns, 10 expectations, median of {args.repeat}; "
          f"DataFrame {df_bytes / 2**20:.0f} MiB")
    print(f"{'mode':<11} {'total s':>8} {'read s':>7} {'GX s':>6} {'x pandas read':>14} {'peak MiB':>9} {'x df':>5}")
    for r in rows:
        print(f"{r['mode']:<11} {r['seconds']:>8.2f} {r['read_s']:>7.2f} {r['validate_s']:>6.2f} "
              f"{r['ratio_to_pandas_read']:>14.2f} {r['peak_mib']:>9.0f} {r['peak_ratio_to_df']:>5.2f}")
    lean = rows[1]
    ok_time = lean["ratio_to_pandas_read"] <= MAX_TIME_RATIO
    ok_mem = lean["peak_ratio_to_df"] <= MAX_MEMORY_RATIO
    print(f"target time <= {MAX_TIME_RATIO}x pandas read: {'PASS' if ok_time else 'FAIL'} "
          f"({lean['ratio_to_pandas_read']:.2f}x); target peak memory <= {MAX_MEMORY_RATIO}x DataFrame: "
          f"{'PASS' if ok_mem else 'FAIL'} ({lean['peak_ratio_to_df']:.2f}x)")
    if args.json:
        from leanops.fsutil import atomic_write_json

        atomic_write_json(args.json, {"rows": args.rows, "repeat": args.repeat, "df_bytes": df_bytes,
                                      "results": rows, "targets": {"time_ratio": MAX_TIME_RATIO,
                                                                   "memory_ratio": MAX_MEMORY_RATIO},
                                      "pass": {"time": ok_time, "memory": ok_mem}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
