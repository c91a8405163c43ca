#!/usr/bin/env python3
"""Benchmark the root action's install path (scripts/bootstrap.py install) against a cold pip install.

    uv run python bench/setup/run.py [--extras a,b] [--repeat N] [--json out.json] [--keep]

Per extra, in one run:
  uv cold   bootstrap.py install, LEANOPS_EXTRAS=<extra>, an empty uv cache and a new venv. Only the
            `bin/` part of LEANOPS_CACHE_DIR is pre-seeded with the pinned uv binary, so the one-off uv
            download stays out of the figure (it is timed once, separately, and printed).
  uv warm   the same cache dir again (now populated), a new empty venv each time; --repeat runs, median.
  uv warm, new checkout
            the same, but the kit is first copied afresh to the same path, as a runner does when it fetches
            the action for a new job. uv keys its build of the project (leanops itself, a directory source)
            on the ctime of pyproject.toml, so a new checkout makes `uv sync` rebuild leanops with hatchling
            even with a warm cache: this is the warm figure a real CI job sees. Interleaved with uv warm.
  pip cold  `python -m venv`, `pip install -r reqs.txt` (the same pins, from `uv export --frozen --no-dev
            --extra <extra> --no-hashes --no-emit-project`), `pip install --no-deps <kit>`, then
            `leanops --version` (bootstrap.py ends with that check too). pip runs with PIP_FIND_LINKS unset,
            PIP_CONFIG_FILE=/dev/null (no pip.conf find-links/extra-index/constraints) and PIP_NO_CACHE_DIR=1.

Targets: a warm install of any one extra <= 2 s, and >= 10x faster than a cold pip install of the same set;
judged on the slower of the two warm figures (same checkout, new checkout).
Exit 0 whether the targets pass or not; 1 if any measurement failed to install; 2 on bad arguments.
Not part of the test suite (tests/ is the only testpath).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_EXTRAS = ["data-validate", "train-with-cache", "gate-metrics", "build-push-image",
                  "canary-deploy", "weekly-drift", "serve"]
WARM_MAX_S = 2.0
MIN_RATIO = 10.0
# What the kit snapshot needs for `uv sync` and `pip install .` (hatchling builds scripts/leanops).
KIT_FILES = ["pyproject.toml", "uv.lock", "README.md", "LICENSE"]
KIT_DIRS = ["scripts", "templates"]  # templates ship in the wheel (leanops init)
# Ambient variables that would change what is measured; dropped from every child environment.
DROP_ALWAYS = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_ENV", "VIRTUAL_ENV", "CONDA_PREFIX")
DROP_PIP = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_REQUIREMENT",
            "PIP_NO_INDEX", "PIP_CACHE_DIR", "PIP_REQUIRE_VIRTUALENV", "PIP_USER", "PIP_TARGET", "PIP_PREFIX")


def log(msg: str) -> None:
    print(f"[bench/setup] {msg}", file=sys.stderr, flush=True)


def known_extras(pyproject: Path) -> list[str]:
    text = pyproject.read_text(encoding="utf-8")
    section = re.search(r"(?ms)^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text)
    return re.findall(r"(?m)^([a-z0-9-]+)\s*=\s*\[", section.group(1)) if section else []


def base_python(name: str) -> str:
    """The base interpreter behind `name` (not a venv's python, not a pyenv shim)."""
    found = shutil.which(name) or name
    out = subprocess.run([found, "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"bench/setup: error: python {name!r} does not run")
    exe = out.stdout.strip()
    prefix = subprocess.run([exe, "-c", "import sys; print(sys.prefix == sys.base_prefix)"],
                            capture_output=True, text=True, check=False).stdout.strip()
    if prefix != "True":
        raise SystemExit(f"bench/setup: error: {exe} is still a virtualenv's python; pass --python")
    return exe


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ALWAYS and not k.startswith("UV_")}
    # `uv run` puts the project venv first on PATH; the children must not see it.
    venv_bin = os.environ.get("VIRTUAL_ENV")
    if venv_bin:
        parts = [p for p in env.get("PATH", "").split(os.pathsep) if p != str(Path(venv_bin) / "bin")]
        env["PATH"] = os.pathsep.join(parts)
    return env


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in base_env().items() if k not in DROP_PIP}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1"})
    return env


def snapshot_kit(dest: Path, src: Path = REPO) -> Path:
    """A copy of the kit's working tree, so concurrent edits to the repo cannot change a run halfway."""
    dest.mkdir(parents=True)
    for name in KIT_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
    for name in KIT_DIRS:
        shutil.copytree(src / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache"))
    return dest


def new_checkout(kit: Path, pristine: Path) -> None:
    """Replace the kit with a fresh copy at the same path (new ctimes), like a runner fetching the action."""
    shutil.rmtree(kit)
    snapshot_kit(kit, pristine)


class Step:
    def __init__(self, label: str, seconds: float, ok: bool, logfile: Path, detail: str = "",
                 parts: list[float] | None = None) -> None:
        self.label, self.seconds, self.ok, self.logfile, self.detail = label, seconds, ok, logfile, detail
        self.parts = parts or []  # seconds per command


def timed(label: str, cmds: list[list[str]], env: dict[str, str], logfile: Path, timeout: float,
          cwd: Path | None = None) -> Step:
    """Run the commands in order, timing the whole with perf_counter; stop at the first failure."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    total = 0.0
    parts: list[float] = []
    with open(logfile, "w", encoding="utf-8") as fh:
        for cmd in cmds:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            t0 = time.perf_counter()
            try:
                res = subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                     timeout=timeout, check=False)
                rc = res.returncode
            except subprocess.TimeoutExpired:
                rc = -1
                fh.write(f"\n(timed out after {timeout:.0f}s)\n")
            parts.append(time.perf_counter() - t0)
            total += parts[-1]
            if rc != 0:
                fh.flush()
                tail = logfile.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
                log(f"{label}: FAILED (exit {rc}) after {total:.1f}s; log {logfile}")
                for line in tail:
                    log(f"  | {line}")
                return Step(label, total, False, logfile, f"exit {rc}: {tail[-1] if tail else ''}", parts)
    return Step(label, total, True, logfile, parts=parts)


def installed(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version "
            "for d in m.distributions()}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {}
    dists: dict[str, str] = json.loads(out.stdout)
    for tool in ("pip", "setuptools", "wheel"):  # venv seeds; not part of the locked set
        dists.pop(tool, None)
    return dists


def fetch_uv(kit: Path, python: str, seed: Path, timeout: float) -> tuple[Path, float]:
    """The pinned uv binary, fetched once by bootstrap.py's own code into seed/bin (pip, no config/cache)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bootstrap; print(bootstrap.uv_binary())")
    env = pip_env()
    env["LEANOPS_CACHE_DIR"] = str(seed)
    t0 = time.perf_counter()
    res = subprocess.run([python, "-c", code, str(kit / "scripts")], env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    took = time.perf_counter() - t0
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit("bench/setup: error: could not fetch the pinned uv binary")
    return Path(res.stdout.strip().splitlines()[-1]), took


def seed_cache(cache: Path, uv: Path) -> None:
    target = cache / "bin" / uv.name
    target.parent.mkdir(parents=True)
    try:
        os.link(uv, target)
    except OSError:
        shutil.copy2(uv, target)


def bench_extra(extra: str, *, kit: Path, pristine: Path, python: str, uv: Path, root: Path, repeat: int,
                timeout: float, extra_env: dict[str, str]) -> dict:
    where = root / extra
    cache = where / "cache"
    seed_cache(cache, uv)
    boot = [python, str(kit / "scripts" / "bootstrap.py"), "install"]

    def uv_env(venv: Path) -> dict[str, str]:
        env = base_env()
        env.update({"LEANOPS_EXTRAS": extra, "LEANOPS_PYTHON": python, "LEANOPS_CACHE_DIR": str(cache),
                    "LEANOPS_VENV": str(venv), "RUNNER_TEMP": str(where / "runner-temp")})
        env.update(extra_env)
        return env

    result: dict = {"extra": extra, "ok": True, "failures": []}
    steps: list[Step] = []

    def record(step: Step) -> Step:
        state = "ok" if step.ok else "FAILED"
        log(f"{extra:<17} {step.label:<14} {step.seconds:7.2f}s {state}")
        steps.append(step)
        if not step.ok:
            result["ok"] = False
            result["failures"].append({"step": step.label, "log": str(step.logfile), "detail": step.detail})
        return step

    cold = record(timed("uv-cold", [boot], uv_env(where / "venv-uv-cold"), where / "uv-cold.log", timeout))
    result["uv_cold_s"] = round(cold.seconds, 3) if cold.ok else None
    warm: list[float] = []
    fresh: list[float] = []
    if cold.ok:
        for i in range(1, repeat + 1):  # interleaved, so both see the same background load
            venv = where / f"venv-uv-warm-{i}"
            step = record(timed(f"uv-warm-{i}", [boot], uv_env(venv), where / f"uv-warm-{i}.log", timeout))
            if step.ok:
                warm.append(step.seconds)
            new_checkout(kit, pristine)  # not timed: the runner's download of the action
            venv = where / f"venv-uv-warm-new-{i}"
            step = record(timed(f"uv-warm-new-{i}", [boot], uv_env(venv), where / f"uv-warm-new-{i}.log",
                                timeout))
            if step.ok:
                fresh.append(step.seconds)
    result["uv_warm_runs_s"] = [round(s, 3) for s in warm]
    result["uv_warm_s"] = round(statistics.median(warm), 3) if warm and len(warm) == repeat else None
    result["uv_warm_new_checkout_runs_s"] = [round(s, 3) for s in fresh]
    result["uv_warm_new_checkout_s"] = (round(statistics.median(fresh), 3)
                                        if fresh and len(fresh) == repeat else None)

    reqs = where / "reqs.txt"
    export = subprocess.run([str(uv), "export", "--frozen", "--no-dev", "--extra", extra, "--no-hashes",
                             "--no-emit-project", "--quiet", "--project", str(kit), "-o", str(reqs)],
                            env=base_env(), capture_output=True, text=True, check=False)
    if export.returncode != 0:
        log(f"{extra}: uv export failed: {export.stderr.strip()}")
        result["ok"] = False
        result["failures"].append({"step": "uv-export", "detail": export.stderr.strip()})
        result["pip_cold_s"] = None
    else:
        pinned = [ln for ln in reqs.read_text(encoding="utf-8").splitlines() if re.match(r"^[A-Za-z0-9]", ln)]
        result["pinned_lines"] = len(pinned)
        pvenv = where / "venv-pip-cold"
        vpy = pvenv / "bin" / "python"
        cmds = [[python, "-m", "venv", str(pvenv)],
                [str(vpy), "-m", "pip", "install", "--quiet", "-r", str(reqs)],
                [str(vpy), "-m", "pip", "install", "--quiet", "--no-deps", str(kit)],
                [str(pvenv / "bin" / "leanops"), "--version"]]
        # cwd is the extra's dir: pip builds the kit from its snapshot, never from the repo.
        pip = record(timed("pip-cold", cmds, pip_env(), where / "pip-cold.log", timeout, cwd=where))
        result["pip_cold_s"] = round(pip.seconds, 3) if pip.ok else None
        result["pip_cold_parts_s"] = dict(zip(["venv", "install-reqs", "install-kit", "leanops-version"],
                                              [round(x, 3) for x in pip.parts], strict=False))
        if pip.ok and warm:
            uv_set = installed(where / f"venv-uv-warm-{len(warm)}" / "bin" / "python")
            pip_set = installed(vpy)
            result["packages"] = len(uv_set)
            diff = sorted(set(uv_set.items()) ^ set(pip_set.items()))
            if diff:
                more = " ..." if len(diff) > 6 else ""
                log(f"{extra}: uv and pip installed different sets: {diff[:6]}{more}")
                result["set_mismatch"] = [f"{n}=={v}" for n, v in diff]
            pip_ver = subprocess.run([str(vpy), "-m", "pip", "--version"], capture_output=True, text=True,
                                     check=False).stdout.split()
            result["pip_version"] = pip_ver[1] if len(pip_ver) > 1 else "?"

    w, c, p = result.get("uv_warm_s"), result.get("uv_cold_s"), result.get("pip_cold_s")
    wn = result.get("uv_warm_new_checkout_s")
    result["ratio_pip_cold_over_uv_warm"] = round(p / w, 2) if p and w else None
    result["ratio_uv_cold_over_uv_warm"] = round(c / w, 2) if c and w else None
    result["ratio_pip_cold_over_uv_warm_new_checkout"] = round(p / wn, 2) if p and wn else None
    worst = max(w, wn) if w is not None and wn is not None else None
    result["warm_judged_s"] = worst
    result["pass_warm"] = bool(worst is not None and worst <= WARM_MAX_S)
    result["pass_ratio"] = bool(worst and p and p / worst >= MIN_RATIO)
    result["pass"] = result["ok"] and result["pass_warm"] and result["pass_ratio"]
    return result


def fmt(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def table(results: list[dict]) -> str:
    head = ["extra", "pkgs", "uv cold s", "uv warm s", "warm new-checkout s", "pip cold s", "pip/uv-warm",
            "pip/warm-new", "uv-cold/warm", "warm<=2s", ">=10x", "result"]
    rows = [head]
    for r in results:
        rows.append([r["extra"], str(r.get("packages", r.get("pinned_lines", "?"))), fmt(r.get("uv_cold_s")),
                     fmt(r.get("uv_warm_s")), fmt(r.get("uv_warm_new_checkout_s")), fmt(r.get("pip_cold_s")),
                     fmt(r.get("ratio_pip_cold_over_uv_warm"), "x"),
                     fmt(r.get("ratio_pip_cold_over_uv_warm_new_checkout"), "x"),
                     fmt(r.get("ratio_uv_cold_over_uv_warm"), "x"),
                     "yes" if r["pass_warm"] else "no", "yes" if r["pass_ratio"] else "no",
                     "PASS" if r["pass"] else ("ERROR" if not r["ok"] else "FAIL")])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json_atomic(path: Path, data: dict) -> None:
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_env(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bench/setup: error: --env {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extras", default=",".join(DEFAULT_EXTRAS),
                    help="comma-separated extras, each measured on its own (default: the seven)")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs per extra; the median is reported (3)")
    ap.add_argument("--workdir", type=Path, help="parent of the run's temp directory (default: system tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (venvs, caches, logs)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this path (atomically)")
    ap.add_argument("--python", default="python3", help="the runner Python (LEANOPS_PYTHON; default python3)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per command (1800)")
    ap.add_argument("--bootstrap", type=Path, metavar="FILE",
                    help="measure this bootstrap.py instead of the repo's (a candidate change); the repo is untouched")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the uv runs only, e.g. UV_LINK_MODE=copy (repeatable)")
    args = ap.parse_args(argv)

    known = known_extras(REPO / "pyproject.toml")
    extras = [e for e in re.split(r"[\s,]+", args.extras) if e]
    unknown = [e for e in extras if e not in known]
    if unknown or not extras or args.repeat < 1:
        ap.error(f"--extras: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}"
                 if unknown or not extras else "--repeat must be >= 1")
    extra_env = parse_env(args.env)
    if args.bootstrap and not args.bootstrap.is_file():
        ap.error(f"--bootstrap: {args.bootstrap} is not a file")
    python = base_python(args.python)

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="leanops-bench-setup-", dir=args.workdir))
    results: list[dict] = []
    started = time.time()
    load_start = os.getloadavg()[1]
    try:
        pristine = snapshot_kit(root / "kit-pristine")
        if args.bootstrap:
            shutil.copy2(args.bootstrap, pristine / "scripts" / "bootstrap.py")
        kit = snapshot_kit(root / "kit", pristine)
        version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=False).stdout.strip()
        log(f"run dir {root}; python {python} ({version}); extras {', '.join(extras)}; repeat {args.repeat}")
        uv, uv_fetch_s = fetch_uv(kit, python, root / "seed", args.timeout)
        log(f"uv binary {uv.name} fetched once in {uv_fetch_s:.2f}s (pre-seeded into each cache's bin/; "
            "excluded from uv cold)")
        for extra in extras:
            results.append(bench_extra(extra, kit=kit, pristine=pristine, python=python, uv=uv, root=root,
                                       repeat=args.repeat, timeout=args.timeout, extra_env=extra_env))
        print()
        load_end = os.getloadavg()[1]
        print(f"leanops setup install: uv (scripts/bootstrap.py install) vs pip, python {version}, "
              f"{os.cpu_count()} cores, 5-min load {load_start:.1f} at start / {load_end:.1f} at end, "
              f"warm = median of {args.repeat}")
        print("uv cold: empty uv cache (bin/ pre-seeded with the uv binary, fetched once in "
              f"{uv_fetch_s:.1f}s), new venv; uv warm: same cache, new venv; warm new-checkout: the same after"
              " a fresh copy of the kit (what a CI job sees)")
        print("pip cold: venv + pip install -r <uv export> + pip install --no-deps <kit> + leanops --version;"
              " PIP_FIND_LINKS unset, PIP_CONFIG_FILE=/dev/null, PIP_NO_CACHE_DIR=1")
        if extra_env:
            print(f"uv runs with: {' '.join(f'{k}={v}' for k, v in extra_env.items())}")
        if args.bootstrap:
            print(f"bootstrap.py: {args.bootstrap} (not the repo's)")
        print()
        print(table(results))
        passed = sum(r["pass"] for r in results)
        errors = [r["extra"] for r in results if not r["ok"]]
        warm = [r["uv_warm_s"] for r in results if r.get("uv_warm_s") is not None]
        ratios = [r["ratio_pip_cold_over_uv_warm"] for r in results if r.get("ratio_pip_cold_over_uv_warm")]
        print()
        worst = [r["warm_judged_s"] for r in results if r.get("warm_judged_s") is not None]
        print(f"summary: {passed}/{len(results)} extras meet both targets (warm <= {WARM_MAX_S:g} s, "
              f">= {MIN_RATIO:g}x faster than cold pip; judged on the slower warm figure)"
              + (f"; slowest warm {max(warm):.2f}s" if warm else "")
              + (f", slowest judged warm {max(worst):.2f}s" if worst else "")
              + (f"; smallest pip/uv-warm {min(ratios):.1f}x" if ratios else "")
              + (f"; install FAILED for {', '.join(errors)}" if errors else ""))
        if args.json:
            write_json_atomic(args.json, {
                "benchmark": "bench/setup",
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "seconds": round(time.time() - started, 1), "python": python, "python_version": version,
                "cpus": os.cpu_count(), "loadavg_5min": [round(load_start, 2), round(load_end, 2)],
                "repeat": args.repeat, "uv_binary": uv.name,
                "uv_fetch_s": round(uv_fetch_s, 3), "uv_env": extra_env,
                "bootstrap": str(args.bootstrap) if args.bootstrap else "scripts/bootstrap.py",
                "targets": {"warm_max_s": WARM_MAX_S, "min_ratio_pip_cold_over_uv_warm": MIN_RATIO},
                "pip_env": {"PIP_FIND_LINKS": "(unset)", "PIP_CONFIG_FILE": os.devnull,
                            "PIP_NO_CACHE_DIR": "1"},
                "results": results, "passed": passed, "total": len(results), "failed_installs": errors})
            log(f"wrote {args.json}")
        return 1 if errors else 0
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
