"""canary-deploy on the real engine, in trials: is the verdict right under noise, and how fast is a bad canary out?

    uv run --frozen --all-extras python bench/canary-deploy/run.py [--trials 5] [--window 10] [--rate 50]
                                                                    [--no-busy] [--bursts S] [--json PATH]

Builds the test model images of tests/e2e/test_canary_deploy.py (real MLflow models, through build-push-image),
deploys a stable behind the nginx router and, while a load generator sends ``--rate`` requests per second through
the router and a background process keeps about one core busy (``--no-busy``: not; ``--bursts S``: a
second one is busy and idle by turns of S seconds, a host whose load changes during a deploy), runs
``--trials`` deploys of each kind with the adopter template's limits (templates/project/leanops.yml, none of
the bench's own) and the steps 10%, 50%, 100% of ``--window`` seconds:

- ``healthy``: the same model as the stable, rebuilt (another digest);
- ``errors``: 5% of the requests answer 500;
- ``slow``: +100% latency (the model sleeps the stable's median server latency, measured first under the busy
  core at the first step's canary share of the rate: the model's own cost, not a queue's);
- ``shifted``: the predicted classes inverted;
- ``crash``: the model cannot load (the container exits at start).

Prints the confusion matrix (promoted / rolled back per kind), the analysis windows each deploy took to roll
back (targets: healthy promoted in at least 19 of 20, every bad one rolled back; crash and errors within 2
windows, slow and shifted within 3), the reasons, and the client errors during healthy promotions; for a deploy
with client errors, their kinds, when, and the deploy's progress lines around them (in ``--json`` too). Exits 0
whether the targets pass (non-zero only when a measurement broke). Needs a Docker engine, the local registry and
the base image (``leanops act --prepare``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, make_repo  # noqa: E402
from tests.e2e.test_canary_deploy import (  # noqa: E402
    BEHAVIOURS,
    Load,
    build_images,
    busy_core,
    cleanup_deployment,
    deploy,
    remove_images,
    template_limits,
    wait_router,
)
from tests.services import stop_process_group  # noqa: E402

from leanops.fsutil import atomic_write_json  # noqa: E402
from leanops.tools.harness import ensure_base_image, ensure_registry  # noqa: E402

NAME = "canary-bench"
KINDS = ("healthy", "errors", "slow", "shifted", "crash")
TARGET_WINDOWS = {"errors": 2, "crash": 2, "slow": 3, "shifted": 3}


def stable_median_seconds(port: int, rate: float) -> float:
    """The stable's median server latency at ``rate`` (the canary's share of the first step), under the busy
    core, from its per-request samples: the model's own cost per request on this host, not a queue's."""
    import docker

    with Load(f"http://127.0.0.1:{port}/predict", rate=rate):
        time.sleep(max(8.0, 60 / rate))
    c = next(c for c in docker.from_env().containers.list(filters={"label": f"io.leanops.canary.app={NAME}"})
             if not c.name.endswith("-router"))
    res = c.exec_run(["python", "-c", "import urllib.request; print(urllib.request.urlopen("
                      "'http://127.0.0.1:8080/metrics/samples').read().decode())"])
    rows = json.loads(res.output.decode())["samples"]
    return float(statistics.median(r[1] for r in rows[-300:]))


def timed_deploy(project: Path, *args: str) -> tuple[int, dict[str, str], list[tuple[float, str]]]:
    """``leanops canary-deploy ARGS`` as ``deploy`` runs it, each line of its progress with the monotonic time it
    was printed: a client error is placed among the controller's steps (which reload, which turn, the promotion)."""
    out = project / f"out-{time.monotonic_ns()}"
    out.write_text("")
    env = dict(os.environ, GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=os.devnull, PYTHONUNBUFFERED="1")
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.Popen([sys.executable, "-m", "leanops", "canary-deploy", *args], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.monotonic(), line.rstrip()))
    rc = proc.wait(timeout=600)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return rc, outputs, lines


def failure_detail(failures: list[tuple[float, object]], lines: list[tuple[float, str]],
                   t0: float) -> dict[str, object]:
    """The client errors of one deploy: how many of each kind, when (seconds from the deploy's start), and the
    progress lines printed from 5 s before the first to 1 s after the last."""
    if not failures:
        return {}
    kinds: dict[str, int] = {}
    for _, status in failures:
        kinds[str(status)] = kinds.get(str(status), 0) + 1
    first, last = min(t for t, _ in failures), max(t for t, _ in failures)
    return {"kinds": kinds, "first_s": round(first - t0, 2), "last_s": round(last - t0, 2),
            "log": [f"{t - t0:7.2f} {text}" for t, text in lines if first - 5 <= t <= last + 1]}


