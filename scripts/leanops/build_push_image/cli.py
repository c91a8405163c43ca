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
import tempfile
import time
from pathlib import Path

from .. import gh, tracking
from ..errors import InfraError
from ..flags import add_flag
from .image import build_args, docker_build, git_revision, prepare_context, tags_for
from .model import fetch_model
from .plan import plan
from .publish import publish
from .report import report


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


def run(args: argparse.Namespace) -> int:
    tracking.quiet_env()
    p = plan(args)
    from ..engine import client as _docker_client

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
    report(p, model, ref=ref, digest=digest, tags=tags, image_id=image_id, size=size, built=built)
    gh.step(f"{ref}")
    return 0
