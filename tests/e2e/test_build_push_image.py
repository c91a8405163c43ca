"""On the real engine: build the model server image from the local base image, push it to the local registry,
pull it by digest, run it, and compare its predictions with MLflow's in process; a tampered model refuses to
start; a failed push leaves no final tag."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from leanops.tools.harness import REGISTRY, ensure_base_image

from ..conftest import free_port, make_repo, wait_for_http
from ..unit.test_serve import churn_rows, expected, save_churn_model

pytestmark = pytest.mark.e2e

NAMESPACE = f"{REGISTRY}/leanops-tests"
LEANOPS_YML = "version: 1\nmodel:\n  name: churn-classifier\n"
MANIFESTS = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                       "application/vnd.oci.image.manifest.v1+json"])


def build_push(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                                                        dict[str, str]]:
    out = project / f"out-{time.monotonic_ns()}"
    out.write_text("")
    full_env = dict(os.environ, GITHUB_OUTPUT=str(out), **(env or {}))
    full_env.pop("GITHUB_ACTIONS", None)
    res = subprocess.run([sys.executable, "-m", "leanops", "build-push-image", *args], cwd=project,
                         capture_output=True, text=True, env=full_env, timeout=1800)
    return res, parse_outputs(out.read_text())


def parse_outputs(text: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line:
            name, delim = line.split("<<", 1)
            value = []
            for item in lines:
                if item == delim:
                    break
                value.append(item)
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@contextmanager
def serving(image: str) -> Iterator[str]:
    """The image run on a loopback port until it answers /ready; yields its base URL; removed afterwards."""
    import docker

    port = free_port()
    container = docker.from_env().containers.run(image, detach=True, ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        base = f"http://127.0.0.1:{port}"

        def alive() -> bool:
            container.reload()
            return bool(container.status == "running")

        assert wait_for_http(f"{base}/ready", alive=alive), container.logs().decode()[-2000:]
        yield base
    finally:
        container.remove(force=True)


def post_records(base: str, rows: Any) -> tuple[dict[str, Any], str]:
    """POST a DataFrame's rows to /predict: the answer and its X-Model-Version."""
    body = json.dumps({"records": json.loads(rows.to_json(orient="records"))}).encode()
    req = urllib.request.Request(f"{base}/predict", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read()), str(resp.headers["X-Model-Version"])


def registry_digest(repo_path: str, ref: str) -> str:
    req = urllib.request.Request(f"http://{REGISTRY}/v2/{repo_path}/manifests/{ref}", method="HEAD",
                                 headers={"Accept": MANIFESTS})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def registry_tags(repo_path: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repo_path}/tags/list", timeout=10) as resp:
            return sorted(json.loads(resp.read()).get("tags") or [])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


@pytest.fixture(scope="module")
def base_image(harness) -> str:
    return ensure_base_image()


OURS = re.compile(r"^127\.0\.0\.1:\d+/(leanops-tests|leanops-act|nowhere|ns)/")


@pytest.fixture(scope="module", autouse=True)
def remove_our_images() -> Iterator[None]:
    """The engine is shared: remove the server images this module built, tagged or pulled (layers stay cached)."""
    import datetime as dt

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    yield
    try:
        import docker

        client = docker.from_env()
    except Exception:  # noqa: BLE001 - no engine: nothing to clean
        return
    for image in client.images.list(filters={"label": "io.leanops.model.name"}):
        refs = image.tags + [d.split("@")[0] for d in image.attrs.get("RepoDigests") or []]
        # ours: every reference in a test repository, or none left (superseded) and built during this module
        if all(OURS.match(r) for r in refs) and (refs or image.attrs.get("Created", "") >= started):
            try:
                client.images.remove(image.id, force=True)  # every reference is ours
            except docker.errors.APIError:
                pass


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bpi")
    save_churn_model(root / "model-src")
    repo = make_repo(root / "project", {"leanops.yml": LEANOPS_YML, "README.md": "x\n"})
    (repo / "model").symlink_to(root / "model-src")
    return repo


@pytest.fixture(scope="module")
def built(project: Path, base_image: str) -> dict[str, str]:
    res, outputs = build_push(project, "--model-uri", "model", "--registry", NAMESPACE, "--image", "churn-e2e",
                              "--base-image", base_image, "--version", "1.2.3")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return outputs


