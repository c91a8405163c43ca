"""canary-deploy on the real engine: model containers behind the nginx router, a load generator sending 50
requests per second through it for the whole deploy, and the adopter template's limits (no test-only ones).

A healthy canary is promoted with no failed client request while a background process keeps one core busy, and
``rollback`` restores the previous digest; a canary returning 500s, a slow one, one that crashes at start and
one with shifted predictions are each rolled back, the stable keeps serving, and clients see at most the
canary's share of one window fail.

The images are real model servers: MLflow "models from code" whose behaviour comes from their
``model_config``, built and pushed by ``leanops build-push-image`` (bench/canary-deploy uses them too).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leanops.tools.harness import REGISTRY, ensure_base_image

from ..conftest import free_port, make_repo, wait_for_http
from ..services import Load, stop_process_group
from ..services import remove_deployment as cleanup_deployment
from ..services import remove_images as remove_repository_images

NAMESPACE = f"{REGISTRY}/leanops-tests"
REPOSITORY = "canary-e2e"

CODE = '''\
"""A churn scorer for the canary-deploy tests; model_config picks a behaviour: healthy, errors (every
fail_every-th call raises), slow (sleeps delay seconds), crash (cannot load), shifted (inverted classes)."""
import time

import mlflow.pyfunc
from mlflow.models import set_model


class Churn(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        cfg = context.model_config or {}
        self.mode = cfg.get("mode", "healthy")
        if self.mode == "crash":
            raise RuntimeError("the model files are broken")
        self.delay = float(cfg.get("delay", 0.0))
        self.every = int(cfg.get("fail_every", 0))
        self.calls = 0

    def predict(self, context, model_input, params=None):
        self.calls += 1
        if self.every and self.calls % self.every == 0:
            raise ValueError("the model failed on this request")
        if self.delay:
            time.sleep(self.delay)
        score = (model_input["monthly_charges"] / 100.0 - model_input["tenure_months"] / 60.0
                 + (model_input["contract"] == "Month-to-month") * 0.3)
        out = (score > 0.45).astype("int64")
        return 1 - out if self.mode == "shifted" else out


set_model(Churn())
'''

BEHAVIOURS: dict[str, dict[str, object]] = {
    "stable": {},
    "healthy": {},
    "errors": {"mode": "errors", "fail_every": 2},
    "errors-5pct": {"mode": "errors", "fail_every": 20},  # the bench's: 5% of the requests
    # +100 ms: 5x the stable's p95 on a busy 2-core host (about 20 ms), 10x and more on a quiet one
    "slow": {"mode": "slow", "delay": 0.1},
    "crash": {"mode": "crash"},
    "shifted": {"mode": "shifted"},
}


def rows(n: int = 200) -> list[dict[str, object]]:
    from ..unit.test_serve import churn_rows

    return json.loads(churn_rows(n).to_json(orient="records"))


def save_model(dst: Path, config: dict[str, object]) -> Path:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    from ..unit.test_serve import churn_rows

    work = dst.parent / f"{dst.name}-code"
    work.mkdir(parents=True, exist_ok=True)
    (work / "churn_scorer.py").write_text(CODE)
    x = churn_rows(200)
    cwd = os.getcwd()
    os.chdir(work)  # mlflow copies a uv project's lock file found in the working directory
    try:
        mlflow.pyfunc.save_model(str(dst), python_model=str(work / "churn_scorer.py"), model_config=dict(config),
                                 signature=infer_signature(x, pd.Series([0] * len(x), dtype="int64")),
                                 pip_requirements=["pandas"])
    finally:
        os.chdir(cwd)
    return dst


def build_images(project: Path, base_image: str, names: list[str] | None = None) -> dict[str, str]:
    """One image per behaviour through build-push-image's real path; name -> REGISTRY/IMAGE@sha256:..."""
    out: dict[str, str] = {}
    for name in names or list(BEHAVIOURS):
        save_model(project / "models" / name, BEHAVIOURS[name])
        outputs = project / f"build-{name}.out"
        outputs.write_text("")
        env = dict(os.environ, GITHUB_OUTPUT=str(outputs))
        env.pop("GITHUB_ACTIONS", None)
        res = subprocess.run([sys.executable, "-m", "leanops", "build-push-image", "--model-uri", f"models/{name}",
                              "--registry", NAMESPACE, "--image", REPOSITORY, "--base-image", base_image],
                             cwd=project, capture_output=True, text=True, env=env, timeout=1800)
        if res.returncode != 0:
            raise RuntimeError(f"build of {name} failed: {(res.stdout + res.stderr)[-3000:]}")
        image = next(line.split("=", 1)[1] for line in outputs.read_text().splitlines() if line.startswith("image="))
        out[name] = image
    return out


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """A background process keeping about one core busy (the noisy, shared host the judge must cope with)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        yield
    finally:
        stop_process_group(proc.pid, wait=5)
        proc.wait(timeout=10)


def template_limits() -> str:
    """The canary-deploy section of the adopter template (templates/project/leanops.yml) without its steps and
    router: every limit as an adopter gets it."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    section = yaml.safe_load((root / "templates/project/leanops.yml").read_text())["canary-deploy"]
    for key in ("steps", "router", "target"):
        section.pop(key, None)
    return yaml.safe_dump({"canary-deploy": section}, sort_keys=False)


