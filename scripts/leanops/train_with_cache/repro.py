"""``dvc repro`` with its log streamed, which stages ran, and the DVC run-cache transfers (trusted refs only).
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import gh
from ..errors import BadInput, CheckFailed, InfraError
from .settings import Settings


@dataclass
class StageResult:
    name: str
    state: str  # ran, cached (restored from the run-cache), unchanged, failed
    seconds: float = 0.0


STAGE_LINE = re.compile(
    r"^(?:Running stage '(?P<run>[^']+)'|Stage '(?P<cached>[^']+)' is cached|Stage '(?P<same>[^']+)' didn't change)"
)


PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment")
# credentials the kit may hold that the adopter's stages never get (tracking server, GitHub, OIDC)
STAGE_SECRETS = re.compile(r"^(MLFLOW_TRACKING_(USERNAME|PASSWORD|TOKEN|CLIENT_CERT_PATH|SERVER_CERT_PATH)"
                           r"|MLFLOW_READ_\w+"
                           r"|GITHUB_TOKEN|GH_TOKEN|ACTIONS_RUNTIME_TOKEN|ACTIONS_ID_TOKEN_REQUEST_\w+"
                           r"|LEANOPS_WEBHOOK_URL|LEANOPS_\w*(PASSWORD|TOKEN|SECRET)\w*)$")
# the object store's credentials: the kit pulls the run-cache before the stages run; on a pull request the
# adopter's stages (unreviewed code) get none of them, not even the read-only ones (docs/infrastructure.md)
STORAGE_SECRETS = re.compile(r"^(AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|SECURITY_TOKEN"
                             r"|WEB_IDENTITY_TOKEN_FILE|ROLE_ARN|PROFILE)|AWS_READ_\w+"
                             r"|GOOGLE_APPLICATION_CREDENTIALS|GOOGLE_OAUTH_ACCESS_TOKEN"
                             r"|AZURE_STORAGE_(KEY|CONNECTION_STRING|SAS_TOKEN)|AZURE_CLIENT_SECRET)$")
FAILED_LINE = re.compile(r"failed to reproduce '(?P<stage>[^']+)'")


def _dvc(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def reproduce(s: Settings) -> list[StageResult]:
    """``dvc repro`` with its log streamed; which stages ran, came from the run-cache or stayed."""
    cmd = _dvc(["repro", *([s.target] if s.target else [])])
    results: list[StageResult] = []
    tail: collections.deque[str] = collections.deque(maxlen=25)
    started = time.monotonic()
    env = dict(stage_env(trusted_ref()[0]), PYTHONUNBUFFERED="1")
    if s.model_run:  # model.run: the run the stage logs into, in a scratch store (never the server's address)
        from .registry import stage_run_env

        env.update(stage_run_env(s))
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in env.get("PATH", "").split(os.pathsep):  # the stages' `python` is the one with the libs
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    with gh.group("dvc repro" + (f" {s.target}" if s.target else "")):
        proc = subprocess.Popen(cmd, cwd=s.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", file=sys.stdout if gh.on_runner() else sys.stderr, flush=True)
            m = STAGE_LINE.match(line.strip())
            if m:
                now = time.monotonic()
                if results:
                    results[-1].seconds = now - started
                started = now
                tail.clear()
                name = m["run"] or m["cached"] or m["same"]
                results.append(StageResult(name, "ran" if m["run"] else "cached" if m["cached"] else "unchanged"))
            elif line.strip():
                tail.append(line.rstrip())
        code = proc.wait()
    if results:
        results[-1].seconds = time.monotonic() - started
    if code != 0:
        text = "\n".join(tail)
        failed = FAILED_LINE.search(text)
        stage = failed["stage"] if failed else (results[-1].name if results else "?")
        for r in results:
            if r.name == stage:
                r.state = "failed"
        if "dvc.yaml" in text and not results:
            last = next((ln for ln in reversed(tail) if "ERROR" in ln), tail[-1] if tail else "")
            raise BadInput(f"dvc repro: {last.removeprefix('ERROR: ')}", file="dvc.yaml")
        gh.add_summary(f"## train-with-cache: stage `{stage}` failed\n\n" + _stage_table(results)
                       + f"\n<details><summary>last lines of its output</summary>\n\n```text\n{text}\n```\n"
                       "</details>\n")
        last = next((ln for ln in reversed(tail) if ln.startswith("ERROR")), tail[-1] if tail else "no output")
        raise CheckFailed(f"stage {stage} failed: {last.removeprefix('ERROR: ')}")
    return results


def _stage_table(results: list[StageResult]) -> str:
    return gh.md_table(["stage", "result", "seconds"], [[r.name, r.state, f"{r.seconds:.1f}"] for r in results])


def trusted_ref() -> tuple[bool, str]:
    """Whether this run may write to shared storage (the tracking server, the DVC remote, aliases).

    Never a pull request, from a fork or from a branch of this repository alike: its code is not reviewed, and
    whatever it writes, the default branch would later trust. ml-pipeline decides the rest (a tag must be on the
    default branch: ``leanops.trusted_ref``) and hands write credentials only to jobs in its environment.
    """
    event = os.environ.get("GITHUB_EVENT_NAME", "")
    if not event:
        return True, "not on a runner"
    if event in PULL_REQUEST_EVENTS:
        return False, f"{event} event: a pull request writes nowhere"
    if event in ("push", "workflow_dispatch", "schedule", "repository_dispatch", "release", "merge_group"):
        return True, f"{event} event"
    return False, f"{event} event"


def stage_env(trusted: bool) -> dict[str, str]:
    """The environment of the adopter's DVC stages: the runner's, without any credential of the kit's.

    The stages are the adopter's code and its dependencies; they never need the tracking server's or GitHub's
    credentials. On a pull request the tracking server's and the registry's addresses go too.
    """
    env = {k: v for k, v in os.environ.items() if not STAGE_SECRETS.match(k)}
    if not trusted:  # nor where the servers are, nor the object store's credentials
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            env.pop(name, None)
        env = {k: v for k, v in env.items() if not STORAGE_SECRETS.match(k)}
    return env

def dvc_transfer(s: Settings, verb: str) -> None:
    res = subprocess.run(_dvc([verb, "--run-cache"]), cwd=s.root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        if verb == "pull":
            gh.warning(f"dvc pull --run-cache: {last} (continuing; stages without cached results run)")
            return
        raise InfraError(f"dvc push --run-cache failed: {last}")
    gh.step(f"dvc {verb} --run-cache: done")
