"""Under act: a caller's pull request runs the reusable gate-metrics workflow twice against the API recorder.

Run 1 (a candidate as good as the champion) passes and creates the one sticky comment; run 2 (a regressing
candidate, same pull request) fails the job with the table in the job summary and updates that same comment.
The champion comes from a file, so no tracking server is needed inside act.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from leanops.tools.harness import ActRun

from ..api_recorder import Recorder
from ..conftest import make_repo

pytestmark = pytest.mark.e2e

NUMBER = 42
CALLER = """\
name: gate-e2e
on: [pull_request]
permissions: {}
jobs:
  gate:
    uses: leanops/leanops/.github/workflows/gate-metrics.yml@main
    permissions:
      contents: read
      pull-requests: write
    with:
      metrics-file: metrics/eval.json
"""
CONFIG = """\
version: 1
model:
  name: churn
gate-metrics:
  champion: file
  champion-file: champion/eval.json
  gates:
    roc_auc:
      direction: higher
      min: 0.7
      max-regression: 0.02
    f1:
      min: 0.5
      max-regression: 0.03
"""
CHAMPION = {"roc_auc": 0.82, "f1": 0.61}


def event(path: Path) -> Path:
    repo = {"full_name": "example/caller", "default_branch": "main"}
    path.write_text(json.dumps({
        "action": "synchronize", "number": NUMBER, "repository": repo,
        "pull_request": {"number": NUMBER, "head": {"ref": "better-model", "repo": repo},
                         "base": {"ref": "main", "repo": repo}},
    }))
    return path


def commit(repo: Path, message: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run(["git", "commit", "-qam", message], cwd=repo, check=True, env=env)


def summary_lines(out: str) -> list[str]:
    """What act printed of the job summary: "[job]   ⚙  Summary - <first line>", then the following lines as they
    are, up to the next "[job] ..." log line."""
    lines: list[str] = []
    inside = False
    for line in out.splitlines():
        if "Summary - " in line:
            inside = True
            lines.append(line.split("Summary - ", 1)[1])
        elif line.startswith("["):
            inside = False
        elif inside:
            lines.append(line)
    return lines


def test_two_runs_on_one_pull_request_leave_one_comment_and_a_regression_fails(harness, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "caller", {
        ".github/workflows/gate.yml": CALLER, "leanops.yml": CONFIG,
        "metrics/eval.json": json.dumps({"roc_auc": 0.83, "f1": 0.62}),
        "champion/eval.json": json.dumps(CHAMPION),
    })
    with Recorder() as rec:
        rec.fake.add_pull_request(NUMBER)
        run = ActRun(repo=repo, event="pull_request", event_file=event(tmp_path / "event.json"),
                     env={"GITHUB_API_URL": rec.url}, secrets={"GITHUB_TOKEN": "ghs_e2e_token"})

        first = harness.run(run, log=tmp_path / "act-1.log")
        out1 = first.stdout + first.stderr
        assert first.returncode == 0, out1[-6000:]
        assert "gate-metrics: 2 gates passed" in out1
        comments = rec.fake.comments_on(NUMBER)
        assert len(comments) == 1 and comments[0]["edits"] == 0, out1[-4000:]
        assert "## gate-metrics: ✅ passed" in comments[0]["body"]

        (repo / "metrics/eval.json").write_text(json.dumps({"roc_auc": 0.74, "f1": 0.62}))
        commit(repo, "a worse model")
        second = harness.run(run, log=tmp_path / "act-2.log")
        out2 = second.stdout + second.stderr

    assert second.returncode != 0, out2[-6000:]
    lines = summary_lines(out2)
    assert "## gate-metrics: ❌ failed (1 of 2 gates)" in lines, out2[-6000:]
    assert "| metric | candidate | champion | delta | threshold | verdict |" in lines
    assert any(line.startswith("| roc_auc ↑ | 0.74 | 0.82 | -0.08 |") and "❌ fail: regressed by 0.08" in line
               for line in lines), lines
    assert "leanops gate-metrics: error: 1 of 2 gates failed: roc_auc" in out2

    comments = rec.fake.comments_on(NUMBER)
    assert len(comments) == 1 and comments[0]["edits"] == 1
    assert "❌ failed (1 of 2 gates)" in comments[0]["body"]
    writes = [r for r in rec.fake.requests if r.method in ("POST", "PATCH")]
    assert [r.method for r in writes] == ["POST", "PATCH"]
    assert {r.headers["Authorization"] for r in writes} == {"Bearer ghs_e2e_token"}
    assert (harness.store / "artifacts" / "leanops-gate-metrics").is_dir()
