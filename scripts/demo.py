#!/usr/bin/env python3
"""`make demo`: the whole lifecycle on examples/churn under act, with the real engine and real services.

1. A throwaway repository: the example's committed files, plus what `leanops init` adds (the caller workflows
   ml-pipeline.yml and weekly-drift.yml); leanops.yml points the image at the local registry and the canary's
   router at a port on loopback.
2. Push 1 to the default branch runs ml-pipeline.yml: validate, train (DVC + MLflow on a real `mlflow server`
   on loopback), gate, build and push the image by digest, first deploy (the stable behind the nginx router),
   promote (alias champion), lineage record.
3. A parameter change, push 2, with a load generator sending requests through the router the whole time: the
   new candidate is gated against the champion, built, rolled out as a canary step by step with analysis,
   promoted, recorded.
4. Shifted current data and a scheduled weekly-drift run: Evidently's drift tests against the champion's
   training data; the drift issue is opened on a local recorder of the GitHub REST API.

It ends with a short summary of each stage and where its reports are, and the time of this run next to the
first one. A second `make demo` reuses the uv and DVC caches, the images and their layers, so it is faster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the demo borrows the tests' local services (an API recorder, mlflow server)

from tests.api_recorder import Recorder  # noqa: E402
from tests.services import Load, copy_example, free_port, mlflow_server, remove_deployment  # noqa: E402

from leanops import cli, gh  # noqa: E402
from leanops.fsutil import atomic_write_json  # noqa: E402
from leanops.harness import REGISTRY, ActRun, Harness, default_home, ensure_base_image  # noqa: E402

MODEL = "churn-classifier"  # model.name of the example: the image's and the deployment's name too
NAME = "example/churn"
CRON = "17 6 * * 1"
RATE = 100  # requests per second through the router during push 2
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
    # windows of 10 s: at the demo's 100 requests per second the canary's 10% still sees >= min-requests (50)
    text = config.read_text().replace("window: 20}", "window: 10}")
    text = text.replace('    publish: "8080"\n', f'    publish: "127.0.0.1:{port}"\n    base-image: {base_image}\n')
    config.write_text(text + f"\nbuild-push-image:\n  registry: {REGISTRY}/leanops-demo\n  base-image: {base_image}\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "churn model: first version")
    git(dest, "remote", "add", "origin", f"https://github.com/{NAME}.git")
    return dest


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


def main() -> int:
    start = time.monotonic()
    home = default_home()
    work = home / "demo"
    work.mkdir(parents=True, exist_ok=True)
    harness = Harness(kit=ROOT, home=home)
    with gh.group("Engine, runner image, registry and base image"):
        harness.prepare()
        base = ensure_base_image()
    remove_deployment(MODEL)  # each demo starts with nothing deployed; caches and images stay
    shutil.rmtree(work / "mlflow", ignore_errors=True)
    port = free_port()
    router = f"http://127.0.0.1:{port}"
    repo = make_repo(work / "churn", base, port)
    rows: list[list[str]] = []
    with mlflow_server(work / "mlflow") as tracking, Recorder(log=work / "github-api.jsonl") as api:
        secrets = {"GITHUB_TOKEN": "ghs_demo_token", "MLFLOW_TRACKING_URI": tracking}
        env = {"GITHUB_API_URL": api.url}
        pipeline = ".github/workflows/ml-pipeline.yml"

        out = run_act(harness, ActRun(repo=repo, event="push", workflow=pipeline, env=env, secrets=secrets,
                                      event_file=event(work / "push.json", {"ref": "refs/heads/main"})),
                      work / "push-1.log", "Push 1: the first model")
        rows += pipeline_rows("push 1", out)

        params = repo / "params.yaml"
        params.write_text(params.read_text().replace("C: 1.0 ", "C: 0.5 "))
        git(repo, "commit", "-qam", "churn model: C 0.5")
        with Load(f"{router}/predict", rate=RATE) as load:
            out = run_act(harness, ActRun(repo=repo, event="push", workflow=pipeline, env=env, secrets=secrets,
                                          event_file=event(work / "push.json", {"ref": "refs/heads/main"})),
                          work / "push-2.log", "Push 2: a new candidate, rolled out as a canary under traffic")
        rows += pipeline_rows("push 2", out)
        rows.append(["push 2: traffic through the router", "ok" if not load.failures else "failed",
                     f"{load.summary()}; {len(load.failures)} failed"])

        with gh.group("Shifted traffic: the current data for the drift check"):
            subprocess.run([sys.executable, "generate_data.py", "--shift", "1", "--seed", "8", "--out",
                            "data/current.csv"], cwd=repo, check=True, capture_output=True)
            config = repo / "leanops.yml"
            drift = "weekly-drift:\n  current: data/current.csv\n  ignore-columns: [customer_id]\n"
            config.write_text(config.read_text().replace("weekly-drift:\n", drift, 1))
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "current data from the prediction logs")
        out = run_act(harness, ActRun(repo=repo, event="schedule", workflow=".github/workflows/weekly-drift.yml",
                                      env=env, secrets=secrets,
                                      event_file=event(work / "schedule.json", {"schedule": CRON})),
                      work / "drift.log", "Scheduled weekly-drift on shifted data")
        issues = [i for i in api.fake.issues.values() if "leanops:drift" in json.dumps(i.get("labels", []))]
        rows.append(["weekly-drift", "drift detected" if issues else "no issue opened",
                     f"issue #{issues[0]['number']}: {issues[0]['title']}" if issues else
                     find(r"(drift[- ]share[=: ]+[0-9.]+)", out)])

    elapsed = time.monotonic() - start
    timings_file = work / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    timings.setdefault("first", elapsed)
    timings["last"] = elapsed
    atomic_write_json(timings_file, timings)
    reports = (f"act logs: {work}/push-1.log, push-2.log, drift.log; reports and artifacts (data-validate, "
               f"gate, canary, drift): {harness.store}/artifacts; MLflow store: {work}/mlflow; the GitHub API "
               f"requests: {work}/github-api.jsonl; the model serves on {router} until the next demo")
    gh.add_summary("## leanops demo\n\n" + gh.md_table(["stage", "result", "detail"], rows) + "\n" + reports + "\n")
    print(gh.md_table(["stage", "result", "detail"], rows))
    print(f"\n{reports}\n\ndemo took {elapsed:.0f}s (first run {timings['first']:.0f}s; targets: <= 15 min cold, "
          "<= 5 min warm)")
    failed = [r[0] for r in rows if r[1] in ("failed", "no issue opened")]
    if failed:
        print(f"demo: these stages did not do what they should: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
