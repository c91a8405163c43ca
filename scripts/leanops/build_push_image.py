"""``leanops build-push-image``: the model server image, built reproducibly and pushed by digest.

1. resolves the model: ``models:/NAME@challenger`` by default (MLflow registry), ``models:/NAME/VERSION``,
   ``runs:/...``, or a path to an MLflow model directory; it must carry a signature;
2. prepares the build context: ``templates/Dockerfile`` (or ``build-push-image.dockerfile``), the kit's
   ``serve`` dependencies exported from ``uv.lock`` with hashes, the ``leanops`` package, the model;
3. builds with BuildKit (``docker build --iidfile``; the CA bundle as a build secret, never in a layer);
4. pushes the content tag ``build-<image id>`` first, confirms its digest in the registry, and only then
   adds the final tags (``sha-<short>``, ``model-<version>``, an optional semver), each checked to point at
   the same digest: a failed push leaves no final tag, and no tag ever points at a partial image;
5. outputs ``image`` (``REGISTRY/IMAGE@sha256:...``: deploy by digest), ``digest`` and ``tags``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, gh, models, serve, tracking
from .errors import BadInput, InfraError
from .flags import add_flag

DEFAULT_ALIAS = "challenger"
DOCKER_CLI = "/usr/bin/docker"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?$")
UNREACHABLE = re.compile(r"connection refused|no such host|i/o timeout|dial tcp|connection reset|no route to host")
TAG_LOCK = "leanops.dvc_lock_sha256"  # train-with-cache's data hash tag on the run and the version


def kit_root() -> Path:
    return Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- inputs


@dataclass
class Plan:
    model_uri: str
    registry: str
    image: str
    base_image: str
    dockerfile: Path
    version: str
    push: bool
    root: Path
    username: str = ""
    password: str = field(default="", repr=False)
    model_name: str = ""
    tracking_uri: str = ""  # train-with-cache.tracking-uri in leanops.yml

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.image}" if self.image else self.registry

    @property
    def registry_host(self) -> str:
        return self.registry.split("/", 1)[0]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("build-push-image", help="build the model server image and push it by digest")
    add_flag(p, "--model-uri", help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/PATH or a model directory "
             "(default: models:/<model.name>@challenger)", default="")
    add_flag(p, "--registry", help="registry and namespace, e.g. ghcr.io/owner/repo (default: "
             "ghcr.io/<GITHUB_REPOSITORY>)", default="")
    add_flag(p, "--image", help="image name under the registry (default: the model name)", default="")
    add_flag(p, "--version", help="semver tag to add, e.g. 1.2.3 (default: none)", default="")
    add_flag(p, "--base-image", help="the Dockerfile's BASE_IMAGE (default: the Dockerfile's, python:3.12-slim)",
             default="")
    add_flag(p, "--dockerfile", help="Dockerfile (default: the kit's templates/Dockerfile)", default="")
    add_flag(p, "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, leanops.yml, local store)",
             default="")
    add_flag(p, "--push", help="push to the registry (false: build and tag locally only)", default=True, kind="bool")
    p.set_defaults(func=run)


def default_registry() -> str:
    repo = os.environ.get("GITHUB_REPOSITORY", "").strip().lower()
    if not repo:
        raise BadInput("registry: empty and GITHUB_REPOSITORY is not set; expected e.g. ghcr.io/owner/repo")
    return f"ghcr.io/{repo}"


def plan(args: argparse.Namespace) -> Plan:
    cfg = config.load(args.config)
    section = cfg.section("build-push-image")
    name = cfg.model_name or ""
    model_uri = args.model_uri or (f"models:/{name}@{DEFAULT_ALIAS}" if name else "")
    if not model_uri:
        raise BadInput("model-uri: empty and model.name is missing in leanops.yml; expected models:/NAME@ALIAS "
                       "or a model directory", file=str(cfg.path or config.DEFAULT_FILE))
    registry = (args.registry or section.get("registry") or default_registry()).strip().rstrip("/")
    registry = re.sub(r"^[a-z]+://", "", registry)
    image = (args.image or section.get("image") or name or "model").strip().lower()
    ref = f"{registry}/{image}"
    if not re.fullmatch(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)+", ref):
        raise BadInput(f"registry/image: {ref!r} is not a valid image repository; expected HOST[:PORT]/PATH in "
                       "lower case")
    dockerfile = args.dockerfile or section.get("dockerfile") or ""
    if dockerfile:
        dockerfile_path = cfg.root / dockerfile
    else:
        from .fsutil import templates_dir  # the checkout's templates/, or leanops/templates inside a wheel

        dockerfile_path = templates_dir() / "Dockerfile"
    if not dockerfile_path.is_file():
        raise BadInput(f"dockerfile: {dockerfile_path} does not exist")
    version = args.version.strip()
    if version and not SEMVER.match(version):
        raise BadInput(f"version: {version!r} is not a semantic version; expected X.Y.Z")
    username = os.environ.get("LEANOPS_REGISTRY_USERNAME", "")
    password = os.environ.get("LEANOPS_REGISTRY_PASSWORD", "")
    if not password and registry.startswith("ghcr.io/"):
        username = username or os.environ.get("GITHUB_ACTOR", "")
        password = os.environ.get("GITHUB_TOKEN", "")
    gh.mask(password)
    return Plan(model_uri=model_uri, registry=registry, image=image, version=version.lstrip("v"),
                base_image=args.base_image or section.get("base-image") or "", dockerfile=dockerfile_path,
                push=args.push, root=cfg.root, username=username, password=password, model_name=name,
                tracking_uri=cfg.section("train-with-cache").get("tracking-uri") or "")


# ---------------------------------------------------------------------------- the model


@dataclass
class Model:
    path: Path
    name: str
    version: str
    run_id: str = ""
    data_hash: str = ""
    sha256: str = ""


def fetch_model(p: Plan, dest: Path, tracking_uri: str, configured_uri: str | None, fallback_name: str) -> Model:
    """Copy (a path) or download (MLflow) the model into ``dest``; check it has a signature."""
    uri = p.model_uri
    if not re.match(r"^(models|runs|mlflow-artifacts|s3|gs|wasbs|dbfs)://?", uri):
        src = Path(uri) if Path(uri).is_absolute() else p.root / uri
        if not src.is_dir():
            raise BadInput(f"model-uri: model directory {uri} not found; expected an MLflow model directory "
                           "or models:/NAME@ALIAS")
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        model = Model(path=dest, name=fallback_name or src.name, version="")
    else:
        model = _download(uri, dest, *tracking.resolve_uri(tracking_uri or None, configured_uri, p.root))
    serve.read_signature(dest)  # BadInput when the signature is missing
    model.sha256 = models.model_digest(dest)
    if not model.version:
        model.version = f"sha256-{model.sha256[:12]}"
    return model


def _download(uri: str, dest: Path, store_uri: str, local: bool) -> Model:
    tracking.configure_mlflow(store_uri)
    where = tracking.mask_uri(store_uri)
    info = None
    store = tracking.reader(store_uri)
    if uri.startswith("models:/") and store is not None:
        store.probe()
        info = tracking.resolve_model_uri(uri, store)  # BadInput: no such model or alias
    with gh.group(f"MLflow: download {uri} from {where}"):
        import mlflow
        from mlflow.exceptions import MlflowException

        client = mlflow.MlflowClient(store_uri, registry_uri=store_uri)
        name, version, run_id, data_hash = "", "", "", ""
        try:
            if uri.startswith("models:/"):
                m = tracking.ALIAS_URI.match(uri)
                if m:
                    mv = client.get_model_version_by_alias(m["name"], m["alias"])
                else:
                    name_, _, ver = uri.removeprefix("models:/").partition("/")
                    mv = client.get_model_version(name_, ver)
                name, version, run_id = mv.name, str(mv.version), mv.run_id or ""
                data_hash = (mv.tags or {}).get(TAG_LOCK, "")
                if info is not None and info.version != version:
                    raise InfraError(f"{uri}: the registry moved while reading ({info.version} -> {version})")
                uri = f"models:/{name}/{version}"
            elif uri.startswith("runs:/"):
                run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            if run_id and not data_hash:
                try:
                    data_hash = client.get_run(run_id).data.tags.get(TAG_LOCK, "")
                except MlflowException:
                    data_hash = ""
            tmp = Path(tempfile.mkdtemp(prefix="leanops-model-"))
            try:
                got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp),
                                                               tracking_uri=store_uri))
                if (got / serve.MLMODEL).is_file():
                    shutil.copytree(got, dest)
                else:
                    found = next((m.parent for m in got.rglob(serve.MLMODEL)), None)
                    if found is None:
                        raise BadInput(f"model-uri: {uri} holds no MLmodel file; expected an MLflow model")
                    shutil.copytree(found, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except MlflowException as exc:
            text = " ".join(str(exc.message).split())[:300]
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise BadInput(f"model-uri: {uri} not found in {where}: {text}") from None
            raise InfraError(f"tracking server {where}: {text}") from None
        gh.step(f"model {name or uri} version {version or '-'} (run {run_id or '-'}) -> {dest}"
                + (" from the local store" if local else ""))
    return Model(path=dest, name=name or "model", version=version, run_id=run_id, data_hash=data_hash)


# ---------------------------------------------------------------------------- context and build


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


def requirements(dest: Path) -> Path:
    """The kit's ``serve`` extra from ``uv.lock``, pinned with hashes (pip --require-hashes)."""
    kit = kit_root()
    if not (kit / "uv.lock").is_file():
        raise InfraError(f"{kit}/uv.lock: missing; expected the kit's lock file")
    res = subprocess.run([uv_binary(), "export", "--frozen", "--no-dev", "--extra", "serve", "--no-emit-project",
                          "--no-header", "--format", "requirements-txt", "--project", str(kit), "-o", str(dest)],
                         capture_output=True, text=True, check=False, env=dict(os.environ, UV_NO_PROGRESS="1"))
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise InfraError(f"uv export of the serve requirements failed: {last}")
    return dest


