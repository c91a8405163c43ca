#!/usr/bin/env python3
"""`make demo`: the lifecycle on examples/churn under act with the real engine (what exists so far).

Copies the example into a throwaway repository with a caller workflow, runs it under act through the
local harness (kit mapped to this checkout), and ends with a short summary of each stage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from leanops import gh
from leanops.harness import ActRun, Harness, default_home
from leanops.pins import PINS

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = f"actions/checkout@{PINS['actions/checkout'][0]} # {PINS['actions/checkout'][1]}"

WORKFLOW = f"""\
name: demo
on: [push]
permissions: {{}}
env:
  DO_NOT_TRACK: "1"
  DVC_NO_ANALYTICS: "1"
jobs:
  lifecycle:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false
      - id: leanops
        uses: leanops/leanops@main
        with:
          extras: train-with-cache
      - name: config
        run: leanops config > /dev/null && echo "DEMO-STAGE config ok"
      - id: train
        uses: leanops/leanops/actions/train-with-cache@main
      - name: train-with-cache
        run: echo "DEMO-STAGE train-with-cache ok skipped=$SKIPPED $MODEL_URI roc_auc=$AUC"
        env:
          SKIPPED: ${{{{ steps.train.outputs.skipped }}}}
          MODEL_URI: ${{{{ steps.train.outputs.model-uri }}}}
          AUC: ${{{{ fromJSON(steps.train.outputs.metrics).roc_auc }}}}
"""


def make_repo(dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    src = ROOT / "examples" / "churn"
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "examples/churn"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        rel = Path(name).relative_to("examples/churn")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest / rel)
    (dest / ".github/workflows").mkdir(parents=True, exist_ok=True)
    (dest / ".github/workflows/demo.yml").write_text(WORKFLOW)
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="demo",
        GIT_AUTHOR_EMAIL="demo@example.com",
        GIT_COMMITTER_NAME="demo",
        GIT_COMMITTER_EMAIL="demo@example.com",
    )
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-qm", "demo"],
        ["remote", "add", "origin", "https://github.com/example/churn.git"],
    ):
        subprocess.run(["git", *args], cwd=dest, check=True, env=env)
    return dest


def main() -> int:
    start = time.monotonic()
    home = default_home()
    harness = Harness(kit=ROOT, home=home)
    with gh.group("Engine and runner image"):
        harness.prepare()
    repo = make_repo(home / "demo" / "churn")
    log = home / "demo" / "act.log"
    with gh.group("Lifecycle under act"):
        res = harness.run(ActRun(repo=repo), log=log)
    stages = [
        line.split("DEMO-STAGE", 1)[1].strip()
        for line in res.stdout.splitlines()
        if "DEMO-STAGE" in line and "echo" not in line
    ]
    rows = [
        ["setup (root action)", "ok" if res.returncode == 0 or stages else "failed", "leanops CLI in a private venv"]
    ]
    rows += [[s.split()[0], s.split()[1], " ".join(s.split()[2:])[:90]] for s in stages]
    gh.add_summary("## leanops demo\n\n" + gh.md_table(["stage", "result", "detail"], rows))
    print(
        f"\nact log: {log}\ncaches and artifacts: {harness.store}\n"
        f"demo took {time.monotonic() - start:.0f}s; act exit code {res.returncode}"
    )
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
