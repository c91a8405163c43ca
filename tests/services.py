"""Real services on loopback shared by the tests and `make demo`: a free port, readiness, an `mlflow server`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, *, alive: Callable[[], bool] = lambda: True, timeout: float = 120.0) -> bool:
    """Poll ``url`` until it answers 200; False when ``alive()`` turns false or the time is up."""
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


@contextlib.contextmanager
def mlflow_server(base: Path, port: int | None = None) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (sqlite backend and artifacts under ``base``); yields its URI."""
    base.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    uri = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    exe = Path(sys.executable).parent / "mlflow"
    with open(base / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [str(exe) if exe.exists() else "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}", "--artifacts-destination",
             str(base / "artifacts"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base, start_new_session=True,
        )
        try:
            if not wait_for_http(f"{uri}/health", alive=lambda: proc.poll() is None):
                raise RuntimeError(f"mlflow server did not start: {(base / 'server.log').read_text()[-2000:]}")
            yield uri
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def remove_deployment(name: str) -> None:
    """Every container, the network and the state volume of one canary deployment (the engine is shared)."""
    import docker

    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"io.leanops.canary.app={name}"}):
        c.remove(force=True)
    for n in client.networks.list(names=[f"leanops-{name}"]):
        n.remove()
    try:
        client.volumes.get(f"leanops-{name}-state").remove(force=True)
    except docker.errors.NotFound:
        pass
