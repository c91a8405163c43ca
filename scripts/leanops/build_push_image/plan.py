"""What to build: flags over ``leanops.yml``'s ``build-push-image`` section, resolved into one plan.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import config, gh
from ..errors import BadInput

DEFAULT_ALIAS = "challenger"
SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?$")


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
        from ..fsutil import templates_dir  # the checkout's templates/, or leanops/templates inside a wheel

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
