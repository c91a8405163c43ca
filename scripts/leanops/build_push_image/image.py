"""The build: the context (model, requirements, the kit), build arguments and tags, ``docker build``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .. import gh
from ..errors import InfraError
from .model import Model, serve_extras
from .plan import Plan

DOCKER_CLI = "/usr/bin/docker"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def kit_root() -> Path:
    return Path(__file__).resolve().parents[3]


def uv_binary() -> str:
    candidates = [os.environ.get("LEANOPS_UV", ""), shutil.which("uv") or "",
                  str(kit_root() / ".tools" / "uv" / "bin" / "uv")]
    cache = Path(os.environ.get("RUNNER_TEMP") or Path.home() / ".cache") / "leanops" / "cache" / "bin"
    candidates += [str(p) for p in sorted(cache.glob("uv-*"), reverse=True)]
    if os.environ.get("XDG_CACHE_HOME"):
        candidates += [str(p) for p in sorted((Path(os.environ["XDG_CACHE_HOME"]) / "leanops/cache/bin").glob("uv-*"))]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise InfraError("uv not found (LEANOPS_UV, PATH, the setup action's cache); it exports the locked requirements")


def requirements(dest: Path, extras: list[str] | None = None) -> Path:
    """The kit's ``serve`` extra (and ``extras``: the model flavor's, ``serve_extras``) from ``uv.lock``, pinned
    with hashes (pip --require-hashes)."""
    kit = kit_root()
    if not (kit / "uv.lock").is_file():
        raise InfraError(f"{kit}/uv.lock: missing; expected the kit's lock file")
    more = [arg for extra in extras or [] for arg in ("--extra", extra)]
    res = subprocess.run([uv_binary(), "export", "--frozen", "--no-dev", "--extra", "serve", *more, "--no-emit-project",
                          "--no-header", "--format", "requirements-txt", "--project", str(kit), "-o", str(dest)],
                         capture_output=True, text=True, check=False, env=dict(os.environ, UV_NO_PROGRESS="1"))
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise InfraError(f"uv export of the serve requirements failed: {last}")
    return dest


def prepare_context(ctx: Path, p: Plan) -> None:
    import leanops

    shutil.copy2(p.dockerfile, ctx / "Dockerfile")
    extras = serve_extras(ctx / "model")  # XGBoost, LightGBM: only when the model needs them
    requirements(ctx / "requirements.txt", extras)
    gh.step("serve requirements: the kit's locked serve extra" + (f" with {', '.join(extras)} (the model's "
            "requirements.txt)" if extras else ""))
    shutil.copytree(Path(leanops.__file__).resolve().parent, ctx / "leanops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (ctx / ".dockerignore").write_text("**/__pycache__\n")


def git_revision(root: Path) -> str:
    sha = os.environ.get("GITHUB_SHA", "")
    if sha:
        return sha
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return res.stdout.strip() if res.returncode == 0 else ""


def source_url() -> str:
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    return f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{repo}" if repo else ""


def build_args(p: Plan, model: Model, revision: str) -> dict[str, str]:
    args = {
        "MODEL_NAME": model.name, "MODEL_VERSION": model.version, "MODEL_RUN_ID": model.run_id,
        "MODEL_DATA_HASH": model.data_hash, "MODEL_SHA256": model.sha256, "SOURCE": source_url(),
        "REVISION": revision, "VERSION": p.version or model.version,
        "CREATED": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if p.base_image:
        args["BASE_IMAGE"] = p.base_image
    return args


def docker_build(ctx: Path, args: dict[str, str], *, no_cache: bool = False) -> str:
    """BuildKit through Debian's docker CLI (the SDK has no build secrets); returns the image id."""
    # Debian's CLI has BuildKit built in; a newer CLI elsewhere on PATH may want buildx
    cli = os.environ.get("LEANOPS_DOCKER_CLI") or (DOCKER_CLI if Path(DOCKER_CLI).is_file() else shutil.which("docker"))
    if not cli:
        raise InfraError("the docker CLI is missing (/usr/bin/docker); it runs the BuildKit build")
    iid = ctx.parent / "iid"
    cmd = [cli, "build", "--progress=plain", "--iidfile", str(iid), "-f", str(ctx / "Dockerfile")]
    ca = os.environ.get("LEANOPS_BUILD_CA") or os.environ.get("PIP_CERT") or CA_BUNDLE
    if Path(ca).is_file():
        cmd += ["--secret", f"id=ca,src={ca}"]
    if no_cache:
        cmd.append("--no-cache")
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    cmd.append(str(ctx))
    with gh.group("docker build (BuildKit)"):
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, DOCKER_BUILDKIT="1"))
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            tail = (tail + [line.strip()])[-20:]
        code = proc.wait()
        if code != 0:
            reason = next((ln for ln in reversed(tail) if "error" in ln.lower()), tail[-1] if tail else "")
            raise InfraError(f"docker build failed (exit {code}): {reason[:300]}")
        gh.step(f"built in {time.monotonic() - t0:.1f}s")
    return iid.read_text().strip()


def tags_for(p: Plan, model: Model, revision: str) -> list[str]:
    tags = []
    if revision:
        tags.append(f"sha-{revision[:7]}")
    tags.append(re.sub(r"[^A-Za-z0-9_.-]", "-", f"model-{model.version}")[:128])
    if p.version:
        tags.append(p.version)
    return tags
