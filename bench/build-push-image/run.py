#!/usr/bin/env python3
"""Benchmark the model server image: size, cold build, model-only rebuild, serving latency and throughput.

    uv run --frozen --all-extras python bench/build-push-image/run.py [--base-image IMG] [--json out.json]

Needs a Docker engine (as root the harness makes the local base image when --base-image is not given).
The model is the churn example's scikit-learn Pipeline (examples/churn/models/model.pkl) saved as an MLflow
model with its signature.

  size             the built image's size (engine's figure); target <= 450 MB
  cold build       `docker build --no-cache` of the prepared context (BuildKit), pip downloads included
  model-only       the same context with a different model (the same estimator refitted on other rows),
                   built with the cache: only the model layer changes; target <= 0.2x the cold build
  serving          the image runs with a port published on 127.0.0.1; a bounded load generator (threads with
                   keep-alive connections, --concurrency, --requests per case) posts one row and 100 rows
                   per request; p50/p99 latency and requests per second, after --warmup requests

Exit 0 whether the targets pass or not; 1 when a measurement broke. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import pickle
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
CHURN = ROOT / "examples" / "churn"
FEATURES = ["contract", "payment_method", "internet_service", "tenure_months", "monthly_charges", "total_charges",
            "support_calls", "senior_citizen"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def save_model(dst: Path, rows: slice) -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    with open(CHURN / "models" / "model.pkl", "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - the example's own artifact
    data = pd.read_csv(CHURN / "data" / "raw" / "churn.csv")
    if rows != slice(None):
        model.fit(data[FEATURES].iloc[rows], data["churned"].iloc[rows])
    x = data[FEATURES].head(200)
    mlflow.sklearn.save_model(model, str(dst), signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"], serialization_format="cloudpickle")


def build(work: Path, model: Path, base: str, *, no_cache: bool) -> tuple[str, float]:
    from leanops import models
    from leanops.build_push_image import image as bpi_image
    from leanops.build_push_image import model as bpi_model
    from leanops.build_push_image import plan as bpi_plan

    ctx = work / f"ctx-{time.monotonic_ns()}"
    ctx.mkdir()
    shutil.copytree(model, ctx / "model")
    p = bpi_plan.Plan(model_uri=str(model), registry="127.0.0.1:5000/leanops-bench", image="churn", base_image=base,
                 dockerfile=ROOT / "templates" / "Dockerfile", version="", push=False, root=work)
    bpi_image.prepare_context(ctx, p)
    m = bpi_model.Model(path=ctx / "model", name="churn-classifier", version="bench", sha256=models.model_digest(model))
    t0 = time.perf_counter()
    image_id = bpi_image.docker_build(ctx, bpi_image.build_args(p, m, "0" * 40), no_cache=no_cache)
    return image_id, time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load(port: int, body: bytes, requests: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 200:
                errors.append(str(resp.status))
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[:3]}")
    return latencies, wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def serve_bench(image_id: str, args: argparse.Namespace) -> list[dict[str, object]]:
    import docker
    import pandas as pd

    client = docker.from_env()
    port = free_port()
    container = client.containers.run(image_id, detach=True, ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        t0 = time.perf_counter()
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/ready")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - t0 > 180:
                raise RuntimeError(container.logs().decode()[-2000:])
            time.sleep(0.2)
        ready = time.perf_counter() - t0
        log(f"container ready in {ready:.1f}s")
        data = json.loads(pd.read_csv(CHURN / "data" / "raw" / "churn.csv", nrows=100)[FEATURES].to_json(
            orient="records"))
        results = []
        for label, rows in (("1 row", data[:1]), ("100 rows", data)):
            body = json.dumps({"records": rows}).encode()
            load(port, body, args.warmup, args.concurrency)
            lat, wall = load(port, body, args.requests, args.concurrency)
            results.append({"case": label, "requests": len(lat), "concurrency": args.concurrency,
                            "p50_ms": 1000 * pct(lat, 0.5), "p99_ms": 1000 * pct(lat, 0.99),
                            "mean_ms": 1000 * statistics.mean(lat), "rps": len(lat) / wall,
                            "ready_s": ready})
            log(f"{label}: p50 {results[-1]['p50_ms']:.1f} ms, p99 {results[-1]['p99_ms']:.1f} ms, "
                f"{results[-1]['rps']:.0f} req/s")
        return results
    finally:
        container.remove(force=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-image", default="", help="BASE_IMAGE (default: the harness's local base image)")
    ap.add_argument("--requests", type=int, default=2000, help="requests per serving case")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--json", default="", help="write the results here (atomically)")
    args = ap.parse_args()

    import docker
    import docker.errors

    from leanops import fsutil
    from leanops.tools import harness

    harness.ensure_engine(install=False)
    base = args.base_image or harness.ensure_base_image()
    client = docker.from_env()
    out: dict[str, object] = {"base_image": base}
    with tempfile.TemporaryDirectory(prefix="bench-bpi-") as tmp:
        work = Path(tmp)
        save_model(work / "model-a", slice(None))
        save_model(work / "model-b", slice(0, 3000))
        log("cold build (--no-cache) ...")
        image_a, cold = build(work, work / "model-a", base, no_cache=True)
        log(f"cold build {cold:.1f}s")
        log("model-only rebuild ...")
        image_b, model_only = build(work, work / "model-b", base, no_cache=False)
        log(f"model-only rebuild {model_only:.1f}s")
        size = int(client.images.get(image_a).attrs["Size"])
        layers_a = client.images.get(image_a).attrs["RootFS"]["Layers"]
        layers_b = client.images.get(image_b).attrs["RootFS"]["Layers"]
        changed = sum(1 for a, b in zip(layers_a, layers_b, strict=False) if a != b)
        out.update({"size_mb": size / 1e6, "cold_build_s": cold, "model_only_build_s": model_only,
                    "model_only_ratio": model_only / cold, "layers": len(layers_a), "layers_changed": changed})
        try:
            out["serving"] = serve_bench(image_a, args)
        finally:
            for image in (image_a, image_b):
                try:
                    client.images.remove(image, force=True)
                except docker.errors.APIError:
                    pass
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    print(f"| image size | {out['size_mb']:.0f} MB | <= 450 MB |")
    print(f"| cold build (--no-cache) | {cold:.1f} s | |")
    print(f"| model-only rebuild | {model_only:.1f} s ({out['model_only_ratio']:.3f}x cold; "
          f"{changed} of {len(layers_a)} layers changed) | <= 0.2x |")
    for r in out["serving"]:  # type: ignore[attr-defined]
        print(f"| serve {r['case']} (c={r['concurrency']}, n={r['requests']}) | p50 {r['p50_ms']:.1f} ms, "
              f"p99 {r['p99_ms']:.1f} ms, {r['rps']:.0f} req/s | |")
    if args.json:
        fsutil.atomic_write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
