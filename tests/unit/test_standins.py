"""The act stand-ins for upload-artifact and download-artifact behave as GitHub does where the kit relies on it
(issue 16): an artifact belongs to its workflow run; a second upload of a name in one run fails (409 Conflict)
unless overwrite is true; a download finds only its own run's artifacts. Two model folders colliding on a name
then fail under act as they would on GitHub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

STANDIN = Path(__file__).resolve().parents[1] / "act" / "standin.py"


def step(command: str, tmp_path: Path, run: str, **inputs: str) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "github_output"
    out.touch()
    env = {"LEANOPS_ACT_STORE": str(tmp_path / "store"), "LEANOPS_ACT_RUN": run, "GITHUB_OUTPUT": str(out),
           "PATH": "/usr/bin:/bin", **{f"STANDIN_{k.upper()}": v for k, v in inputs.items()}}
    return subprocess.run([sys.executable, str(STANDIN), command], env=env, capture_output=True, text=True,
                          check=False)


def test_an_artifact_belongs_to_its_run(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first folder")
    (tmp_path / "b.txt").write_text("second folder")
    assert step("upload-artifact", tmp_path, "run-1", name="report", path=str(tmp_path / "a.txt")).returncode == 0
    again = step("upload-artifact", tmp_path, "run-1", name="report", path=str(tmp_path / "b.txt"))
    assert again.returncode == 1 and "(409) Conflict" in again.stdout
    assert step("upload-artifact", tmp_path, "run-1", name="report", path=str(tmp_path / "b.txt"),
                overwrite="true").returncode == 0
    got = step("download-artifact", tmp_path, "run-1", name="report", path=str(tmp_path / "dl"))
    assert got.returncode == 0 and (tmp_path / "dl/b.txt").read_text() == "second folder"
    # the next run: the name is free again, and the last run's artifact is not found
    other = step("download-artifact", tmp_path, "run-2", name="report", path=str(tmp_path / "dl2"))
    assert other.returncode == 1 and "not found in this workflow run" in other.stdout
    assert step("upload-artifact", tmp_path, "run-2", name="report", path=str(tmp_path / "a.txt")).returncode == 0