def test_pushed_by_digest_with_every_tag(built: dict[str, str], project: Path) -> None:
    repo = f"{NAMESPACE}/churn-e2e"
    digest = built["digest"]
    assert digest.startswith("sha256:") and built["image"] == f"{repo}@{digest}"
    assert registry_digest("leanops-tests/churn-e2e", digest) == digest
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    tags = built["tags"].splitlines()
    assert tags[0] == f"{repo}:sha-{head[:7]}" and tags[1].startswith(f"{repo}:model-sha256-")
    assert tags[2] == f"{repo}:1.2.3"
    for tag in tags:
        assert registry_digest("leanops-tests/churn-e2e", tag.rsplit(":", 1)[1]) == digest, tag


def test_pulled_by_digest_serves_what_mlflow_predicts(built: dict[str, str], project: Path) -> None:
    import docker
    from prometheus_client.parser import text_string_to_metric_families

    client = docker.from_env()
    image = client.images.pull(built["image"])
    labels = image.labels
    assert labels["io.leanops.model.name"] == "churn-classifier"
    assert labels["io.leanops.model.sha256"] and labels["org.opencontainers.image.version"] == "1.2.3"
    assert image.attrs["Config"]["User"] == "65532:65532" and image.attrs["Config"]["Healthcheck"]["Test"]
    with serving(built["image"]) as base:
        rows = churn_rows(60)
        answer, version = post_records(base, rows)
        assert answer["predictions"] == expected(project.parent / "model-src", rows)
        assert version == labels["io.leanops.model.version"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
        ok = [s for s in families["leanops_requests"].samples
              if s.name == "leanops_requests_total" and s.labels["path"] == "/predict" and s.labels["status"] == "200"]
        assert ok and ok[0].value == 1 and ok[0].labels["model_name"] == "churn-classifier"
        assert sum(s.value for s in families["leanops_prediction_class"].samples if s.name.endswith("_total")) == 60


def test_a_tampered_model_refuses_to_start(built: dict[str, str]) -> None:
    import docker

    client = docker.from_env()
    container = client.containers.create(built["image"])
    try:
        bits, _ = container.get_archive("/opt/leanops/model/model.pkl")
        original = tarfile.open(fileobj=io.BytesIO(b"".join(bits)))
        member = original.getmembers()[0]
        data = bytearray(original.extractfile(member).read())  # type: ignore[union-attr]
        data[-1] ^= 1
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(bytes(data)))
        assert container.put_archive("/opt/leanops/model", buf.getvalue())
        container.start()
        code = container.wait(timeout=60)["StatusCode"]
        logs = container.logs().decode().strip().splitlines()
        assert code == 2, logs
        assert len(logs) == 1 and "do not match the digest recorded at build time" in logs[0], logs
    finally:
        container.remove(force=True)


def test_a_failed_push_leaves_no_final_tag(built: dict[str, str], project: Path, base_image: str) -> None:
    res, outputs = build_push(project, "--model-uri", "model", "--registry", NAMESPACE, "--image", "churn-fault",
                              "--base-image", base_image, "--version", "9.9.9",
                              env={"LEANOPS_BUILD_PUSH_FAULT": "before-final-tags"})
    assert res.returncode == 3, res.stderr[-3000:]
    assert "injected fault at before-final-tags" in res.stderr.strip().splitlines()[-1]
    assert "digest" not in outputs
    tags = registry_tags("leanops-tests/churn-fault")
    assert all(t.startswith("build-") for t in tags), tags  # only the content tag, pointing at a whole image


def test_an_unreachable_registry_is_one_line_exit_3(built: dict[str, str], project: Path, base_image: str) -> None:
    res, outputs = build_push(project, "--model-uri", "model", "--registry", "127.0.0.1:5999/nowhere",
                              "--image", "churn", "--base-image", base_image)
    assert res.returncode == 3, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("leanops build-push-image: error: registry 127.0.0.1:5999 unreachable: push of")
    assert "Traceback" not in res.stderr and "digest" not in outputs
    res, outputs = build_push(project, "--model-uri", "model", "--registry", "127.0.0.1:5999/nowhere",
                              "--image", "churn", "--base-image", base_image,
                              env={"LEANOPS_REGISTRY_USERNAME": "u", "LEANOPS_REGISTRY_PASSWORD": "s3cret-pw"})
    assert res.returncode == 3, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("leanops build-push-image: error: registry 127.0.0.1:5999 unreachable for login")
    assert "s3cret-pw" not in res.stdout + res.stderr


CALLER = """\
name: bpi-caller
on: [push]
permissions: {}
jobs:
  image:
    uses: leanops/leanops/.github/workflows/build-push-image.yml@main
    permissions:
      contents: read
      packages: write
    with:
      model-uri: model
      registry: 127.0.0.1:5000/leanops-act
      image: churn-act
      base-image: BASE
  show:
    needs: image
    runs-on: ubuntu-latest
    permissions: {}
    steps:
      - run: echo "out-digest=$DIGEST out-image=$IMAGE"
        env:
          DIGEST: ${{ needs.image.outputs.digest }}
          IMAGE: ${{ needs.image.outputs.image }}
"""


