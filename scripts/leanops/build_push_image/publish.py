"""Pushing by digest: every tag pushed, the registry's digest read back; one line per failure.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .. import gh
from ..errors import InfraError
from .plan import Plan

UNREACHABLE = re.compile(r"connection refused|no such host|i/o timeout|dial tcp|connection reset|no route to host")


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
