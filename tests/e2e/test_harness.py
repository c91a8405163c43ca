"""The shared e2e infrastructure: the local registry answers, takes a push and serves it by digest."""

from __future__ import annotations

import io
import tarfile

import pytest

from leanops.tools.harness import REGISTRY, registry_ready

pytestmark = pytest.mark.e2e


def test_registry_push_and_pull_by_digest(harness) -> None:
    import docker

    assert registry_ready()
    client = docker.from_env()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"leanops registry probe\n"
        info = tarfile.TarInfo("probe.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repo = f"{REGISTRY}/leanops-tests/probe"
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag="t1")
    pushed = [line for line in client.images.push(repo, tag="t1", stream=True, decode=True)]
    assert not [p for p in pushed if "error" in p], pushed
    digest = next(p["aux"]["Digest"] for p in pushed if "aux" in p)
    client.images.remove(f"{repo}:t1", force=True)
    pulled = client.images.pull(f"{repo}@{digest}")
    assert f"{repo}@{digest}" in pulled.attrs["RepoDigests"]


def test_leanops_act_as_documented_hands_the_workflow_to_act(harness, tmp_path) -> None:
    """`leanops act EVENT --workflow W --event-file E -- ACT_FLAGS` typed as the docs show, in a real process."""
    import json
    import subprocess
    import sys

    from ..conftest import make_repo

    repo = make_repo(tmp_path / "caller", {".github/workflows/hello.yml": (
        "on: pull_request\npermissions: {}\njobs:\n  hello:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo hello\n"), ".github/workflows/other.yml": (
        "on: push\npermissions: {}\njobs:\n  other:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo o\n")})
    event = tmp_path / "pr.json"
    event.write_text(json.dumps({"pull_request": {"number": 1}}))
    res = subprocess.run([sys.executable, "-m", "leanops", "act", "pull_request", "--repo", str(repo), "--workflow",
                          ".github/workflows/hello.yml", "--event-file", str(event), "--", "--list"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "hello" in res.stdout and "other" not in res.stdout, res.stdout
