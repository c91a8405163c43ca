"""scripts/bootstrap.py, the root action's install path, in its fast paths (no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "out"
    out.write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "LEANOPS_"))}
    base.update({"GITHUB_OUTPUT": str(out), "RUNNER_TEMP": str(tmp_path), "LEANOPS_PYTHON": sys.executable})
    base.update(env)
    return subprocess.run([sys.executable, str(ROOT / "scripts/bootstrap.py"), *args], capture_output=True,
                          text=True, env=base)


def outputs(tmp_path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())


def test_plan_keys_on_lock_extras_and_python(tmp_path: Path) -> None:
    res = run(["plan"], tmp_path, LEANOPS_EXTRAS="gate-metrics, data-validate")
    assert res.returncode == 0, res.stderr
    out = outputs(tmp_path)
    py = "{}.{}".format(*sys.version_info[:2])
    assert out["cache-key"].startswith(out["restore-prefix"]) and f"-py{py}-" in out["restore-prefix"]
    assert out["cache-key"].endswith("-data-validate+gate-metrics")
    assert out["cache-dir"] == str(tmp_path / "leanops" / "cache")
    run(["plan"], tmp_path, LEANOPS_EXTRAS="")
    assert outputs(tmp_path)["cache-key"].endswith("-core")


def test_plan_key_changes_with_the_lock(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    (kit / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "scripts/bootstrap.py", "scripts/uv-requirements.txt"):
        shutil.copy(ROOT / name, kit / name)

    def key() -> str:
        out = tmp_path / "o"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        env.update(GITHUB_OUTPUT=str(out), RUNNER_TEMP=str(tmp_path), LEANOPS_PYTHON=sys.executable)
        out.write_text("")
        subprocess.run([sys.executable, str(kit / "scripts/bootstrap.py"), "plan"], check=True, env=env,
                       capture_output=True)
        return dict(line.split("=", 1) for line in out.read_text().splitlines())["cache-key"]

    before = key()
    with open(kit / "uv.lock", "a") as fh:
        fh.write("\n# changed\n")
    assert key() != before


def test_unknown_extra_is_exit_2_one_line(tmp_path: Path) -> None:
    res = run(["plan"], tmp_path, LEANOPS_EXTRAS="data-validate,telepathy")
    assert res.returncode == 2
    assert res.stderr.strip() == ("leanops setup: error: extras: unknown telepathy; expected any of "
                                  "data-validate, train-with-cache, gate-metrics, build-push-image, "
                                  "canary-deploy, weekly-drift, serve-xgboost, serve-lightgbm, act, serve or all")


def test_missing_python_is_exit_2(tmp_path: Path) -> None:
    res = run(["install"], tmp_path, LEANOPS_PYTHON="python2.4", GITHUB_ACTIONS="true")
    assert res.returncode == 2
    assert "::error title=leanops setup::python: 'python2.4' not found on PATH" in res.stdout


def test_build_key_is_the_content_of_pyproject_named_by_cache_keys() -> None:
    """uv keys its build of leanops on LEANOPS_BUILD_KEY, which bootstrap derives from pyproject's content."""
    import hashlib
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("bootstrap_under_test", root / "scripts" / "bootstrap.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    content = (root / "pyproject.toml").read_bytes()
    assert module.build_key() == hashlib.sha256(content).hexdigest()[:16]
    assert 'cache-keys = [{ env = "LEANOPS_BUILD_KEY" }]' in content.decode()


def _fake_kit(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the bootstrap whose pinned uv is a wheel made here: its `uv` writes a marker and fails."""
    import hashlib
    import zipfile

    kit = tmp_path / "kit"
    (kit / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "scripts/bootstrap.py"):
        shutil.copy(ROOT / name, kit / name)
    marker = tmp_path / "uv-ran"
    wheel = tmp_path / "uv-9.9.9-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("uv-9.9.9.data/scripts/uv", f"#!/bin/sh\necho ran > {marker}\necho 'error: fake' >&2\nexit 1\n")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (kit / "scripts/uv-requirements.txt").write_text(f"uv==9.9.9 \\\n    --hash=sha256:{digest}\n")
    return kit, wheel


def _install(kit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "LEANOPS_", "PIP_"))}
    # no package index: a wheel that is not in the cache (or fails its hash) cannot be fetched again
    env.update(RUNNER_TEMP=str(tmp_path / "runner"), LEANOPS_PYTHON=sys.executable,
               PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="0", PIP_TIMEOUT="1",
               PIP_CONFIG_FILE=os.devnull)
    return subprocess.run([sys.executable, str(kit / "scripts/bootstrap.py"), "install"], capture_output=True,
                          text=True, env=env)


def test_uv_from_a_restored_cache_runs_only_when_its_hash_matches(tmp_path: Path) -> None:
    kit, wheel = _fake_kit(tmp_path)
    cache = tmp_path / "runner/leanops/cache"
    marker = tmp_path / "uv-ran"
    # a cache hit holding the pinned wheel: uv comes from it (and runs)
    (cache / "uv-wheels").mkdir(parents=True)
    shutil.copy(wheel, cache / "uv-wheels" / wheel.name)
    res = _install(kit, tmp_path)
    assert marker.exists(), res.stderr
    assert res.returncode == 3 and "fake" in res.stderr
    marker.unlink()
    # a restored cache whose wheel was altered (same name), and a binary planted where an old layout kept uv:
    # the wheel's hash is checked on this run too, it is removed, and nothing from the cache runs
    with open(cache / "uv-wheels" / wheel.name, "ab") as fh:
        fh.write(b"\0")
    (cache / "bin").mkdir()
    planted = cache / "bin/uv-9.9.9"
    planted.write_text(f"#!/bin/sh\necho planted > {marker}\nexit 1\n")
    planted.chmod(0o755)
    res = _install(kit, tmp_path)
    assert res.returncode == 3 and "could not fetch uv 9.9.9" in res.stderr, res.stderr
    assert not marker.exists()
    assert not (cache / "uv-wheels" / wheel.name).exists()
