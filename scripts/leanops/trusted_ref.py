"""Is this run on a trusted ref? ml-pipeline's plan job asks before anything trains with a credential or deploys.

Trusted: a push (or dispatch, schedule) on the default branch, or a tag whose commit is on the default branch's
history. A tag on any other commit is refused (exit 1, one line): a tag can be pushed by anyone with write
access onto a commit nobody reviewed, and the environment's tag rule (``v*``) cannot tell. Pull requests and
other branches are not trusted (they train into the embedded store, with no credential).

Run as ``python -m leanops.trusted_ref`` (the venv's Python) with the runner's environment: GITHUB_EVENT_NAME,
GITHUB_REF, GITHUB_SHA, GITHUB_EVENT_PATH (the payload: ``repository.default_branch``, ``after``), and a
checkout with the default branch's history (``fetch-depth: 0``) in the working directory or
LEANOPS_WORKING_DIRECTORY. Output ``trusted`` (true|false), ``reason``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import gh
from .errors import BadInput, CheckFailed, InfraError, LeanopsError

UNTRUSTED_EVENTS = {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment",
                    "issue_comment", "workflow_run"}


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    reason: str


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)  # noqa: S607


def _commit(repo: Path, rev: str) -> str | None:
    res = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else None


def default_branch_refs(repo: Path, branch: str) -> list[str]:
    """The default branch as this checkout knows it: the remote's copy first, then a local branch."""
    return [ref for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}")
            if _commit(repo, ref) is not None]


def decide(event: str, ref: str, sha: str, payload: dict, repo: Path) -> Verdict:
    """The verdict for one run; raises CheckFailed for a tag whose commit is not on the default branch."""
    branch = str(((payload.get("repository") or {}).get("default_branch")) or "")
    if event in UNTRUSTED_EVENTS:
        return Verdict(False, f"{event}: not a trusted ref")
    if not branch:
        raise BadInput("GITHUB_EVENT_PATH: the event payload names no repository.default_branch")
    if ref == f"refs/heads/{branch}":
        return Verdict(True, f"the default branch {branch}")
    if not ref.startswith("refs/tags/"):
        return Verdict(False, f"{ref or 'no ref'}: not the default branch {branch} nor a tag")
    tag = ref.removeprefix("refs/tags/")
    commit = _commit(repo, sha) if sha else None
    if commit is None:
        raise InfraError(f"tag {tag}: commit {sha[:12] or '(none)'} is not in the checkout at {repo}; expected the "
                         "tagged commit checked out (actions/checkout with fetch-depth: 0)")
    after = str(payload.get("after") or "")
    if after and set(after) != {"0"} and _commit(repo, after) not in (None, commit):
        raise CheckFailed(f"tag {tag}: the event's commit {after[:12]} is not GITHUB_SHA {sha[:12]}; "
                          "refusing to deploy")
    refs = default_branch_refs(repo, branch)
    if not refs:
        raise InfraError(f"tag {tag}: the checkout has no history of the default branch {branch}; expected "
                         "actions/checkout with fetch-depth: 0")
    for branch_ref in refs:
        if _git(repo, "merge-base", "--is-ancestor", commit, branch_ref).returncode == 0:
            return Verdict(True, f"tag {tag} on the default branch {branch}")
    raise CheckFailed(f"tag {tag}: commit {commit[:12]} is not on the default branch {branch}; a tag deploys only a "
                      f"commit merged into {branch}")


def main() -> int:
    try:
        event_path = os.environ.get("GITHUB_EVENT_PATH", "")
        try:
            payload = json.loads(Path(event_path).read_text(encoding="utf-8")) if event_path else {}
        except (OSError, ValueError) as exc:
            raise BadInput(f"GITHUB_EVENT_PATH: expected the event's JSON payload ({exc})") from None
        repo = Path(os.environ.get("LEANOPS_WORKING_DIRECTORY") or ".")
        verdict = decide(os.environ.get("GITHUB_EVENT_NAME", ""), os.environ.get("GITHUB_REF", ""),
                         os.environ.get("GITHUB_SHA", ""), payload if isinstance(payload, dict) else {}, repo)
    except LeanopsError as exc:
        if gh.on_runner():
            gh.error(exc.message, title="leanops trusted-ref")
        print(f"leanops trusted-ref: error: {exc.one_line()}", file=sys.stderr)
        return int(exc.code)
    gh.set_outputs({"trusted": "true" if verdict.trusted else "false", "reason": verdict.reason})
    print(f"leanops trusted-ref: {'trusted' if verdict.trusted else 'not trusted'}: {verdict.reason}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
