"""Under act: a throwaway caller repository runs `uses: leanops/leanops@main` (the root action)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from leanops import __version__
from leanops.tools.harness import ActRun, snapshot_kit

from ..conftest import ROOT, make_repo

pytestmark = pytest.mark.e2e

CALLER = """\
name: caller
on: [push]
permissions: {}
jobs:
  setup:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - id: leanops
        uses: leanops/leanops@main
        with:
          extras: data-validate
      - run: leanops --version
      - run: python -c "import great_expectations, pandas; print('gx', great_expectations.__version__)"
      - run: echo "python=$PY version=$VER"
        env:
          PY: ${{ steps.leanops.outputs.python }}
          VER: ${{ steps.leanops.outputs.version }}
"""


def test_caller_installs_leanops_with_an_extra(harness, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "caller", {".github/workflows/ci.yml": CALLER})
    log = tmp_path / "act.log"
    res = harness.run(ActRun(repo=repo), log=log)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert f"| leanops {__version__}" in out
    assert re.search(r"\| gx 1\.\d+", out), "the data-validate extra was not installed"
    assert f"python=/tmp/leanops/venv/bin/python version={__version__}" in out.replace("\\", "")
    # the uv cache went through the actions/cache stand-in, keyed on the lock, the extra and Python
    saved = [p.name for p in (harness.store / "cache").glob("leanops-uv-*data-validate.tar")]
    assert saved, "no uv cache was saved through actions/cache/save"


def test_corrupted_lock_fails_with_one_line(harness, tmp_path: Path) -> None:
    kit = snapshot_kit(ROOT, tmp_path / "kit")
    lock = kit / "uv.lock"
    lock.write_text(lock.read_text().replace("[[package]]", "[[package]\n", 1))
    broken = replace(harness, kit=kit, home=tmp_path / "home")
    broken.image = harness.image
    repo = make_repo(tmp_path / "caller", {".github/workflows/ci.yml": CALLER})
    res = broken.run(ActRun(repo=repo))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    errors = [ln for ln in out.splitlines() if "leanops setup: error:" in ln]
    assert len(errors) == 1, out[-4000:]
    assert "uv.lock:" in errors[0] and "TOML parse error at line" in errors[0] and "Traceback" not in out
    assert "|" not in errors[0].split("leanops setup: error:")[1]  # no source excerpt glued on
    assert "| leanops " + __version__ not in out  # the later step did not run
