#!/usr/bin/env python3
"""STAND-IN for GitHub's infrastructure (actions/cache, upload/download-artifact, setup-python) under act.

Never part of the kit: the leanops harness maps the pinned GitHub-owned actions here. State lives in
$LEANOPS_ACT_STORE (bind-mounted from the host, so tests can inspect it). Inputs come as STANDIN_* env.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

LABEL = "[stand-in for GitHub's infrastructure]"


def store() -> Path:
    root = os.environ.get("LEANOPS_ACT_STORE")
    if not root:
        sys.exit(f"{LABEL} LEANOPS_ACT_STORE is not set: run through `leanops act`")
    return Path(root)


def inp(name: str, default: str = "") -> str:
    return os.environ.get(f"STANDIN_{name.upper().replace('-', '_')}", "") or default


def output(name: str, value: str) -> None:
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
        fh.write(f"{name}={value}\n")


def paths() -> list[str]:
    out = []
    for line in inp("path").splitlines():
        line = line.strip()
        if line and not line.startswith("!"):
            out.append(os.path.expandvars(os.path.expanduser(line)))
    return out


def safe_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", key)


def cache_restore() -> None:
    key = inp("key")
    folder = store() / "cache"
    exact = folder / f"{safe_key(key)}.tar"
    found, hit = (exact, True) if exact.is_file() else (None, False)
    if not found:
        for prefix in [p.strip() for p in inp("restore-keys").splitlines() if p.strip()]:
            matches = sorted(folder.glob(f"{safe_key(prefix)}*.tar"), key=lambda p: p.stat().st_mtime)
            if matches:
                found = matches[-1]
                break
    if not found:
        print(f"{LABEL} cache not found for key {key}")
        output("cache-hit", "false")
        return
    # GNU tar, as the real action uses: Python's tarfile takes 4-5x as long on a uv cache of 20,000 files
    subprocess.run(["tar", "-xf", str(found), "-C", "/"], check=True)  # noqa: S607
    print(f"{LABEL} cache restored from {found.name} ({'exact' if hit else 'prefix'} match)")
    output("cache-hit", "true" if hit else "false")
    output("cache-primary-key", key)
    output("cache-matched-key", found.stem)


def cache_save() -> None:
    key = inp("key")
    folder = store() / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{safe_key(key)}.tar"
    if target.exists():
        print(f"{LABEL} cache {key} exists; not saved again")
        return
    part = target.with_suffix(f".{os.getpid()}.part")
    members = [os.path.abspath(m).lstrip("/") for p in paths() for m in glob.glob(p)]
    if not members:  # as the real action: a warning, nothing saved
        print(f"::warning::{LABEL} the path(s) to cache do not exist; no cache is saved")
        return
    try:
        subprocess.run(["tar", "-cf", str(part), "-C", "/", "--", *members], check=True)  # noqa: S607
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    print(f"{LABEL} cache saved as {target.name} ({target.stat().st_size // 1024} KiB)")


def run_record(name: str) -> Path:
    """Which act run uploaded the artifact ``name`` (LEANOPS_ACT_RUN, one per `leanops act`): artifacts belong to
    their workflow run, as on GitHub, though the store outlives the run for tests to inspect."""
    return store() / "artifact-runs" / name


def this_run() -> str:
    return os.environ.get("LEANOPS_ACT_RUN", "")


def upload() -> None:
    name = inp("name", "artifact")
    dest = store() / "artifacts" / name
    record = run_record(name)
    if this_run() and record.is_file() and record.read_text() == this_run() and inp("overwrite", "false") != "true":
        # as GitHub answers a second upload of a name in one run (artifacts v4): the job fails
        print(f"::error::{LABEL} Failed to CreateArtifact: (409) Conflict: an artifact with this name already "
              f"exists on the workflow run: {name}")
        sys.exit(1)
    files = []
    for p in paths():
        files += [Path(m) for m in glob.glob(p, recursive=True)]
    if not files:
        mode = inp("if-no-files-found", "warn")
        msg = f"{LABEL} no files found for artifact {name}: {inp('path')!r}"
        if mode == "error":
            print(f"::error::{msg}")
            sys.exit(1)
        if mode == "warn":
            print(f"::warning::{msg}")
        return
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if len(files) == 1 and files[0].is_dir():
        # as the real action: one directory's contents land at the artifact's root
        shutil.copytree(files[0], dest, dirs_exist_ok=True)
        files = [files[0]]
    else:
        for f in files:
            if f.is_dir():
                shutil.copytree(f, dest / f.name, dirs_exist_ok=True)
            else:
                shutil.copy2(f, dest / f.name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(this_run())
    print(f"{LABEL} artifact {name}: {len(files)} path(s) -> {dest}")
    output("artifact-id", name)
    output("artifact-url", dest.as_uri())


def download() -> None:
    name = inp("name", "artifact")
    src = store() / "artifacts" / name
    dest = Path(inp("path", os.environ.get("GITHUB_WORKSPACE", ".")))
    record = run_record(name)
    uploaded_here = not this_run() or (record.is_file() and record.read_text() == this_run())
    if not src.is_dir() or not uploaded_here:  # another run's artifact is not this run's, as on GitHub
        print(f"::error::{LABEL} artifact {name} not found" + ("" if uploaded_here else " in this workflow run"))
        sys.exit(1)
    shutil.copytree(src, dest, dirs_exist_ok=True)
    print(f"{LABEL} artifact {name} -> {dest}")
    output("download-path", str(dest))


def setup_python() -> None:
    wanted = inp("python-version")
    exe = shutil.which("python3") or sys.executable
    have = subprocess.run([exe, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    if wanted and not have.startswith(wanted.rstrip(".x")):
        print(f"::warning::{LABEL} the runner image has Python {have}; {wanted} was requested; using {have}")
    output("python-version", have)
    output("python-path", exe)
    output("cache-hit", "false")


COMMANDS = {"cache-restore": cache_restore, "cache-save": cache_save, "upload-artifact": upload,
            "download-artifact": download, "setup-python": setup_python}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]]()
