"""The gate's report is posted by a job that loads no model (issue 13, path 5).

The gate job unpickles the candidate (its latency, the champion re-scored), and on a pull request the pull
request's own code produced that model: the gate job holds no write token. The sticky comment comes from
``leanops gate-metrics comment`` in a job of its own, which holds pull-requests: write and runs nothing of the
pull request's: no checkout, no model, only the gate's report file.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from leanops import cli

ROOT = Path(__file__).resolve().parents[2]
MODEL_LOADERS = ("leanops/leanops/actions/gate-metrics@", "leanops/leanops/actions/train-with-cache@")


def _jobs() -> dict[str, dict]:
    return yaml.safe_load((ROOT / ".github/workflows/gate-metrics.yml").read_text())["jobs"]


def _writes(job: dict) -> set[str]:
    perms = job.get("permissions") or {}
    return {k for k, v in perms.items() if v == "write"} if isinstance(perms, dict) else {"all"}


def test_the_job_that_loads_the_candidate_holds_no_write_token() -> None:
    jobs = _jobs()
    gate = jobs["gate"]
    assert any(str(s.get("uses", "")).startswith(MODEL_LOADERS) for s in gate["steps"])
    assert _writes(gate) == set(), gate["permissions"]
    assert next(s for s in gate["steps"] if s.get("id") == "gate")["with"]["comment"] == "false"


def test_the_comment_job_runs_nothing_of_the_pull_request() -> None:
    job = _jobs()["comment"]
    assert _writes(job) == {"pull-requests"}
    uses = [str(s.get("uses", "")) for s in job["steps"]]
    assert not [u for u in uses if u.startswith(("actions/checkout@", *MODEL_LOADERS))], uses
    assert [s["run"] for s in job["steps"] if "run" in s] == ["leanops gate-metrics comment"]


def test_comment_posts_the_report_file_once_and_updates_it(tmp_path: Path, monkeypatch, api_recorder,
                                                           runner_files) -> None:
    number = api_recorder.fake.add_pull_request(7)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": number, "head": {"repo": {"full_name": "example/caller"}},
                                                  "base": {"repo": {"full_name": "example/caller"}}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    report = tmp_path / "report.md"
    for body in ("## gate-metrics: passed\n", "## gate-metrics: failed\n"):
        report.write_text(body)
        assert cli.main(["gate-metrics", "comment", "--report-file", str(report)]) == 0
    comments = api_recorder.fake.comments_on(number)
    assert len(comments) == 1 and "failed" in comments[0]["body"], comments
    assert cli.main(["gate-metrics", "comment", "--report-file", str(tmp_path / "missing.md")]) == 2
