#!/usr/bin/env python3
"""`make demo`: the whole lifecycle on examples/churn under act, with the real engine and real services.

1. A throwaway repository: the example's committed files, plus what `leanops init` adds (the caller workflows
   ml-pipeline.yml and weekly-drift.yml); leanops.yml points the image at the local registry and the canary's
   router at a port on loopback.
   The stack a team runs, on loopback: PostgreSQL, an S3-compatible object store (moto) and
   `mlflow server --app-name basic-auth` keeping its runs and users in PostgreSQL and its artifacts in a bucket;
   the jobs get a writer (the push) and a read-only user (weekly-drift) as the template's secrets.
2. Push 1 to the default branch runs ml-pipeline.yml: validate, train (DVC + MLflow on that server), gate,
   build and push the image by digest, first deploy (the stable behind the nginx router), promote (alias
   champion), lineage record.
3. A parameter change, push 2, with a load generator sending requests through the router the whole time: the
   new candidate is gated against the champion, built, rolled out as a canary step by step with analysis,
   promoted, recorded.
4. New customers arrive: rows of a shifted population land in the example's source table (PostgreSQL on
   loopback, read by the DVC stage ``fetch``), and a scheduled weekly-drift run compares them with the champion's
   training data: the drift issue is opened on a local recorder of the GitHub REST API, and the retraining is
   dispatched (ml-pipeline with refresh on).
5. The dispatched run, under act: refresh re-reads the table (the new rows), data-validate checks those bytes,
   train-with-cache trains on them, gate-metrics compares the candidate with the champion re-scored on the
   candidate's evaluation rows, and the new model goes out as a canary under traffic and is promoted.

It ends with a short summary of each stage and where its reports are, and the time of this run next to the
first one. A second `make demo` reuses the uv and DVC caches, the images and their layers, so it is faster.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from secrets import token_hex
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the demo borrows the tests' local helpers (an API recorder, a load generator)

from tests.api_recorder import Recorder  # noqa: E402
from tests.services import (  # noqa: E402
    Load,
    add_customers,
    churn_source,
    copy_example,
    free_port,
    remove_deployment,
    stop_process_group,
    wait_for_http,
)

from leanops import cli, gh  # noqa: E402
from leanops.fsutil import atomic_write, atomic_write_json  # noqa: E402
from leanops.tools.harness import REGISTRY, ActRun, Harness, default_home, ensure_base_image  # noqa: E402
from leanops.tools.services import (  # noqa: E402
    Postgres,
    start_backend_stack,
    start_postgres,
)

MODEL = "churn-classifier"  # model.name of the example: the image's and the deployment's name too
NAME = "example/churn"
CRON = "17 6 * * 1"
NEW_ROWS = 1500  # customers of a shifted population added to the source table per demo (a drift, then a retrain)
RATE = 30  # requests per second through the router while the canary job runs (sized for the example's windows)
GIT_ENV = {"GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.com", "GIT_COMMITTER_NAME": "demo",
           "GIT_COMMITTER_EMAIL": "demo@example.com"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, env=dict(os.environ, **GIT_ENV), capture_output=True)


def make_repo(dest: Path, base_image: str, port: int) -> Path:
    """The example's committed files and what `leanops init` adds, configured for this machine."""
    if dest.exists():
        shutil.rmtree(dest)
    copy_example(dest)
    with gh.group("leanops init (the caller workflows)"):
        if cli.main(["init", str(dest), "--model-name", MODEL]) != 0:
            raise SystemExit("demo: leanops init failed")
    config = dest / "leanops.yml"
    # the example's canary limits are the adopter template's (no demo-only ones); its 20 s windows at the demo's
    # 30 requests per second give the canary's 10% about 60 requests a window, above min-requests (50)
    router = f'    publish: "127.0.0.1:{port}"\n    base-image: {base_image}'
    text, found = re.subn(r'(?m)^    publish: "[^"]*".*$', router, config.read_text(), count=1)
    if found != 1:  # the router's local base image and port must land, or the router's build pulls from a hub
        raise SystemExit(f"demo: {config}: no canary-deploy.router.publish line to point at the demo's port")
    config.write_text(text + f"\nbuild-push-image:\n  registry: {REGISTRY}/leanops-demo\n  base-image: {base_image}\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "churn model: first version")
    git(dest, "remote", "add", "origin", f"https://github.com/{NAME}.git")
    return dest


def connect_source(repo: Path, pg: Postgres) -> tuple[str, dict[str, str]]:
    """The example's source table (``churn_source``) and weekly-drift dispatching ml-pipeline on drift."""
    drift = repo / ".github/workflows/weekly-drift.yml"
    text, found = re.subn(r"(?m)^(\s+)# retrain-workflow: \S+.*$", r"\1retrain-workflow: ml-pipeline.yml",
                          drift.read_text(), count=1)
    if found != 1 and "retrain-workflow: ml-pipeline.yml" not in text:
        raise SystemExit(f"demo: {drift}: no retrain-workflow line to turn on")
    drift.write_text(text)
    return churn_source(repo, pg, message="the source table: PostgreSQL on this machine; retrain on drift")


def event(path: Path, payload: dict[str, object]) -> Path:
    payload = {"repository": {"full_name": NAME, "default_branch": "main"}, **payload}
    path.write_text(json.dumps(payload))
    return path


def job_ok(out: str, job: str) -> bool:
    """act's line for a job of a called workflow: ``[CALLER_JOB/WORKFLOW_NAME/JOB] 🏁  Job succeeded``."""
    return bool(re.search(rf"\[[^\]\n]*{re.escape(job)}[^\]\n]*\] 🏁  Job succeeded", out))


def find(pattern: str, out: str, default: str = "") -> str:
    found = re.findall(pattern, out)
    return found[-1] if found else default


def pipeline_rows(label: str, out: str) -> list[list[str]]:
    """What each job of ml-pipeline did, from act's log."""
    image = find(rf"({re.escape(REGISTRY)}/leanops-demo/{MODEL}@sha256:[0-9a-f]{{64}})", out)
    verdict = find(r"verdict[=: ]+(promoted|rolled-back)", out, "first deploy" if "first deploy" in out else "")
    return [
        [f"{label}: data-validate", "ok" if job_ok(out, "data-validate/data-validate") else "failed",
         find(r"data-validate: (\d+ expectations evaluated[^\n]*)", out)],
        [f"{label}: train-with-cache", "ok" if job_ok(out, "train-with-cache/train") else "failed",
         find(r"(registered " + MODEL + r" version \d+ with alias challenger)", out)
         or find(r"(skipped[^\n]*)", out)],
        [f"{label}: gate-metrics", "ok" if job_ok(out, "gate-metrics/gate") else "failed",
         find(r"(gate-metrics: \d+ gates? (?:passed|failed)[^\n]*)", out)],
        [f"{label}: build-push-image", "ok" if image else "failed", image],
        [f"{label}: canary-deploy", verdict or "failed", find(r"(stable[- ]digest[=: ]+sha256:[0-9a-f]{12})", out)],
        [f"{label}: promote", "ok" if "alias champion -> version" in out else "failed",
         find(r"(alias champion -> version \d+)", out)],
        [f"{label}: lineage", "ok" if "lineage: kept with" in out else "failed",
         find(r"(lineage: kept with [^\n]*)", out)],
    ]


def retrain_rows(out: str) -> list[list[str]]:
    """The dispatched retrain's jobs: the refresh, then ml-pipeline's as for a push (the gate against the champion
    re-scored on the candidate's evaluation rows)."""
    refreshed = find(r"(refresh: [^\n]*(?:new data|refreshed)[^\n]*)", out)
    rescored = find(r"(champion re-scored on [0-9,]+ rows[^\n]*)", out)
    rows = [["retrain: refresh", "ok" if job_ok(out, "ml-pipeline/refresh") else "failed", refreshed],
            *pipeline_rows("retrain", out)]
    rows.insert(3, ["retrain: champion re-scored", "ok" if rescored else "failed", rescored])
    return rows


def run_act(harness: Harness, run: ActRun, log: Path, title: str) -> str:
    with gh.group(title):
        t0 = time.monotonic()
        res = harness.run(run, log=log)
        gh.step(f"{title}: act exit code {res.returncode} after {time.monotonic() - t0:.0f}s (log {log})")
    out = res.stdout + res.stderr
    if res.returncode != 0:
        print("\n".join(out.splitlines()[-60:]), file=sys.stderr)
        raise SystemExit(f"demo: {title} failed (act exit code {res.returncode}); the full log is {log}")
    return out


class CanaryTraffic:
    """The load generator through the router while the canary job runs (act names its container
    ``act-canary-...``): the rollout and the promotion happen under traffic, while the other jobs get the
    machine's two cores to themselves. Every request is kept in ``log`` (seconds since the canary job started,
    status)."""

    def __init__(self, url: str, log: Path) -> None:
        self.load = Load(url, rate=RATE)
        self.log = log
        self.started = 0.0
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import docker

        client = docker.from_env()

        def canary_job() -> bool:
            return bool(client.containers.list(filters={"name": "act-canary-"}))

        while not self._stop.is_set() and not canary_job():
            self._stop.wait(0.5)
        if self._stop.is_set():
            return
        self.started = time.monotonic()
        with self.load:
            while not self._stop.is_set() and canary_job():
                self._stop.wait(0.5)

    def __enter__(self) -> CanaryTraffic:
        self._watch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watch.join()
        rows = [{"t": round(t - self.started, 3), "status": str(s)} for t, s in self.load.results]
        atomic_write_json(self.log, {"rate": RATE, "requests": rows})

    def failures(self) -> str:
        """When the failed requests were, in seconds after the canary job started."""
        times = [t - self.started for t, _ in self.load.failures]
        return f"first at {min(times):.0f}s, last at {max(times):.0f}s" if times else ""


def read_state(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def router_running() -> bool:
    import docker

    found = docker.from_env().containers.list(filters={"name": f"leanops-{MODEL}-router"})
    return bool(found)


def stack_alive(stack: dict[str, Any]) -> bool:
    """Whether the stack the last demo left running still answers (PostgreSQL, the object store, MLflow)."""
    if not stack:
        return False
    try:
        pg_of(stack).connect().close()
    except Exception:  # noqa: BLE001 - gone, or not answering: start over
        return False
    return (wait_for_http(f"{stack['s3']['endpoint']}/moto-api/data.json", timeout=3)
            and wait_for_http(f"{stack['mlflow']['uri']}/health", timeout=3))


def pg_of(stack: dict[str, Any]) -> Postgres:
    """The stack's PostgreSQL as recorded in the state file (the process is the last demo's)."""
    pg = stack["pg"]
    return Postgres(None, Path(pg["root"]), int(pg["port"]), pg["user"], pg["password"])


def start_stack(work: Path) -> dict[str, Any]:
    """The production-shaped stack (issue 17), left running after the demo for its UI and the next demo:
    PostgreSQL (MLflow's runs and users, and the example's source table), an S3-compatible store (moto) whose
    bucket keeps MLflow's artifacts, and `mlflow server --app-name basic-auth` on both, with a writer (the push's
    jobs) and a read-only user (pull requests, weekly-drift). What a client needs is recorded in the state file
    (mode 0600)."""
    pg = start_postgres()
    try:
        own, proc = start_backend_stack(work, pg, "leanops-demo")
    except BaseException:
        pg.stop()
        raise
    s3, server, bucket = own.store, own.mlflow, own.bucket
    server.share(MODEL)  # the experiment and the registered model: MANAGE for the writer, READ for the reader
    gh.step(f"PostgreSQL 127.0.0.1:{pg.port}, object store {s3.endpoint} (bucket {bucket}), "
            f"MLflow (basic-auth) {server.uri}: runs in PostgreSQL, artifacts in s3://{bucket}/mlflow")
    users = {u.username: u.password for u in (server.admin, server.writer, server.reader)}
    return {"pg": {"pid": pg.proc.pid if pg.proc else 0, "root": str(pg.root), "port": pg.port, "user": pg.user,
                   "password": pg.password},
            "s3": {"pid": s3.proc.pid, "endpoint": s3.endpoint, "bucket": bucket},
            "mlflow": {"pid": proc.pid, "uri": server.uri, "users": users}}


def stack_secrets(stack: dict[str, Any]) -> dict[str, str]:
    """The repository's secrets for the stack: the tracking server, its read-only user (pull requests and
    weekly-drift) and its writer (the push's jobs). The jobs hold no storage credential: the server proxies
    the artifacts to the bucket."""
    users = stack["mlflow"]["users"]
    return {"MLFLOW_TRACKING_URI": stack["mlflow"]["uri"],
            "MLFLOW_READ_USERNAME": "reader", "MLFLOW_READ_PASSWORD": users["reader"],
            "MLFLOW_TRACKING_USERNAME": "writer", "MLFLOW_TRACKING_PASSWORD": users["writer"]}


def bucket_row(stack: dict[str, Any]) -> list[str]:
    """The demo table's check that the models' files went to the bucket (through the server), not to a disk."""
    import boto3

    s3 = stack["s3"]
    anyone = token_hex(8)  # moto takes any credential; the jobs were given none
    client = boto3.client("s3", endpoint_url=s3["endpoint"], aws_access_key_id=anyone,
                          aws_secret_access_key=anyone, region_name="us-east-1")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3["bucket"])
            for o in page.get("Contents", [])]
    models = sorted({k.split("/artifacts/")[0] for k in keys if "/MLmodel" in k})
    return ["stack: artifacts in the object store", "ok" if models else "failed",
            f"{len(keys)} objects in s3://{s3['bucket']}/mlflow, the model files of {len(models)} runs"]


