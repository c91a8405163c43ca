"""Under act: `act schedule` with an event file carrying the cron string runs a caller of the reusable
weekly-drift workflow against the local GitHub API recorder.

One run: the drift job finds the shifted data drifted, opens the leanops:drift issue and uploads the
Evidently report; the retrain job dispatches the retraining workflow; the stale-check job sees the last
successful run 10 days back and opens the leanops:drift-stale issue.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leanops.tools.harness import ActRun

from ..api_recorder import Recorder
from ..conftest import ROOT, make_repo

pytestmark = pytest.mark.e2e

CRON = "17 3 * * 1"
CALLER = """\
name: drift-e2e
on:
  schedule:
    - cron: "17 3 * * 1"
  workflow_dispatch:
permissions: {}
jobs:
  cron:
    runs-on: ubuntu-latest
    permissions: {}
    steps:
      - run: echo "cron=$CRON"
        env:
          CRON: ${{ github.event.schedule }}
  drift:
    uses: leanops/leanops/.github/workflows/weekly-drift.yml@main
    permissions:
      contents: read
      issues: write
      actions: write
    with:
      current: data/current.csv
      retrain-workflow: train.yml
  report:
    needs: drift
    runs-on: ubuntu-latest
    permissions: {}
    steps:
      - run: echo "detected=$DETECTED share=$SHARE issue=$ISSUE dispatched=$DISPATCHED"
        env:
          DETECTED: ${{ needs.drift.outputs.drift-detected }}
          SHARE: ${{ needs.drift.outputs.drift-share }}
          ISSUE: ${{ needs.drift.outputs.issue-number }}
          DISPATCHED: ${{ needs.drift.outputs.retrain-dispatched }}
"""
CONFIG = """\
version: 1
weekly-drift:
  reference: data/reference.csv
  threshold: 0.3
  min-rows: 200
  ignore-columns: [customer_id]
"""


def test_scheduled_run_opens_the_drift_issue_dispatches_and_checks_staleness(harness, tmp_path: Path) -> None:
    example = ROOT / "examples" / "churn"
    shifted = tmp_path / "current.csv"
    subprocess.run([sys.executable, str(example / "generate_data.py"), "--shift", "1", "--seed", "8",
                    "--out", str(shifted)], check=True, capture_output=True)
    repo = make_repo(tmp_path / "caller", {
        ".github/workflows/weekly-drift.yml": CALLER,
        "leanops.yml": CONFIG,
        "data/reference.csv": (example / "data" / "raw" / "churn.csv").read_text(),
        "data/current.csv": shifted.read_text(),
    })
    shutil.rmtree(harness.store / "artifacts" / "weekly-drift-report", ignore_errors=True)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"schedule": CRON}))
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Recorder() as rec:
        rec.fake.workflow_runs["weekly-drift.yml"] = [
            {"id": 1, "event": "schedule", "status": "completed", "conclusion": "success", "created_at": old,
             "updated_at": old}]
        res = harness.run(ActRun(repo=repo, event="schedule", event_file=event, env={"GITHUB_API_URL": rec.url},
                                 secrets={"GITHUB_TOKEN": "ghs_e2e_token"}), log=tmp_path / "act.log")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert f"cron={CRON}" in out

    drift_issues = [i for i in rec.fake.issues.values() if {"name": "leanops:drift"} in i["labels"]]
    assert len(drift_issues) == 1, out[-6000:]
    assert drift_issues[0]["title"].startswith("Data drift: ") and "monthly_charges" in drift_issues[0]["body"]
    stale = [i for i in rec.fake.issues.values() if {"name": "leanops:drift-stale"} in i["labels"]]
    assert len(stale) == 1 and "10 days ago" in stale[0]["body"]
    assert [d["workflow"] for d in rec.fake.dispatches] == ["train.yml"]
    assert {r.headers["Authorization"] for r in rec.fake.requests if r.method == "POST"} == {"Bearer ghs_e2e_token"}
    number = drift_issues[0]["number"]
    assert f"issue={number} dispatched=true" in out and "detected=true share=0." in out
    report = harness.store / "artifacts" / "weekly-drift-report"
    assert report.is_dir() and any(report.rglob("report.html")) and any(report.rglob("result.json"))