def remove_images(images: dict[str, str]) -> None:
    remove_repository_images(f"{NAMESPACE}/{REPOSITORY}")


def wait_router(url: str, timeout: float = 30.0) -> None:
    if not wait_for_http(url, timeout=timeout):
        raise RuntimeError(f"{url} did not answer")


def deploy(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                                                  dict[str, str], str]:
    """``leanops canary-deploy ARGS`` as a workflow step would run it: outputs and the job summary."""
    out, summ = project / f"out-{time.monotonic_ns()}", project / f"summary-{time.monotonic_ns()}"
    out.write_text("")
    summ.write_text("")
    full = dict(os.environ, GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(summ), **(env or {}))
    full.pop("GITHUB_ACTIONS", None)
    res = subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", *args], cwd=project, capture_output=True,
                         text=True, env=full, timeout=600)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return res, outputs, summ.read_text()


# ---------------------------------------------------------------------------- the tests

pytestmark = pytest.mark.e2e

RATE = 50.0  # the stable model server must keep up on a busy 2-core CI machine (at 100 it saturated)
WINDOW = 10.0  # at 10% of 50 requests/s: 50 canary requests, the template's min-requests
STEPS = f"10:{WINDOW:g},50:{WINDOW:g},100:{WINDOW:g}"
LEANOPS_YML = "version: 1\nmodel:\n  name: churn\n" + template_limits()  # ready-timeout too: 120 s


@pytest.fixture(scope="module")
def base_image(harness) -> str:
    return ensure_base_image()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("canary") / "project", {"leanops.yml": LEANOPS_YML})


@pytest.fixture(scope="module")
def images(project: Path, base_image: str) -> Iterator[dict[str, str]]:
    import docker

    client = docker.from_env()
    routers = {t for i in client.images.list(name="leanops-router") for t in i.tags}
    built = build_images(project, base_image, ["stable", "healthy", "errors", "slow", "crash", "shifted"])
    yield built
    remove_images(built)
    for image in client.images.list(name="leanops-router"):
        if not set(image.tags) & routers:
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.APIError:
                pass


