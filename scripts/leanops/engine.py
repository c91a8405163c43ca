"""The Docker engine, as the capabilities that build and run containers reach it."""

from __future__ import annotations

from typing import Any

from .errors import InfraError


def client(timeout: int = 600) -> Any:
    """A Docker SDK client from the environment (DOCKER_HOST or the local socket)."""
    try:
        import docker
    except ImportError as exc:
        raise InfraError("the Docker SDK is missing; install leanops with the 'act' extra") from exc
    return docker.from_env(timeout=timeout)
