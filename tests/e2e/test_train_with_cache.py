"""Under act: the churn example calls the reusable train-with-cache workflow twice.

Run 1 trains and registers version 1 in the embedded store; run 2 (a fresh job, a fresh workspace) restores
the DVC cache and the store through the actions/cache stand-in and reports skipped=true.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from leanops.tools.harness import ActRun

from ..conftest import ROOT, make_repo

pytestmark = pytest.mark.e2e

CALLER = """\
name: twc-e2e
on: [push]
permissions: {}
jobs:
  train:
    uses: leanops/leanops/.github/workflows/train-with-cache.yml@main
    permissions:
      contents: read
  report:
    needs: train
    runs-on: ubuntu-latest
    permissions: {}
    steps:
      - run: echo "TWC skipped=$SKIPPED run=$RUN_ID version=$VERSION uri=$MODEL_URI key=$KEY auc=$AUC"
        env:
          SKIPPED: ${{ needs.train.outputs.skipped }}
          RUN_ID: ${{ needs.train.outputs.run-id }}
          VERSION: ${{ needs.train.outputs.model-version }}
          MODEL_URI: ${{ needs.train.outputs.model-uri }}
          KEY: ${{ needs.train.outputs.cache-key }}
          AUC: ${{ fromJSON(needs.train.outputs.metrics).roc_auc }}
"""

REPORT = re.compile(r"TWC skipped=(\S*) run=(\S*) version=(\S*) uri=(\S*) key=(\S*) auc=(\S*)")


def churn_files() -> dict[str, str]:
    names = subprocess.run(["git", "-C", str(ROOT), "ls-files", "examples/churn"], capture_output=True, text=True,
                           check=True).stdout.split()
    files = {str(Path(n).relative_to("examples/churn")): (ROOT / n).read_text() for n in names}
    files[".github/workflows/train.yml"] = CALLER
    return files


def report(out: str) -> tuple[str, ...]:
    found = [m.groups() for m in REPORT.finditer(out) if "$SKIPPED" not in m.group(0)]
    assert found, out[-5000:]
    return found[-1]


def test_second_run_restores_the_cache_and_skips(harness, tmp_path: Path) -> None:
    # a repository name of its own: cache keys start with a digest of it, so no earlier run can hit
    origin = f"https://github.com/example/churn-{uuid.uuid4().hex[:8]}.git"
    repo = make_repo(tmp_path / "churn", churn_files(), origin=origin)

    first = harness.run(ActRun(repo=repo), log=tmp_path / "act-1.log")
    out1 = first.stdout + first.stderr
    assert first.returncode == 0, out1[-6000:]
    skipped, run_id, version, uri, key, auc = report(out1)
    assert (skipped, version, uri) == ("false", "1", "models:/churn-classifier/1")
    assert float(auc) == pytest.approx(0.822012)
    assert "Running stage 'train'" in out1
    assert (harness.store / "cache" / f"{key}.tar").is_file(), "the DVC cache was not saved"
    assert list((harness.store / "artifacts" / "leanops-mlflow").rglob("mlflow.db")), "the store was not uploaded"

    second = harness.run(ActRun(repo=repo), log=tmp_path / "act-2.log")
    out2 = second.stdout + second.stderr
    assert second.returncode == 0, out2[-6000:]
    assert f"cache restored from {key}.tar (exact match)" in out2
    assert report(out2) == ("true", run_id, "1", uri, key, auc)
    assert "Running stage" not in out2  # nothing trained: every stage came from the cache