def prepare_context(ctx: Path, p: Plan) -> None:
    import leanops

    shutil.copy2(p.dockerfile, ctx / "Dockerfile")
    requirements(ctx / "requirements.txt")
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


# ---------------------------------------------------------------------------- tags and push


def tags_for(p: Plan, model: Model, revision: str) -> list[str]:
    tags = []
    if revision:
        tags.append(f"sha-{revision[:7]}")
    tags.append(re.sub(r"[^A-Za-z0-9_.-]", "-", f"model-{model.version}")[:128])
    if p.version:
        tags.append(p.version)
    return tags


def _fault(point: str) -> None:
    """Fault injection for the tests of the failure path (LEANOPS_BUILD_PUSH_FAULT=<point>)."""
    if os.environ.get("LEANOPS_BUILD_PUSH_FAULT") == point:
        raise InfraError(f"injected fault at {point} (LEANOPS_BUILD_PUSH_FAULT)")


def _push(client: Any, repo: str, tag: str, registry: str) -> str:
    """Push one tag; the digest the registry answered with."""
    digest = ""
    try:
        for event in client.api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in event:
                detail = " ".join(str(event.get("error")).split())[:300]
                if UNREACHABLE.search(detail):
                    raise InfraError(f"registry {registry} unreachable: push of {repo}:{tag} failed: {detail}")
                raise InfraError(f"registry {registry} refused the push of {repo}:{tag}: {detail}")
            aux = event.get("aux") or {}
            digest = aux.get("Digest", digest)
    except InfraError:
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's failure, in one line
        raise InfraError(f"registry {registry}: push of {repo}:{tag} failed: {' '.join(str(exc).split())[:300]}") \
            from None
    if not digest:
        raise InfraError(f"registry {registry}: push of {repo}:{tag} returned no digest")
    return str(digest)


