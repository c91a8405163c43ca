#!/usr/bin/env python3
"""Benchmark `leanops train-with-cache` on examples/churn: cold, warm-and-unchanged, one param change.

    uv run python bench/train-with-cache/run.py [--repeat N] [--tracking-uri URI] [--json out.json] [--keep]

All in one run, each figure the wall time of the whole `leanops train-with-cache` process (so leanops' own
start-up counts), in a copy of the example's committed files (a fresh git repository):

  cold        empty DVC cache, empty tracking store: every stage runs, MLflow logs and registers version 1
  unchanged   the same workspace again: nothing is out of date (median of --repeat runs)
  restored    a fresh copy of the repository with only what actions/cache keeps (the DVC cache, the
              uncached outputs, the embedded store): what CI's second run does; DVC restores from its run-cache
  param       train.C changed in params.yaml: train and evaluate run, version 2 is registered

Target: unchanged >= 10x faster than cold. Exit 0 whether the target holds or not; 1 when a run failed.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MIN_RATIO = 10.0


def log(msg: str) -> None:
    print(f"[bench/train-with-cache] {msg}", file=sys.stderr, flush=True)


def copy_example(dest: Path) -> Path:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # the tests' helper that copies the example's committed files
    from tests.services import copy_example as copy_committed

    copy_committed(dest)
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@example.com")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=dest, check=True, env=env)
    return dest


def leanops_exe() -> list[str]:
    here = Path(sys.executable).parent / "leanops"
    return [str(here)] if here.exists() else [sys.executable, "-m", "leanops"]


def timed(repo: Path, env: dict[str, str], logdir: Path, label: str) -> tuple[float, dict[str, str]]:
    out_file = logdir / f"{label}.out"
    out_file.write_text("")
    run_env = dict(env, GITHUB_OUTPUT=str(out_file))
    start = time.perf_counter()
    res = subprocess.run([*leanops_exe(), "train-with-cache", "--working-directory", str(repo)], env=run_env,
                         capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    (logdir / f"{label}.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench/train-with-cache: {label} failed (exit {res.returncode}): {tail}")
    outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines()
                   if "=" in line and "<<" not in line and not line.startswith((" ", "}", "{")))
    log(f"{label}: {seconds:.2f}s skipped={outputs.get('skipped')} version={outputs.get('model-version')}")
    return seconds, outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of the unchanged path (median); default 3")
    ap.add_argument("--tracking-uri", default="", help="an MLflow server; default: the embedded local store")
    ap.add_argument("--json", default="", help="write the results here as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--workdir", default=None, help="parent of the work folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-twc-", dir=args.workdir))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "LEANOPS_"))}
    env.update(DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    if args.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = args.tracking_uri
    logs = work / "logs"
    logs.mkdir()
    try:
        repo = copy_example(work / "churn")
        cold, out = timed(repo, env, logs, "cold")
        assert out.get("skipped") == "false", out
        unchanged_runs = []
        for i in range(max(1, args.repeat)):
            seconds, out = timed(repo, env, logs, f"unchanged-{i + 1}")
            assert out.get("skipped") == "true", out
            unchanged_runs.append(seconds)
        unchanged = statistics.median(unchanged_runs)

        # CI's second run: a fresh checkout plus what actions/cache restores
        fresh = copy_example(work / "restored" / "churn")
        for rel in (".dvc/cache", "metrics/eval.json", "metrics/predictions.csv", ".leanops/mlflow"):
            src = repo / rel
            if src.is_dir():
                shutil.copytree(src, fresh / rel)
            elif src.is_file():
                (fresh / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, fresh / rel)
        restored, out = timed(fresh, env, logs, "restored")
        restored_skipped = out.get("skipped")

        params = repo / "params.yaml"
        params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
        param, out = timed(repo, env, logs, "param")
        assert out.get("skipped") == "false", out
        param_version = out.get("model-version")
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    ratio = cold / unchanged
    rows = [("cold", cold, 1.0, "every stage runs; version 1"),
            ("unchanged", unchanged, ratio, f"median of {len(unchanged_runs)}: "
                                            + ", ".join(f"{s:.2f}" for s in unchanged_runs)),
            ("restored", restored, cold / restored, f"fresh checkout + cache; skipped={restored_skipped}"),
            ("param", param, cold / param, f"train.C changed; version {param_version}")]
    print(f"{'path':<10} {'seconds':>8} {'cold/x':>7}  note")
    for name, seconds, r, note in rows:
        print(f"{name:<10} {seconds:>8.2f} {r:>7.1f}  {note}")
    verdict = "PASS" if ratio >= MIN_RATIO else "MISS"
    print(f"target: unchanged >= {MIN_RATIO:.0f}x faster than cold: {ratio:.1f}x {verdict}")
    if args.json:
        from leanops.fsutil import atomic_write_json

        atomic_write_json(args.json, {"cold_s": cold, "unchanged_s": unchanged, "unchanged_runs_s": unchanged_runs,
                                      "restored_s": restored, "param_s": param, "ratio_cold_unchanged": ratio,
                                      "target_ratio": MIN_RATIO, "pass": ratio >= MIN_RATIO,
                                      "tracking": args.tracking_uri or "embedded sqlite store"})
    if args.keep:
        print(f"work folder kept: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
