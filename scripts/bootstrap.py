#!/usr/bin/env python3
"""Install the leanops CLI at the kit's own ref into a private venv (the root action's only install path).

Standard library only: it runs on the runner's own Python before anything is installed.

    bootstrap.py plan      -> outputs cache-dir, cache-key, restore-prefix
    bootstrap.py install   -> uv from a hash-pinned wheel (its sha256 checked on every run, also when the wheel
                              comes from a restored cache), then `uv sync --frozen` with the chosen extras
                              into $RUNNER_TEMP/leanops/venv; outputs python, version; venv/bin on PATH;
                              LEANOPS_UV (the checked uv) in the job's environment

Inputs come from the environment: LEANOPS_EXTRAS (comma/space separated), LEANOPS_PYTHON (interpreter).
Exit codes: 0 ok, 2 bad input (unknown extra, no such Python), 3 the install failed.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
UV_REQUIREMENTS = KIT / "scripts" / "uv-requirements.txt"


def on_runner() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def fail(code: int, message: str, file: str | None = None, line: int | None = None) -> None:
    text = " ".join(message.split())
    if on_runner():
        props = ",".join(p for p in (f"file={file}" if file else "", f"line={line}" if line else "",
                                     "title=leanops setup") if p)
        print(f"::error {props}::{text}", flush=True)
    where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
    print(f"leanops setup: error: {where}{text}", file=sys.stderr)
    sys.exit(code)


def output(name: str, value: str) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        print(f"output {name}={value}", file=sys.stderr)
        return
    with open(path, "a", encoding="utf-8") as fh:
        if "\n" in value:
            delim = f"ghadelimiter_{secrets.token_hex(16)}"
            fh.write(f"{name}<<{delim}\n{value}\n{delim}\n")
        else:
            fh.write(f"{name}={value}\n")


def base_dir() -> Path:
    temp = os.environ.get("RUNNER_TEMP")
    if temp:
        return Path(temp) / "leanops"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "leanops"


def cache_dir() -> Path:
    return Path(os.environ.get("LEANOPS_CACHE_DIR") or base_dir() / "cache")


def venv_dir() -> Path:
    return Path(os.environ.get("LEANOPS_VENV") or base_dir() / "venv")


def known_extras() -> list[str]:
    text = (KIT / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"(?ms)^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text)
    return re.findall(r"(?m)^([a-z0-9-]+)\s*=\s*\[", section.group(1)) if section else []


def requested_extras() -> list[str]:
    raw = os.environ.get("LEANOPS_EXTRAS", "")
    extras = sorted({e for e in re.split(r"[\s,]+", raw) if e})
    known = known_extras()
    if "all" in extras:
        return known
    unknown = [e for e in extras if e not in known]
    if unknown:
        fail(2, f"extras: unknown {', '.join(unknown)}; expected any of {', '.join(known)} or all")
    return extras


def python_exe() -> str:
    name = os.environ.get("LEANOPS_PYTHON") or "python3"
    found = shutil.which(name)
    if not found:
        fail(2, f"python: {name!r} not found on PATH; expected an installed Python >= 3.10")
    return str(found)


def python_version(exe: str) -> str:
    out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=False)
    version = out.stdout.strip()
    if out.returncode != 0 or not re.match(r"^3\.\d+$", version):
        fail(2, f"python: {exe} did not run; expected a Python >= 3.10")
    if tuple(map(int, version.split("."))) < (3, 10):
        fail(2, f"python: {exe} is Python {version}; expected >= 3.10")
    return version


def lock_digest() -> str:
    lock = KIT / "uv.lock"
    if not lock.is_file():
        fail(3, "missing; expected the kit's lock file", file="uv.lock")
    h = hashlib.sha256(lock.read_bytes())
    h.update(UV_REQUIREMENTS.read_bytes())
    return h.hexdigest()[:20]


def cmd_plan() -> None:
    extras = requested_extras()
    version = python_version(python_exe())
    system = f"{platform.system()}-{platform.machine()}".lower()
    prefix = f"leanops-uv-{system}-py{version}-"
    key = f"{prefix}{lock_digest()}-{'+'.join(extras) or 'core'}"
    output("cache-dir", str(cache_dir()))
    output("cache-key", key)
    output("restore-prefix", prefix)
    print(f"leanops setup: cache key {key}")


def pinned_uv() -> tuple[str, set[str]]:
    """uv's pinned version and the sha256 of each of its wheels (scripts/uv-requirements.txt)."""
    text = UV_REQUIREMENTS.read_text(encoding="utf-8")
    m = re.search(r"^uv==(\S+)", text, re.M)
    if not m:
        fail(3, "no uv== line; expected a pinned uv", file="scripts/uv-requirements.txt")
    hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", text))
    if not hashes:
        fail(3, "no --hash=sha256: lines; expected uv pinned by hash", file="scripts/uv-requirements.txt")
    return m.group(1), hashes  # type: ignore[union-attr]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_wheel(folder: Path, version: str, hashes: set[str]) -> Path | None:
    """The cached uv wheel when its sha256 is one of the pinned ones; anything else there is deleted."""
    found = None
    for wheel in sorted(folder.glob(f"uv-{version}-*.whl")) if folder.is_dir() else []:
        if found is None and sha256_file(wheel) in hashes:
            found = wheel
        else:
            print(f"leanops setup: {wheel.name} in the cache does not match the pinned hashes; removed", flush=True)
            wheel.unlink()
    return found


