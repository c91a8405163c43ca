"""leanops.trusted_ref, ml-pipeline's plan step: a tag deploys only a commit on the default branch (a real git
repository: a clone whose origin/main knows the reviewed history, and a tag on a commit outside it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """origin: main (two commits) and a branch `unreviewed` (one more commit); tags on both. The clone is the
    checkout of the tag push (fetch-depth: 0: origin/main and every tag)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    (origin / "f").write_text("1")
    git(origin, "add", "f")
    git(origin, "commit", "-q", "-m", "one")
    (origin / "f").write_text("2")
    git(origin, "commit", "-q", "-am", "two")
    reviewed = git(origin, "rev-parse", "HEAD")
    git(origin, "tag", "-a", "v1.0.0", "-m", "v1.0.0")
    git(origin, "checkout", "-q", "-b", "unreviewed")
    (origin / "f").write_text("evil")
    git(origin, "commit", "-q", "-am", "unreviewed")
    unreviewed = git(origin, "rev-parse", "HEAD")
    git(origin, "tag", "v1.0.1")
    git(origin, "checkout", "-q", "main")
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(origin), str(checkout)], check=True)
    return checkout, {"reviewed": reviewed, "unreviewed": unreviewed}


def run(repo: Path, tmp_path: Path, event: str, ref: str, sha: str, payload: dict | None = None
        ) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps(payload if payload is not None else
                             {"after": sha, "ref": ref, "repository": {"default_branch": "main"}}))
    out = tmp_path / "out"
    out.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(GITHUB_EVENT_NAME=event, GITHUB_REF=ref, GITHUB_SHA=sha, GITHUB_EVENT_PATH=str(ev),
               GITHUB_OUTPUT=str(out), LEANOPS_WORKING_DIRECTORY=str(repo))
    res = subprocess.run([sys.executable, "-m", "leanops.trusted_ref"], capture_output=True, text=True, env=env)
    return res, dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)


def test_a_tag_on_the_default_branch_is_trusted(clone, tmp_path: Path) -> None:
    repo, sha = clone
    res, out = run(repo, tmp_path, "push", "refs/tags/v1.0.0", sha["reviewed"])
    assert res.returncode == 0, res.stderr
    assert out["trusted"] == "true" and "tag v1.0.0 on the default branch main" in res.stdout


def test_a_tag_on_an_unreviewed_commit_is_refused_in_one_line(clone, tmp_path: Path) -> None:
    repo, sha = clone
    res, out = run(repo, tmp_path, "push", "refs/tags/v1.0.1", sha["unreviewed"])
    assert res.returncode == 1 and "trusted" not in out
    assert res.stderr.strip() == (f"leanops trusted-ref: error: tag v1.0.1: commit {sha['unreviewed'][:12]} is not "
                                  "on the default branch main; a tag deploys only a commit merged into main")


def test_the_payload_must_agree_with_github_sha(clone, tmp_path: Path) -> None:
    repo, sha = clone
    payload = {"after": sha["unreviewed"], "repository": {"default_branch": "main"}}
    res, _ = run(repo, tmp_path, "push", "refs/tags/v1.0.0", sha["reviewed"], payload)
    assert res.returncode == 1 and "is not GITHUB_SHA" in res.stderr


def test_branches_and_pull_requests(clone, tmp_path: Path) -> None:
    repo, sha = clone
    res, out = run(repo, tmp_path, "push", "refs/heads/main", sha["reviewed"])
    assert res.returncode == 0 and out["trusted"] == "true"
    res, out = run(repo, tmp_path, "push", "refs/heads/unreviewed", sha["unreviewed"])
    assert res.returncode == 0 and out["trusted"] == "false"
    res, out = run(repo, tmp_path, "pull_request", "refs/heads/main", sha["reviewed"])  # a forged ref: still a PR
    assert res.returncode == 0 and out["trusted"] == "false"


def test_a_shallow_checkout_without_the_default_branch_is_an_infra_error(tmp_path: Path, clone) -> None:
    repo, sha = clone
    git(repo, "update-ref", "-d", "refs/remotes/origin/main")
    git(repo, "checkout", "-q", "--detach", sha["reviewed"])
    git(repo, "branch", "-D", "main")
    res, _ = run(repo, tmp_path, "push", "refs/tags/v1.0.0", sha["reviewed"])
    assert res.returncode == 3 and "fetch-depth: 0" in res.stderr