def code_version() -> str:
    """The git tree of the canary-deploy code (and this bench) the trials run: deploys of other code are not added
    together. With uncommitted changes there, "dirty" and a hash of the diff are added."""
    import hashlib

    paths = ["scripts/leanops/canary_deploy", "bench/canary-deploy"]
    tree = subprocess.run(["git", "rev-parse", *(f"HEAD:{p}" for p in paths)], cwd=ROOT, capture_output=True,
                          text=True)
    diff = subprocess.run(["git", "diff", "HEAD", "--", *paths], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = f" dirty {hashlib.sha256(diff.encode()).hexdigest()[:12]}" if diff else ""
    return " ".join(tree.stdout.split()) + dirty


@contextlib.contextmanager
def bursts(seconds: float) -> Iterator[None]:
    """A process busy for ``seconds``, then idle as long, and so on: the host's load changes during a deploy (a
    CI job starting beside the model, a batch job), so a reference measured at one time and the canary at
    another see different hosts."""
    code = (f"import time\nwhile True:\n    end = time.monotonic() + {seconds}\n"
            f"    while time.monotonic() < end: pass\n    time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        yield
    finally:
        stop_process_group(proc.pid, wait=5)
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5, help="deploys of each kind (5)")
    ap.add_argument("--window", type=float, default=10.0, help="analysis window per step, seconds (10)")
    ap.add_argument("--rate", type=float, default=50.0, help="client requests per second (50)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"which kinds ({','.join(KINDS)})")
    ap.add_argument("--no-busy", action="store_true", help="no background process keeping a core busy")
    ap.add_argument("--bursts", type=float, default=0.0,
                    help="also a second process busy and idle by turns, this many seconds each (a host whose load "
                    "changes during a deploy); 0: none")
    ap.add_argument("--json", default="", help="write every deploy's figures here")
    ap.add_argument("--append", action="store_true",
                    help="add to --json's deploys instead of starting over (a long run over several sittings: the same "
                    "settings and the same canary-deploy code, else it refuses)")
    ap.add_argument("--keep", action="store_true", help="keep the images")
    a = ap.parse_args()
    # a SIGTERM (kill, timeout) unwinds like Ctrl-C: the busy process, the deployment and the images go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = [k for k in a.kinds.split(",") if k]

    ensure_registry()
    base = ensure_base_image()
    work = Path(tempfile.mkdtemp(prefix="leanops-canary-bench-"))
    yml = "version: 1\nmodel:\n  name: churn\n" + template_limits()
    project = make_repo(work / "project", {"leanops.yml": yml})
    port = free_port()
    common = ["--name", NAME, "--router-publish", f"127.0.0.1:{port}", "--router-base-image", base]
    steps = ",".join(f"{w}:{a.window:g}" for w in (10, 50, 100))
    rows: list[dict[str, object]] = []
    settings = {"window": a.window, "rate": a.rate, "busy": not a.no_busy, "bursts": a.bursts, "code": code_version()}
    sittings: list[dict[str, object]] = []
    if a.append:
        if not a.json:
            ap.error("--append needs --json")
        if Path(a.json).is_file():
            old = json.loads(Path(a.json).read_text())
            differ = [k for k, v in settings.items() if old.get(k) != v]
            if differ:
                mine = ", ".join(f"{k}={settings[k]}" for k in differ)
                print(f"bench: {a.json}: {', '.join(differ)} differ from this run's ({mine}); expected the same "
                      "settings and code to add to it", file=sys.stderr)
                return 2
            rows, sittings = list(old["rows"]), list(old.get("sittings", []))
    first_trial = max((int(str(r["trial"])) for r in rows), default=0)
    sittings.append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "trials": a.trials,
                     "kinds": kinds})

    def save(*, complete: bool) -> None:
        atomic_write_json(a.json, {**settings, "trials": a.trials, "sittings": sittings, "rows": rows,
                                   "complete": complete})
    images: dict[str, str] = {}
    cleanup_deployment(NAME)
    try:
        print("building the model images ...", file=sys.stderr, flush=True)
        wanted = {"healthy": "healthy", "errors": "errors-5pct", "shifted": "shifted", "crash": "crash"}
        images = build_images(project, base, ["stable", *[wanted[k] for k in kinds if k in wanted]])
        if "errors-5pct" in images:
            images["errors"] = images.pop("errors-5pct")
        res, _, _ = deploy(project, "--image", images["stable"], *common)
        if res.returncode != 0:
            raise RuntimeError(f"first deploy failed: {res.stderr[-2000:]}")
        wait_router(f"http://127.0.0.1:{port}/leanops/router/health")
        from contextlib import nullcontext

        with nullcontext() if a.no_busy else busy_core(), nullcontext() if not a.bursts else bursts(a.bursts):
            # +100% of the stable's median as the trials see it: under the same load and background process
            median = stable_median_seconds(port, a.rate / 10)
            BEHAVIOURS["slow-2x"] = {"mode": "slow", "delay": round(median, 4)}
            print(f"stable median latency {median * 1000:.1f} ms: the slow canary sleeps that long", file=sys.stderr)
            if "slow" in kinds:
                images["slow"] = build_images(project, base, ["slow-2x"])["slow-2x"]
            for trial in range(a.trials):
                for kind in kinds:
                    print(f"trial {first_trial + trial + 1} ({trial + 1}/{a.trials} of this sitting): {kind} ...",
                          file=sys.stderr, flush=True)
                    with Load(f"http://127.0.0.1:{port}/predict", rate=a.rate) as load:
                        time.sleep(1)
                        t0 = time.monotonic()
                        rc, outputs, lines = timed_deploy(project, "--image", images[kind], "--steps", steps,
                                                          "--report-file", f"report-{kind}.json", *common)
                        took = time.monotonic() - t0
                        time.sleep(1)
                    report = json.loads((project / f"report-{kind}.json").read_text())
                    verdict = outputs.get("verdict", f"exit {rc}")
                    detail = failure_detail(load.failures, lines, t0)
                    rows.append({"trial": first_trial + trial + 1, "kind": kind, "verdict": verdict,
                                 "windows": report.get("windows"), "rollback_s": report.get("rollback_seconds"),
                                 "deploy_s": round(took, 1), "client_requests": len(load.results),
                                 "client_errors": len(load.failures), "client_error_detail": detail,
                                 "reason": report.get("reason", ""),
                                 "steps": report.get("steps", [])})
                    print(f"  {verdict} after {report.get('windows')} windows: {report.get('reason', '')}",
                          file=sys.stderr, flush=True)
                    if detail:
                        print(f"  {len(load.failures)} client errors {detail['kinds']} from {detail['first_s']} s "
                              f"to {detail['last_s']} s:\n    " + "\n    ".join(detail["log"]), file=sys.stderr,
                              flush=True)
                    if a.json:  # after every deploy: a long run cut short keeps what it measured
                        save(complete=False)
                    if verdict == "promoted":  # the stable again, for the next deploy
                        deploy(project, "rollback", *common)
    finally:
        cleanup_deployment(NAME)
        if not a.keep and images:
            remove_images(images)

    together = f" ({len(sittings)} sittings, {len(rows)} deploys in all)" if len(sittings) > 1 else ""
    print(f"\ncanary-deploy trials: {a.trials} per kind{together}, windows of {a.window:g} s, {a.rate:g} requests/s "
          "through "
          f"the router, {'no background load' if a.no_busy else 'one core kept busy'}"
          f"{f', a second process busy and idle by turns of {a.bursts:g} s' if a.bursts else ''}, the template's "
          "limits\n")
    print("| canary | promoted | rolled back | windows to roll back (each deploy) | target | client errors |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        promoted = sum(r["verdict"] == "promoted" for r in mine)
        back = sum(r["verdict"] == "rolled-back" for r in mine)
        wins = [r["windows"] for r in mine if r["verdict"] == "rolled-back"]
        target = "promoted" if kind == "healthy" else f"rolled back within {TARGET_WINDOWS[kind]} windows"
        ok = promoted == len(mine) if kind == "healthy" else back == len(mine) and all(
            isinstance(w, int) and w <= TARGET_WINDOWS[kind] for w in wins)
        print(f"| {kind} | {promoted} | {back} | {', '.join(str(w) for w in wins) or '-'} | {target}: "
              f"{'pass' if ok else 'FAIL'} | {sum(int(str(r['client_errors'])) for r in mine)} |")
    print("\nreasons:")
    for r in rows:
        print(f"- {r['kind']} #{r['trial']}: {r['verdict']} ({r['windows']} windows, {r['deploy_s']} s): {r['reason']}")
    if a.json:
        save(complete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
