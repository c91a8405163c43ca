"""What the canary router exposes (issue 13, path 6; the retry part of path 7): its port is published on loopback
unless an address is written, it answers 404 to the model servers' metrics, readiness and schema paths, and it
resends a prediction to the other backend only when none of it was sent.

The model server's own side (no OpenAPI schema, no exception text on /ready) is in test_serve.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from leanops.canary_deploy.docker_target import DockerTarget, publish_binding, render_conf
from leanops.errors import BadInput

DIGEST = "sha256:" + "a" * 64


def _conf() -> str:
    return render_conf([("leanops-churn-stable", 90), ("leanops-churn-canary", 10)])


def _blocked(conf: str) -> re.Pattern[str]:
    """The regular expression of the router's `location ~ ... { return 404; }` block."""
    found = re.findall(r"^\s*location ~ (\S+) \{ return 404; \}$", conf, re.MULTILINE)
    assert len(found) == 1, conf
    return re.compile(found[0].replace("\\\\", "\\"))


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics/samples", "/ready", "/ready/", "/openapi.json",
                                  "/docs", "/docs/oauth2-redirect", "/redoc"])
def test_router_answers_404_to_what_stays_inside_the_network(path: str) -> None:
    assert _blocked(_conf()).search(path), f"{path} would be proxied to the model servers"


@pytest.mark.parametrize("path", ["/predict", "/health", "/", "/readyz", "/metricsx", "/predict/ready"])
def test_router_proxies_the_rest(path: str) -> None:
    assert not _blocked(_conf()).search(path)


def test_router_block_comes_before_the_catch_all_and_the_health_stays() -> None:
    conf = _conf()
    assert conf.index("location ~ ") < conf.index("location / {")  # a regex location wins over the prefix `/`
    assert 'location = /leanops/router/health { return 200 "ok\\n"; }' in conf


def test_router_resends_a_prediction_only_when_none_of_it_was_sent() -> None:
    """Without `non_idempotent`, nginx passes a POST to the next server only when it could not be sent to the first
    (connection refused, connect timeout); `proxy_next_upstream_tries 2`: one retry at most."""
    conf = _conf()
    directives = {m.group(1): m.group(2).split() for m in
                  re.finditer(r"^\s*(proxy_next_upstream(?:_tries)?) ([^;]+);", conf, re.MULTILINE)}
    assert directives == {"proxy_next_upstream": ["error", "timeout"], "proxy_next_upstream_tries": ["2"]}
    assert "non_idempotent" not in re.sub(r"#.*", "", conf)


@pytest.mark.parametrize(("publish", "binding"), [
    ("8080", ("127.0.0.1", 8080)),
    (" 9000 ", ("127.0.0.1", 9000)),
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:8080", ("0.0.0.0", 8080)),  # noqa: S104 - written explicitly: the one way to every interface
    ("10.1.2.3:80", ("10.1.2.3", 80)),
    ("[::1]:8080", ("::1", 8080)),
    ("[::]:8080", ("::", 8080)),
])
def test_publish_binds_loopback_unless_an_address_is_written(publish: str, binding: tuple[str, int]) -> None:
    assert publish_binding(publish) == binding


def test_docker_target_publishes_on_loopback_by_default() -> None:
    assert DockerTarget("churn").binding == ("127.0.0.1", 8080)  # no engine contacted: the client is lazy
    assert DockerTarget("churn", publish="0.0.0.0:8081").binding == ("0.0.0.0", 8081)  # noqa: S104


@pytest.mark.parametrize("publish", ["", "host:8080", "localhost:8080", "0.0.0.0:", ":8080", "8080:0.0.0.0",
                                     "99999", "0", "::1:8080", "1.2.3:80", "8080/tcp"])
def test_a_bad_publish_is_bad_input(publish: str) -> None:
    with pytest.raises(BadInput, match=r"is not \[ADDRESS:\]PORT; expected e\.g\. 8080 or 127\.0\.0\.1:8080"):
        publish_binding(publish)


def test_cli_refuses_a_bad_publish_in_one_line_before_any_engine_is_reached(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "leanops", "canary-deploy", "--image", f"reg.example/churn@{DIGEST}",
                          "--name", "churn", "--router-publish", "example.com:8080"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "'example.com:8080' is not [ADDRESS:]PORT" in lines[0], res.stderr
