"""The canary router for real (issue 13, paths 6 and 7): Debian's nginx built from ``router/``, started by
``DockerTarget.start_router`` with the configuration ``render_conf`` writes, in front of small stand-in backends
(the base image's Python) that record every request they receive.

- the published port is bound to 127.0.0.1 (the default ``publish``), not to every interface;
- ``/metrics``, ``/ready`` and the schema paths answer 404 at the router, however the path is spelt, and never
  reach a backend;
- a ``POST /predict`` that reached a backend which then failed is not sent to the other one (a 502), while one
  whose backend refused the connection is sent once to the other (a 200);
- by turns (a 100% step: the canary and its reference), the whole load goes to one backend on even seconds and
  to the other on odd ones, each request to one of them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import free_port, wait_for_http

NAME = "routercheck"
# a stand-in model server: logs "METHOD PATH" per request received; MODE=crash reads a POST and closes the
# connection without answering (a server that died after receiving the prediction)
BACKEND = r"""
import http.server, os, socket, sys
MODE = os.environ["MODE"]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def _answer(self, code, text):
        body = text.encode()
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        print("GET", self.path, flush=True); self._answer(200, "backend " + MODE + " details")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print("POST", self.path, flush=True)
        if MODE == "crash":
            self.connection.shutdown(socket.SHUT_RDWR); self.close_connection = True; return
        self._answer(200, '{"backend": "' + MODE + '"}')
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""
SILENT = "import time; time.sleep(3600)"  # a container that listens on nothing: connection refused


@pytest.fixture(scope="module")
def router(harness) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    import docker

    from leanops.canary_deploy.docker_target import DockerTarget
    from leanops.tools.harness import ensure_base_image

    base = ensure_base_image()
    client = docker.from_env()
    port = free_port()
    target = DockerTarget(NAME, publish=str(port), router_base_image=base)  # a bare port, as most will write it
    _cleanup(client, target)
    target.ensure_network()
    for role, script, mode in (("crash", BACKEND, "crash"), ("ok", BACKEND, "ok"), ("refuse", SILENT, "refuse"),
                               ("copy", BACKEND, "copy")):
        client.containers.run(base, ["python3", "-c", script], name=f"{NAME}-{role}", detach=True,
                              network=target.network, environment={"MODE": mode}, labels={"io.leanops.test": NAME})
    try:
        target.start_router([(f"{NAME}-ok", 100)])
        assert wait_for_http(f"http://127.0.0.1:{port}/leanops/router/health", timeout=30)
        target.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        yield target
    finally:
        _cleanup(client, target)


def _cleanup(client: Any, target: Any) -> None:
    import docker

    for c in client.containers.list(all=True, filters={"name": f"^({NAME}-|{target.router_name}$)"}):
        c.remove(force=True)
    for net in client.networks.list(names=[target.network]):
        net.remove()
    try:
        client.volumes.get(target.volume).remove(force=True)
    except docker.errors.NotFound:
        pass


def _received(target: Any, role: str) -> list[str]:
    c = target.client.containers.get(f"{NAME}-{role}")
    return [ln for ln in c.logs(stdout=True, stderr=False).decode().splitlines() if ln.strip()]


def _request(url: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_router_is_published_on_loopback_only(router: Any) -> None:
    c = router.client.containers.get(router.router_name)
    bindings = c.attrs["HostConfig"]["PortBindings"]["8080/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"], bindings


@pytest.mark.parametrize("path", ["/metrics", "/metrics/samples?since=0", "/ready", "/openapi.json", "/docs",
                                  "/redoc", "/%6detrics", "//ready", "/x/../metrics"])
def test_router_keeps_metrics_ready_and_the_schema_inside(router: Any, path: str) -> None:
    before = _received(router, "ok")
    code, body = _request(router.url + path)
    assert code == 404 and "details" not in body, (code, body)
    assert _received(router, "ok") == before, "the path reached the model server"


def test_router_passes_predictions_and_health(router: Any) -> None:
    assert _request(router.url + "/health") == (200, "backend ok details")
    assert _request(router.url + "/predict", b"{}") == (200, '{"backend": "ok"}')


def test_a_prediction_a_backend_received_is_never_sent_again(router: Any) -> None:
    """Half the weight on a backend that closes the connection after reading the POST: those requests are 502s,
    and every prediction reached exactly one backend (with `non_idempotent`, nginx would resend them)."""
    router.set_backends([(f"{NAME}-crash", 50), (f"{NAME}-ok", 50)])
    crash0, ok0 = len(_received(router, "crash")), len(_received(router, "ok"))
    codes = [_request(router.url + "/predict", json.dumps({"n": i}).encode())[0] for i in range(20)]
    crashed = len(_received(router, "crash")) - crash0
    served = len(_received(router, "ok")) - ok0
    assert crashed >= 1, "no request went to the failing backend: the weights were not applied"
    assert crashed + served == 20, f"{crashed} + {served} deliveries for 20 predictions: some were sent twice"
    assert codes.count(502) == crashed and codes.count(200) == served, codes


def test_a_prediction_whose_backend_refused_the_connection_goes_to_the_other(router: Any) -> None:
    router.set_backends([(f"{NAME}-refuse", 50), (f"{NAME}-ok", 50)])
    ok0 = len(_received(router, "ok"))
    codes = [_request(router.url + "/predict", b"{}")[0] for _ in range(10)]
    assert codes == [200] * 10, codes
    assert len(_received(router, "ok")) - ok0 == 10



def test_by_turns_the_whole_load_goes_to_one_backend_on_even_seconds_and_to_the_other_on_odd_ones(router: Any) -> None:
    """A 100% step: the canary and its reference take the whole load by turns of a second, no reload between."""
    router.set_backends([(f"{NAME}-ok", 100)], turns=(f"{NAME}-ok", f"{NAME}-copy"))
    ok0, copy0 = len(_received(router, "ok")), len(_received(router, "copy"))
    sent: list[tuple[float, str]] = []
    end = time.time() + 4.2
    while time.time() < end:
        t = time.time()
        code, body = _request(router.url + "/predict", json.dumps({"n": len(sent)}).encode())
        assert code == 200, (code, body)
        sent.append((t, json.loads(body)["backend"]))
        time.sleep(0.03)
    served, copied = len(_received(router, "ok")) - ok0, len(_received(router, "copy")) - copy0
    assert served + copied == len(sent), "a request reached both backends, or none"
    assert {b for _, b in sent} == {"ok", "copy"} and min(served, copied) >= 0.3 * len(sent), (served, copied)
    # away from a second's edge (the client's clock and nginx's are the host's), even seconds are the first's
    clear = [(t, b) for t, b in sent if 0.1 < t % 1 < 0.9]
    wrong = [(t, b) for t, b in clear if b != ("ok" if int(t) % 2 == 0 else "copy")]
    assert len(clear) > 40 and not wrong, wrong
    router.set_backends([(f"{NAME}-ok", 100)])
    assert [_request(router.url + "/predict", b"{}")[1] for _ in range(6)] == ['{"backend": "ok"}'] * 6