def uv_binary() -> Path:
    """uv from its wheel on PyPI. The wheel is kept in the cache dir and its sha256 is checked against the
    pinned hashes on every run, restored from a cache or not; the binary is extracted from the checked wheel
    into the job's own folder (outside the cache), so nothing restored is run unchecked."""
    version, hashes = pinned_uv()
    wheels = cache_dir() / "uv-wheels"
    wheel = verified_wheel(wheels, version, hashes)
    if wheel is None:
        with tempfile.TemporaryDirectory(prefix="leanops-uv-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--require-hashes", "-r", str(UV_REQUIREMENTS), "-d", tmp]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            got = list(Path(tmp).glob("uv-*.whl"))
            if res.returncode != 0 or not got:
                last = (res.stderr.strip().splitlines() or ["no wheel"])[-1]
                fail(3, f"could not fetch uv {version} from the package index: {last}")
            wheels.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(got[0], wheels / got[0].name)
        wheel = verified_wheel(wheels, version, hashes)
        if wheel is None:
            fail(3, f"the downloaded uv {version} wheel does not match the pinned hashes",
                 file="scripts/uv-requirements.txt")
    assert wheel is not None
    target = base_dir() / "bin" / f"uv-{version}"
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if re.search(r"\.data/scripts/uv$", n)), None)
        if member is None:
            fail(3, f"{wheel.name} holds no uv binary")
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_suffix(".part")
        with zf.open(member) as src, open(part, "wb") as dst:  # type: ignore[arg-type]
            shutil.copyfileobj(src, dst)
        part.chmod(0o755)
        os.replace(part, target)
    return target


def first_error(stderr: str) -> str:
    """uv's error and its causes, on one line (no source excerpts, no hints)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("error:"):
            rest = [x for x in lines[i + 1:] if not re.match(r"^(\d+\s*)?\||^\^|^hint:", x)]
            causes = [re.sub(r"^(Caused by|cause):\s*", "", x) for x in rest]
            return ": ".join([ln.removeprefix("error:").strip(), *causes])
    return lines[-1] if lines else "no message"


def build_key() -> str:
    """What uv keys its build of leanops on (pyproject's cache-keys): the content of pyproject.toml.

    uv's default key is the file's ctime, which a new checkout of the kit (every CI job) changes, turning a
    warm install into a rebuild of the project.
    """
    return hashlib.sha256((KIT / "pyproject.toml").read_bytes()).hexdigest()[:16]


def cmd_install() -> None:
    start = time.monotonic()
    extras = requested_extras()
    exe = python_exe()
    python_version(exe)
    lock_digest()
    uv = uv_binary()
    venv = venv_dir()
    env = dict(os.environ)
    env.update({
        "UV_CACHE_DIR": str(cache_dir() / "uv"),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "LEANOPS_BUILD_KEY": build_key(),
    })
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT"):
        env.setdefault("SSL_CERT_FILE", os.environ.get("PIP_CERT", ""))
    cmd = [str(uv), "sync", "--frozen", "--no-dev", "--project", str(KIT), "--python", exe]
    for extra in extras:
        cmd += ["--extra", extra]
    print(f"leanops setup: uv sync --frozen{''.join(' --extra ' + e for e in extras)} -> {venv}", flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        message = first_error(res.stderr)
        in_lock = "uv.lock" in message
        where = re.search(r"at line (\d+)", message) if in_lock else None
        fail(3, message, file="uv.lock" if in_lock else None, line=int(where.group(1)) if where else None)
    bindir = venv / "bin"
    py = bindir / "python"
    ver = subprocess.run([str(bindir / "leanops"), "--version"], capture_output=True, text=True, check=False)
    if ver.returncode != 0:
        fail(3, f"leanops does not run after install: {first_error(ver.stderr)}")
    version = ver.stdout.strip().split()[-1]
    if os.environ.get("GITHUB_PATH"):
        with open(os.environ["GITHUB_PATH"], "a", encoding="utf-8") as fh:
            fh.write(f"{bindir}\n")
    if os.environ.get("GITHUB_ENV"):  # the checked uv, for later steps (build-push-image exports the lock with it)
        with open(os.environ["GITHUB_ENV"], "a", encoding="utf-8") as fh:
            fh.write(f"LEANOPS_UV={uv}\n")
    output("python", str(py))
    output("version", version)
    print(f"leanops setup: leanops {version} ready in {time.monotonic() - start:.1f}s", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("plan", "install"):
        fail(2, "usage: bootstrap.py plan|install")
    {"plan": cmd_plan, "install": cmd_install}[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