def stop_stack(stack: dict[str, Any]) -> None:
    """Stop what ``start_stack`` left running (MLflow first, then the store and PostgreSQL)."""
    for part in ("mlflow", "s3"):
        if (stack.get(part) or {}).get("pid"):
            stop_process_group(int(stack[part]["pid"]), wait=10)
    pg = stack.get("pg") or {}
    if pg.get("pid"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pg["pid"]), signal.SIGINT)  # PostgreSQL's fast shutdown
        stop_process_group(int(pg["pid"]), wait=15)
    if pg.get("root"):
        shutil.rmtree(pg["root"], ignore_errors=True)


def tracking_stack(work: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The stack the last demo left running, else a new one."""
    stack = state.get("stack") or {}
    if stack_alive(stack):
        gh.step(f"MLflow (basic-auth) {stack['mlflow']['uri']} on PostgreSQL and the object store (left by the "
                "last demo)")
        return dict(stack)
    stop_stack(stack)
    if state.get("mlflow_pid"):  # a server left by a demo before the stack
        stop_process_group(int(state.pop("mlflow_pid")), wait=5)
    with gh.group("The stack: PostgreSQL, an S3-compatible store, MLflow with basic auth on both"):
        stack = start_stack(work)
    state["stack"] = stack
    return stack


def stop(work: Path) -> None:
    """`make demo-down`: the deployment and the stack the demo left running."""
    state = read_state(work / "state.json")
    remove_deployment(MODEL)
    stop_stack(state.get("stack") or {})
    if state.get("mlflow_pid"):
        stop_process_group(int(state["mlflow_pid"]), wait=10)
    (work / "state.json").unlink(missing_ok=True)
    print("demo: the deployment, MLflow, the object store and PostgreSQL are stopped")


def main(argv: list[str]) -> int:
    start = time.monotonic()
    home = default_home()
    work = home / "demo"
    work.mkdir(parents=True, exist_ok=True)
    if "--down" in argv:
        stop(work)
        return 0
    state_file = work / "state.json"
    state = read_state(state_file)
    repo = work / "churn"
    harness = Harness(kit=ROOT, home=home)
    with gh.group("Engine, runner image, registry and base image"):
        harness.prepare()
        base = ensure_base_image()
    # A demo continues from the last one when it left its repository, registry and deployment behind: the
    # champion serves, so one new candidate goes through the whole lifecycle as a canary. Otherwise (or with
    # LEANOPS_DEMO_FRESH=1) it starts from nothing: a first model, first deploy, then the canary release.
    fresh = (os.environ.get("LEANOPS_DEMO_FRESH", "") not in ("", "0") or not state.get("released")
             or not (repo / ".git").is_dir() or not stack_alive(state.get("stack") or {}) or not router_running())
    if fresh:
        remove_deployment(MODEL)
        stop_stack(state.get("stack") or {})
        if state.get("mlflow_pid"):
            stop_process_group(int(state["mlflow_pid"]), wait=10)
        for folder in ("mlflow", "s3"):
            shutil.rmtree(work / folder, ignore_errors=True)
        state = {"port": free_port(), "release": 0}
        repo = make_repo(repo, base, int(state["port"]))
    router = f"http://127.0.0.1:{state['port']}"
    stack = tracking_stack(work, state)
    atomic_write(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n", mode=0o600)  # passwords
    with gh.group("The source table: a database of the stack's PostgreSQL, filled with the example's rows"):
        source, source_secret = connect_source(repo, pg_of(stack))
    return lifecycle(harness, work, repo, state, state_file, fresh, router, stack, source, source_secret, start)


def lifecycle(harness: Harness, work: Path, repo: Path, state: dict[str, Any], state_file: Path, fresh: bool,
              router: str, stack: dict[str, Any], source: str, source_secret: dict[str, str], start: float) -> int:
    rows: list[list[str]] = []
    tracking = stack["mlflow"]["uri"]
    with Recorder(log=work / "github-api.jsonl") as api:
        secrets = {"GITHUB_TOKEN": "ghs_demo_token", **stack_secrets(stack), **source_secret}
        env = {"GITHUB_API_URL": api.url}
        pipeline = ".github/workflows/ml-pipeline.yml"
        push = event(work / "push.json", {"ref": "refs/heads/main"})

        if fresh:
            out = run_act(harness, ActRun(repo=repo, event="push", workflow=pipeline, env=env, secrets=secrets,
                                          event_file=push), work / "push-1.log", "Push 1: the first model")
            rows += pipeline_rows("push 1", out)

        # a new candidate: C between 1.0 and 0.5, and a new seed, so that every release trains a new model
        release = int(state.get("release", 0)) + 1
        params = repo / "params.yaml"
        text = params.read_text()
        c_now = re.search(r"^  C: ([0-9.]+)", text, re.M)
        c_new = "0.5" if c_now is None or float(c_now.group(1)) != 0.5 else "1.0"
        text = re.sub(r"^  C: [0-9.]+", f"  C: {c_new}", text, count=1, flags=re.M)
        text = re.sub(r"^(train:\n(?:  .*\n)*?)  seed: \d+", rf"\g<1>  seed: {41 + release}", text, count=1, flags=re.M)
        params.write_text(text)
        git(repo, "commit", "-qam", f"churn model: C {c_new} (release {release})")
        label = "push 2" if fresh else f"release {release}"
        with CanaryTraffic(f"{router}/predict", work / "traffic.json") as traffic:
            out = run_act(harness, ActRun(repo=repo, event="push", workflow=pipeline, env=env, secrets=secrets,
                                          event_file=push), work / "push-2.log",
                          f"{label.capitalize()}: a new candidate (C {c_new}), rolled out as a canary under traffic")
        rows += pipeline_rows(label, out)
        load = traffic.load
        rows.append([f"{label}: traffic through the router during the canary job",
                     "ok" if traffic.started and not load.failures else "failed",
                     f"{load.summary()}; {len(load.failures)} failed {traffic.failures()}".strip()
                     if traffic.started else "never started"])
        state.update(release=release, released=True)
        atomic_write(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n", mode=0o600)

        with gh.group("New customers arrive: rows of a shifted population land in the source table"):
            new_rows = work / "new-rows.csv"
            gh.step(add_customers(repo, source, source_secret, rows=NEW_ROWS, first_id=200001 + 10000 * release,
                                  seed=7 + release, out=new_rows))
            # the recent rows are what the model sees now: the drift check's current window
            shutil.copyfile(new_rows, repo / "data" / "current.csv")
            config = repo / "leanops.yml"
            drift = "weekly-drift:\n  current: data/current.csv\n  ignore-columns: [customer_id]\n"
            if "current: data/current.csv" not in config.read_text():
                config.write_text(config.read_text().replace("weekly-drift:\n", drift, 1))
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "current data from the prediction logs", "--allow-empty")
        out = run_act(harness, ActRun(repo=repo, event="schedule", workflow=".github/workflows/weekly-drift.yml",
                                      env=env, secrets=secrets,
                                      event_file=event(work / "schedule.json", {"schedule": CRON})),
                      work / "drift.log", "Scheduled weekly-drift on shifted data")
        issues = [i for i in api.fake.issues.values() if "leanops:drift" in json.dumps(i.get("labels", []))]
        rows.append(["weekly-drift", "drift detected" if issues else "no issue opened",
                     f"issue #{issues[0]['number']}: {issues[0]['title']}" if issues else
                     find(r"(drift[- ]share[=: ]+[0-9.]+)", out)])
        dispatched = [d for d in api.fake.dispatches if d.get("workflow") == "ml-pipeline.yml"]
        rows.append(["weekly-drift: retrain dispatched", "ok" if dispatched else "failed",
                     f"ml-pipeline.yml with inputs {json.dumps(dispatched[-1].get('inputs', {}))}" if dispatched
                     else "no workflow_dispatch recorded"])
        if dispatched:
            inputs = {k: str(v).lower() for k, v in (dispatched[-1].get("inputs") or {}).items()}
            with CanaryTraffic(f"{router}/predict", work / "traffic-retrain.json") as traffic:
                out = run_act(harness, ActRun(repo=repo, event="workflow_dispatch", workflow=pipeline, env=env,
                                              secrets=secrets, inputs=inputs,
                                              event_file=event(work / "dispatch.json",
                                                               {"ref": "refs/heads/main", "inputs": inputs})),
                              work / "retrain.log", "The dispatched retrain: the new rows in, validated, trained, "
                              "gated against the champion re-scored on them, rolled out as a canary")
            rows += retrain_rows(out)
            load = traffic.load
            rows.append(["retrain: traffic through the router during the canary job",
                         "ok" if traffic.started and not load.failures else "failed",
                         f"{load.summary()}; {len(load.failures)} failed {traffic.failures()}".strip()
                         if traffic.started else "never started"])

    rows.append(bucket_row(stack))
    elapsed = time.monotonic() - start
    timings_file = work / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    timings.setdefault("first", elapsed)
    timings["last"] = elapsed
    timings["last-mode"] = "fresh" if fresh else "continued"
    atomic_write_json(timings_file, timings)
    reports = (f"act logs: {work}/push-1.log, push-2.log, drift.log, retrain.log; reports and artifacts "
               f"(data-validate, gate, canary, drift): {harness.store}/artifacts; the GitHub API requests: "
               f"{work}/github-api.jsonl; the requests during the canaries: {work}/traffic.json and "
               f"traffic-retrain.json. Left running "
               f"for a look and for the next demo: the model on {router}, "
               f"the MLflow UI on {tracking} (users and passwords in {state_file}, artifacts in "
               f"s3://{stack['s3']['bucket']}/mlflow on {stack['s3']['endpoint']}); `make demo-down` stops them, "
               "LEANOPS_DEMO_FRESH=1 starts over")
    gh.add_summary("## leanops demo\n\n" + gh.md_table(["stage", "result", "detail"], rows) + "\n" + reports + "\n")
    print(gh.md_table(["stage", "result", "detail"], rows))
    print(f"\n{reports}\n\ndemo took {elapsed:.0f}s ({'from nothing' if fresh else 'continuing the last demo'}; "
          f"the first run took {timings['first']:.0f}s; targets with the retraining loop: <= 15 min cold, "
          "<= 11 min warm)")
    failed = [r[0] for r in rows if r[1] in ("failed", "no issue opened")]
    if failed:
        print(f"demo: these stages did not do what they should: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