class Deployment:
    def __init__(self, project: Path, name: str, base_image: str) -> None:
        self.project, self.name, self.base_image = project, name, base_image
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def run(self, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
        return deploy(self.project, *args, "--name", self.name, "--router-publish", f"127.0.0.1:{self.port}",
                      "--router-base-image", self.base_image, "--report-file", f"report-{self.name}.json")

    def report(self) -> dict:
        return json.loads((self.project / f"report-{self.name}.json").read_text())

    def containers(self) -> list[str]:
        import docker

        # the low-level list: no inspect per container, so one removed meanwhile is not an error
        found = docker.from_env().api.containers(all=True, filters={"label": f"io.leanops.canary.app={self.name}"})
        return sorted(c["Names"][0].lstrip("/") for c in found)

    def start(self, image: str) -> None:
        res, outputs, _ = self.run("--image", image)
        assert res.returncode == 0, res.stderr[-3000:]
        assert outputs["verdict"] == "promoted"
        wait_router(f"{self.url}/leanops/router/health")


def container(name: str, image: str) -> str:
    return f"leanops-{name}-{image.rsplit(':', 1)[1][:12]}"


@pytest.fixture(scope="module")
def shared(project: Path, images: dict[str, str], base_image: str) -> Iterator[Deployment]:
    """One deployment with the stable running, for the bad canaries (each leaves the stable as it was)."""
    d = Deployment(project, "canary-bad", base_image)
    cleanup_deployment(d.name)
    d.start(images["stable"])
    yield d
    cleanup_deployment(d.name)


@pytest.mark.parametrize("bad", ["errors", "slow", "crash", "shifted"])
def test_a_bad_canary_is_rolled_back_and_the_stable_keeps_serving(shared: Deployment, images: dict[str, str],
                                                                    bad: str) -> None:
    d = shared
    try:
        with Load(f"{d.url}/predict", rate=RATE) as load:
            time.sleep(1)
            res, outputs, summary = d.run("--image", images[bad], "--steps", STEPS)
            time.sleep(1.5)
    finally:
        if d.report()["stable"]["image"] != images["stable"]:
            d.run("rollback")  # a bad canary promoted: put the stable back for the next case
    assert res.returncode == 1, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("leanops canary-deploy: error: rolled back: "), last
    assert "Traceback" not in res.stderr
    assert outputs["verdict"] == "rolled-back"
    assert outputs["stable-digest"] == images["stable"].rsplit("@", 1)[1]
    report = d.report()
    assert report["verdict"] == "rolled-back" and report["stable"]["image"] == images["stable"]
    assert d.containers() == sorted([f"leanops-{d.name}-router", container(d.name, images["stable"])])
    expected_reason = {"errors": "error rate", "slow": "latency median", "crash": "did not become ready",
                       "shifted": "prediction psi"}[bad]
    assert expected_reason in last, last
    # a crash or 50% errors at once; slow and shifted once a second window confirms (or one extension decides)
    assert report["windows"] <= {"errors": 1, "slow": 3, "crash": 0, "shifted": 3}[bad], report["steps"]
    # clients: at most the canary's share of one window failed, and none once the rollback was done
    share = 0.1 * RATE * WINDOW
    assert len(load.failures) <= share, load.summary()
    done = max(t for t, _ in load.results) - 1.0
    assert all(s == 200 for t, s in load.results if t >= done), load.summary()
    assert "| step | weight | window |" in summary and "rolled-back" in summary
    if bad != "crash":
        assert "| window | metric | samples canary / compared with |" in summary and "| 1.1 | latency |" in summary


@pytest.fixture(scope="module")
def promoted(project: Path, images: dict[str, str], base_image: str) -> Iterator[tuple[Deployment, Load, tuple]]:
    d = Deployment(project, "canary-good", base_image)
    cleanup_deployment(d.name)
    d.start(images["stable"])
    with busy_core(), Load(f"{d.url}/predict", rate=RATE) as load:
        time.sleep(1)
        result = d.run("--image", images["healthy"], "--steps", STEPS)
        time.sleep(1.5)
    yield d, load, result
    cleanup_deployment(d.name)


def test_a_healthy_canary_is_promoted_with_no_failed_request(promoted, images: dict[str, str]) -> None:
    d, load, (res, outputs, summary) = promoted
    assert res.returncode == 0, res.stderr[-3000:]
    assert outputs["verdict"] == "promoted"
    assert outputs["stable-digest"] == images["healthy"].rsplit("@", 1)[1]
    assert not load.failures, load.summary()
    assert len(load.results) >= RATE * WINDOW * 3 * 0.8, load.summary()
    report = d.report()
    passed = [s for s in report["steps"] if s["verdict"] == "pass"]
    assert [s["weight"] for s in passed] == [10, 50, 100], report["steps"]
    assert all(s["canary_requests"] >= 50 and s["latency_source"] == "samples" for s in passed), report["steps"]
    # at 100% the baseline took the whole load on the odd seconds of the canary's windows
    assert passed[-1]["against"] == "baseline (by turns)" and passed[-1]["stable_requests"] >= 50, passed[-1]
    assert report["reference"]["turns"] is True and report["reference"]["role"] == "baseline"
    assert report["warm_up"]["ok"] == report["warm_up"]["requests"] == 10
    assert report["record"]["stable"]["image"] == images["healthy"]
    assert report["record"]["previous"][0]["image"] == images["stable"]
    assert report["record"]["stable"]["commit"] and report["record"]["stable"]["deployed_at"]
    assert d.containers() == sorted([f"leanops-{d.name}-router", container(d.name, images["healthy"])])
    assert "```mermaid" in summary and "| 3 | 100% |" in summary


def test_rollback_after_a_promotion_restores_the_previous_digest(promoted, images: dict[str, str]) -> None:
    d, _, (res, _, _) = promoted
    assert res.returncode == 0
    with Load(f"{d.url}/predict", rate=RATE) as load:
        time.sleep(0.5)
        res, outputs, _ = d.run("rollback")
        time.sleep(1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert outputs["verdict"] == "rolled-back"
    assert outputs["stable-digest"] == images["stable"].rsplit("@", 1)[1]
    assert d.containers() == sorted([f"leanops-{d.name}-router", container(d.name, images["stable"])])
    assert not load.failures, load.summary()
    res, _, _ = d.run("rollback")
    assert res.returncode == 2 and "no previous stable" in res.stderr.strip().splitlines()[-1]


CALLER = """\
name: canary-caller
on: [push]
permissions: {}
jobs:
  deploy:
    uses: leanops/leanops/.github/workflows/canary-deploy.yml@main
    permissions:
      contents: read
      packages: read
    with:
      image: IMAGE
      environment: staging
      name: NAME
      steps: "25:5,100:5"
      router-publish: PUBLISH
      router-base-image: BASE
  show:
    needs: deploy
    runs-on: ubuntu-latest
    permissions: {}
    steps:
      - run: echo "out-verdict=$VERDICT out-digest=$DIGEST out-report=$REPORT"
        env:
          VERDICT: ${{ needs.deploy.outputs.verdict }}
          DIGEST: ${{ needs.deploy.outputs.stable-digest }}
          REPORT: ${{ needs.deploy.outputs.report-file }}
"""


def test_reusable_workflow_under_act_promotes_a_healthy_canary(harness, project: Path, images: dict[str, str],
                                                               base_image: str, tmp_path: Path) -> None:
    """The kit's reusable workflow, called as an adopter would, canaries an image on the engine act runs on."""
    import re

    from leanops.tools.harness import ActRun

    d = Deployment(project, "canary-act", base_image)
    cleanup_deployment(d.name)
    try:
        d.start(images["stable"])
        caller = (CALLER.replace("IMAGE", images["healthy"]).replace("NAME", d.name)
                  .replace("PUBLISH", f"127.0.0.1:{d.port}").replace("BASE", base_image))
        repo = make_repo(tmp_path / "caller", {
            ".github/workflows/deploy.yml": caller,
            "leanops.yml": LEANOPS_YML})
        with Load(f"{d.url}/predict", rate=60) as load:
            res = harness.run(ActRun(repo=repo), log=tmp_path / "act.log")
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-6000:]
        assert "Main actions/cache" not in out  # no cache restored
        m = re.search(r"out-verdict=(\S+) out-digest=(sha256:[0-9a-f]{64}) out-report=(\S+)", out)
        assert m, out[-4000:]
        assert m.group(1) == "promoted" and m.group(2) == images["healthy"].rsplit("@", 1)[1]
        assert m.group(3).endswith("canary-report.json")
        assert not load.failures, load.summary()
        assert d.containers() == sorted([f"leanops-{d.name}-router", container(d.name, images["healthy"])])
    finally:
        cleanup_deployment(d.name)


def test_a_cancelled_deploy_takes_the_canary_out_of_the_traffic(shared: Deployment, images: dict[str, str]) -> None:
    """SIGTERM (a cancelled job) in the middle of a step: weight 0, canary removed, exit 130, stable serving."""
    import os
    import signal

    d = shared
    out = d.project / "cancel.out"
    out.write_text("")
    env = dict(os.environ, GITHUB_OUTPUT=str(out))
    env.pop("GITHUB_ACTIONS", None)
    cmd = [sys.executable, "-m", "leanops", "canary-deploy", "--image", images["healthy"], "--steps", "10:60,100:60",
           "--name", d.name, "--router-publish", f"127.0.0.1:{d.port}", "--router-base-image", d.base_image]
    with Load(f"{d.url}/predict", rate=RATE) as load:
        proc = subprocess.Popen(cmd, cwd=d.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(d.containers()) < 3:
            time.sleep(0.2)
        time.sleep(8)  # ready (a few seconds), then it has had traffic for a moment
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        time.sleep(1)
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted: canary weight 0" in stderr
    assert d.containers() == sorted([f"leanops-{d.name}-router", container(d.name, images["stable"])])
    assert not load.failures, load.summary()
