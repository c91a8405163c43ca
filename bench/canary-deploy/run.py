"""canary-deploy on the real engine: how fast a bad canary is rolled back, and what clients see of a healthy one.

    uv run --frozen --all-extras python bench/canary-deploy/run.py [--window 5] [--rate 100] [--json PATH]

Builds the test model images of tests/e2e/test_canary_deploy.py (real MLflow models, through build-push-image),
deploys a stable behind the nginx router, then, with a load generator sending ``--rate`` requests per second
through the router the whole time:

- **rollback time** of each bad canary (500s, slow, shifted predictions): from the canary's first traffic
  (its weight applied) to the rollback complete (weight 0, canary removed), as the controller records it in
  the report; target <= 2 analysis windows. A canary that crashes at start never gets traffic (shown apart);
- **client errors during a healthy promotion** (10/50/100%); target 0.

Prints one table and the ratios to the targets; exits 0 whether the targets pass (non-zero only when a
measurement broke). Needs a Docker engine, the local registry and base image (``leanops act --prepare``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, make_repo  # noqa: E402
from tests.e2e.test_canary_deploy import (  # noqa: E402
    Load,
    build_images,
    cleanup_deployment,
    deploy,
    remove_images,
    wait_router,
)

from leanops.fsutil import atomic_write_json  # noqa: E402
from leanops.tools.harness import ensure_base_image, ensure_registry  # noqa: E402

NAME = "canary-bench"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=float, default=5.0, help="analysis window per step, seconds (5)")
    ap.add_argument("--rate", type=float, default=100.0, help="client requests per second (100)")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the images")
    a = ap.parse_args()

    ensure_registry()
    base = ensure_base_image()
    work = Path(tempfile.mkdtemp(prefix="leanops-canary-bench-"))
    yml = ("version: 1\nmodel:\n  name: churn\ncanary-deploy:\n  min-requests: 20\n  max-latency-ratio: 2.0\n"
           "  latency-slack-ms: 25\n  ready-timeout: 60\n")
    project = make_repo(work / "project", {"leanops.yml": yml})
    print("building the model images ...", file=sys.stderr, flush=True)
    images = build_images(project, base, ["stable", "healthy", "errors", "slow", "crash", "shifted"])
    port = free_port()
    common = ["--name", NAME, "--router-publish", f"127.0.0.1:{port}", "--router-base-image", base]
    steps = ",".join(f"{w}:{a.window:g}" for w in (10, 50, 100))
    rows: list[dict[str, object]] = []
    cleanup_deployment(NAME)
    try:
        res, _, _ = deploy(project, "--image", images["stable"], *common)
        if res.returncode != 0:
            raise RuntimeError(f"first deploy failed: {res.stderr[-2000:]}")
        wait_router(f"http://127.0.0.1:{port}/leanops/router/health")
        for kind in ("errors", "slow", "shifted", "crash", "healthy"):
            print(f"canary {kind} ...", file=sys.stderr, flush=True)
            with Load(f"http://127.0.0.1:{port}/predict", rate=a.rate) as load:
                time.sleep(1)
                t0 = time.monotonic()
                res, outputs, _ = deploy(project, "--image", images[kind], "--steps", steps, "--report-file",
                                         f"report-{kind}.json", *common)
                took = time.monotonic() - t0
                time.sleep(1)
            report = json.loads((project / f"report-{kind}.json").read_text())
            rows.append({"canary": kind, "verdict": outputs.get("verdict", f"exit {res.returncode}"),
                         "rollback_s": report.get("rollback_seconds"), "deploy_s": round(took, 1),
                         "client_requests": len(load.results), "client_errors": len(load.failures),
                         "reason": report.get("reason", "")})
    finally:
        cleanup_deployment(NAME)
        if not a.keep:
            remove_images(images)

    print(f"\ncanary-deploy bench: window {a.window:g} s, {a.rate:g} requests/s through the router\n")
    print("| canary | verdict | first traffic -> rolled back | / window | target <= 2 windows | client errors | "
          "requests | deploy wall |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        rb = r["rollback_s"]
        ratio = f"{rb / a.window:.2f}" if isinstance(rb, (int, float)) else "-"
        ok = "-" if not isinstance(rb, (int, float)) else ("pass" if rb <= 2 * a.window else "FAIL")
        if r["canary"] == "healthy":
            ok = "pass" if r["client_errors"] == 0 and r["verdict"] == "promoted" else "FAIL"
            ratio = "(target: 0 client errors)"
        print(f"| {r['canary']} | {r['verdict']} | {rb if rb is not None else '-'} s | {ratio} | {ok} | "
              f"{r['client_errors']} | {r['client_requests']} | {r['deploy_s']} s |")
    if a.json:
        atomic_write_json(a.json, {"window": a.window, "rate": a.rate, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