def registry_digest(client: Any, ref: str, registry: str, auth: dict[str, str] | None) -> str:
    """The digest the registry itself holds for a reference (not the engine's memory of the push)."""
    try:
        data = client.api.inspect_distribution(ref, auth_config=auth)
    except Exception as exc:  # noqa: BLE001
        raise InfraError(f"registry {registry}: cannot read {ref}: {' '.join(str(exc).split())[:300]}") from None
    return str(data["Descriptor"]["digest"])


def publish(client: Any, p: Plan, image_id: str, tags: list[str]) -> str:
    """Content tag first, digest confirmed in the registry, then the final tags (each checked)."""
    import docker.errors

    repo = p.repository
    auth = None
    if p.password:
        auth = {"username": p.username, "password": p.password}
        try:
            client.login(username=p.username, password=p.password, registry=p.registry_host, reauth=True)
        except docker.errors.APIError as exc:
            detail = " ".join(str(exc.explanation or exc).split())[:200]
            if UNREACHABLE.search(detail):
                raise InfraError(f"registry {p.registry_host} unreachable for login: {detail}") from None
            raise InfraError(f"registry {p.registry_host} refused the login of {p.username or '(no user)'}: "
                             f"{detail}") from None
        except Exception as exc:  # noqa: BLE001 - unreachable and the like
            raise InfraError(f"registry {p.registry_host} unreachable for login: {' '.join(str(exc).split())[:200]}") \
                from None
    image = client.images.get(image_id)
    content_tag = f"build-{image_id.removeprefix('sha256:')[:12]}"
    image.tag(repo, content_tag)
    with gh.group(f"push {repo}"):
        try:
            digest = _push(client, repo, content_tag, p.registry_host)
            confirmed = registry_digest(client, f"{repo}@{digest}", p.registry_host, auth)
            if confirmed != digest:
                raise InfraError(f"registry {p.registry_host}: {repo}@{digest} reads back as {confirmed}")
            gh.step(f"pushed {repo}:{content_tag} -> {digest} (confirmed in the registry)")
            _fault("before-final-tags")
            for tag in tags:
                image.tag(repo, tag)
                got = _push(client, repo, tag, p.registry_host)
                if got != digest:
                    raise InfraError(f"registry {p.registry_host}: {repo}:{tag} got {got}, expected {digest}")
                gh.step(f"tagged {repo}:{tag}")
        finally:
            try:
                client.images.remove(f"{repo}:{content_tag}", noprune=True)
            except docker.errors.APIError:
                pass
    return digest