def test_reusable_workflow_under_act_pushes_by_digest(harness, base_image: str, tmp_path: Path) -> None:
    """The kit's reusable workflow, called as an adopter would, builds and pushes to the local registry."""
    import shutil

    from leanops.tools.harness import ActRun

    repo = make_repo(tmp_path / "caller", {".github/workflows/image.yml": CALLER.replace("BASE", base_image),
                                           "leanops.yml": LEANOPS_YML})
    save_churn_model(repo / "model")
    log = tmp_path / "act.log"
    res = harness.run(ActRun(repo=repo), log=log)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "Main actions/cache/restore" not in out and "Main actions/cache/save" not in out  # no cache restored
    m = re.search(r"out-digest=(sha256:[0-9a-f]{64}) out-image=(\S+)", out)
    assert m, out[-4000:]
    digest, image = m.groups()
    assert image == f"127.0.0.1:5000/leanops-act/churn-act@{digest}"
    assert registry_digest("leanops-act/churn-act", digest) == digest
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert registry_digest("leanops-act/churn-act", f"sha-{head[:7]}") == digest
    shutil.rmtree(repo / "model", ignore_errors=True)


class _Refusing:
    """A registry on loopback that takes the login u:good and denies every push (403), or any other login (401)."""

    def __enter__(self) -> str:
        import base64
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        good = "Basic " + base64.b64encode(b"u:good").decode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.headers.get("Authorization") != good:
                    status, body = 401, b'{"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}'
                elif self.path.rstrip("/") == "/v2":
                    status, body = 200, b"{}"
                else:
                    status, body = 403, b'{"errors": [{"code": "DENIED", "message": "push denied by policy"}]}'
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


def test_login_and_push_refused_are_one_line_exit_3(built: dict[str, str], project: Path, base_image: str) -> None:
    with _Refusing() as address:
        common = ["--model-uri", "model", "--registry", f"{address}/ns", "--image", "churn", "--base-image", base_image]
        res, outputs = build_push(project, *common,
                                  env={"LEANOPS_REGISTRY_USERNAME": "u", "LEANOPS_REGISTRY_PASSWORD": "wrong-pw"})
        assert res.returncode == 3, res.stderr[-3000:]
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith(f"leanops build-push-image: error: registry {address} refused the login of u")
        assert "wrong-pw" not in res.stdout + res.stderr and "digest" not in outputs
        res, outputs = build_push(project, *common,
                                  env={"LEANOPS_REGISTRY_USERNAME": "u", "LEANOPS_REGISTRY_PASSWORD": "good"})
        assert res.returncode == 3, res.stderr[-3000:]
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith(f"leanops build-push-image: error: registry {address} refused the push of "
                               f"{address}/ns/churn:build-"), last
        assert "digest" not in outputs


def test_a_lightgbm_model_ships_in_an_image_that_serves_it(tmp_path: Path, base_image: str) -> None:
    """Issue 16: a LightGBM model saved with MLflow's own flavor (the adopter's code) is built with the
    serve-lightgbm extra and answers /predict in its container. LightGBM's wheel links the system's OpenMP
    runtime, which python:3.12-slim (and the debootstrapped base) do not carry: templates/Dockerfile adds it."""
    import lightgbm
    import mlflow.lightgbm
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (x["a"] + 0.5 * x["b"] > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y)
    mlflow.lightgbm.save_model(model, tmp_path / "model-src", signature=infer_signature(x, model.predict(x)))
    repo = make_repo(tmp_path / "project", {"leanops.yml": "version: 1\nmodel:\n  name: lgbm-model\n"})
    (repo / "model").symlink_to(tmp_path / "model-src")
    res, outputs = build_push(repo, "--model-uri", "model", "--registry", NAMESPACE, "--image", "lgbm-e2e",
                              "--base-image", base_image, "--version", "1.0.0")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    with serving(outputs["image"]) as base:
        rows = x.head(5)
        answer, _ = post_records(base, rows)
        assert [int(p) for p in answer["predictions"]] == [int(p) for p in model.predict(rows)]
        assert answer["classes"] == [0, 1]
        want = model.predict_proba(rows)
        assert all(abs(got - float(w)) < 1e-6 for row, wrow in zip(answer["probabilities"], want, strict=True)
                   for got, w in zip(row, wrow, strict=True))
