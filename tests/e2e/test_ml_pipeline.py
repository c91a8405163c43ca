"""Under act: a throwaway repository made by `leanops init` from the example dataset passes ml-pipeline.yml on a
pull request: plan, validate, train (the starter stage), gate (one sticky comment on the API recorder); the
deployment jobs stay off on a pull request.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from leanops import cli
from leanops.harness import ActRun

from ..api_recorder import Recorder
from ..conftest import ROOT, make_repo

pytestmark = pytest.mark.e2e

NUMBER = 7
CHURN = ROOT / "examples/churn/data/raw/churn.csv"


def scaffold(path: Path) -> dict[str, str]:
    """The files `leanops init --data` writes, as text (make_repo commits them)."""
    assert cli.main(["init", str(path), "--data", str(CHURN), "--model-name", "churn"]) == 0
    return {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def pull_request_event(path: Path, full_name: str) -> Path:
    repo = {"full_name": full_name, "default_branch": "main"}
    path.write_text(json.dumps({
        "action": "opened", "number": NUMBER, "repository": repo,
        "pull_request": {"number": NUMBER, "head": {"ref": "first-model", "repo": repo},
                         "base": {"ref": "main", "repo": repo}},
    }))
    return path


def test_a_repository_made_by_init_passes_ml_pipeline_on_a_pull_request(harness, tmp_path: Path) -> None:
    files = scaffold(tmp_path / "scaffold")
    # a repository name of its own: the DVC cache key starts with a digest of it, so no earlier run can hit
    name = f"example/churn-{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")

    with Recorder() as rec:
        rec.fake.add_pull_request(NUMBER)
        run = ActRun(repo=repo, event="pull_request", event_file=pull_request_event(tmp_path / "event.json", name),
                     workflow=".github/workflows/ml-pipeline.yml", env={"GITHUB_API_URL": rec.url},
                     secrets={"GITHUB_TOKEN": "ghs_e2e_token"})
        res = harness.run(run, log=tmp_path / "act.log")
        out = res.stdout + res.stderr
        comments = rec.fake.comments_on(NUMBER)

    assert res.returncode == 0, out[-8000:]
    assert "ml-pipeline: tracking=embedded deploy=false" in out
    # validate: the starter suite profiled by init passes on the data it came from
    assert "expectations/churn.json" in out and "expectation(s) of" not in out
    # train: the starter stage ran under DVC, registered version 1 in the embedded store
    assert "Running stage 'train'" in out, out[-8000:]
    # gate: the starter gates of leanops.yml, against no champion yet, one comment on the pull request
    assert "gate-metrics: 2 gates passed" in out
    assert len(comments) == 1 and "## gate-metrics: ✅ passed" in comments[0]["body"]
    assert re.search(r"ml-pipeline/plan\s*\] 🏁  Job succeeded", out)
    assert re.search(r"gate-metrics/gate\s*\] 🏁  Job succeeded", out)
    # no deployment from a pull request
    assert not re.search(r"ml-pipeline/(recorded image|promote|lineage)\s*\]", out)
    assert "build-push-image/image" not in out and "leanops lineage" not in out