# ---------------------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    tracking.quiet_env()
    p = plan(args)
    from .engine import client as _docker_client

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="leanops-build-") as tmp:
        ctx = Path(tmp) / "context"
        ctx.mkdir()
        model = fetch_model(p, ctx / "model", args.tracking_uri, p.tracking_uri or None, p.model_name)
        gh.step(f"model files sha256:{model.sha256}")
        client = _docker_client()
        try:
            client.ping()
        except Exception as exc:  # noqa: BLE001
            raise InfraError(f"no Docker engine answers: {' '.join(str(exc).split())[:200]}") from None
        prepare_context(ctx, p)
        revision = git_revision(p.root)
        image_id = docker_build(ctx, build_args(p, model, revision))
    built = time.monotonic() - t0
    tags = tags_for(p, model, revision)
    for tag in tags:
        client.images.get(image_id).tag(p.repository, tag)
    size = client.images.get(image_id).attrs.get("Size", 0)
    digest = ""
    if p.push:
        digest = publish(client, p, image_id, tags)
    ref = f"{p.repository}@{digest}" if digest else image_id
    gh.set_output("image", ref)
    gh.set_output("digest", digest)
    gh.set_output("tags", "\n".join(f"{p.repository}:{t}" for t in tags))
    gh.set_output("image-id", image_id)
    gh.add_summary("### build-push-image\n\n" + gh.md_table(["", ""], [
        ["image", f"`{ref}`"], ["tags", ", ".join(f"`{t}`" for t in tags)],
        ["model", f"{model.name} version {model.version} (run `{model.run_id or '-'}`)"],
        ["model files", f"`sha256:{model.sha256[:16]}...`"], ["size", f"{size / 1e6:.0f} MB"],
        ["build", f"{built:.0f} s"], ["pushed", "yes" if digest else "no (--push=false)"],
    ]))
    gh.step(f"{ref}")
    return 0
