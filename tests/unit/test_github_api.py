"""The GitHub REST client against the local recording API."""

from __future__ import annotations

import pytest

from leanops.errors import BadInput, InfraError
from leanops.github_api import ApiError, GitHubAPI


def test_from_env_and_auth(api_recorder) -> None:
    api = GitHubAPI.from_env()
    assert api.api_url == api_recorder.url and api.repository == "example/caller"
    api.create_issue("t", "b", ["x"])
    req = api_recorder.fake.requests[-1]
    assert req.method == "POST" and req.path == "/repos/example/caller/issues"
    assert req.headers["Authorization"] == "Bearer ghs_testtoken"
    assert req.body == {"title": "t", "body": "b", "labels": ["x"]}


def test_from_env_needs_repo_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    with pytest.raises(BadInput, match="GITHUB_REPOSITORY"):
        GitHubAPI.from_env(token="x")
    monkeypatch.setenv("GITHUB_REPOSITORY", "a/b")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    with pytest.raises(BadInput, match="GITHUB_TOKEN"):
        GitHubAPI.from_env()


def test_upsert_issue_creates_once_then_comments(api_recorder) -> None:
    api = GitHubAPI.from_env()
    api.create_issue("unrelated", "", ["bug"])
    n1, created1 = api.upsert_issue("leanops:drift", "Drift", "first body", comment="again")
    n2, created2 = api.upsert_issue("leanops:drift", "Drift", "second body", comment="again 2")
    assert created1 and not created2 and n1 == n2
    fake = api_recorder.fake
    drift = [i for i in fake.issues.values() if i["title"] == "Drift"]
    assert len(drift) == 1 and [c["body"] for c in fake.comments_on(n1)] == ["again 2"]
    fake.issues[n1]["state"] = "closed"
    n3, created3 = api.upsert_issue("leanops:drift", "Drift", "third")
    assert created3 and n3 != n1


def test_sticky_comment_is_created_once_and_updated(api_recorder) -> None:
    api = GitHubAPI.from_env()
    pr = api_recorder.fake.add_pull_request()
    api.comment(pr, "someone else's comment")
    cid1, created1 = api.sticky_comment(pr, "leanops:gate-metrics", "| a | 1 |")
    cid2, created2 = api.sticky_comment(pr, "leanops:gate-metrics", "| a | 2 |")
    assert created1 and not created2 and cid1 == cid2
    ours = [c for c in api_recorder.fake.comments_on(pr) if "leanops:gate-metrics" in c["body"]]
    assert len(ours) == 1 and ours[0]["body"].endswith("| a | 2 |") and ours[0]["edits"] == 1


def test_pagination_follows_link_headers(api_recorder) -> None:
    api = GitHubAPI.from_env()
    for i in range(7):
        api.create_issue(f"i{i}", "", ["many"])
    got = list(api.paginate("repos/example/caller/issues", {"labels": "many", "per_page": 3}))
    assert len(got) == 7
    assert sum(1 for r in api_recorder.fake.requests if r.method == "GET") == 3


def test_sticky_comment_found_beyond_the_first_page(api_recorder) -> None:
    api = GitHubAPI.from_env()
    pr = api_recorder.fake.add_pull_request()
    api.sticky_comment(pr, "m", "v1")
    for i in range(120):
        api.comment(pr, f"noise {i}")
    _, created = api.sticky_comment(pr, "m", "v2")
    assert not created


def test_forbidden_is_an_api_error_with_status(api_recorder) -> None:
    api = GitHubAPI.from_env()
    pr = api_recorder.fake.add_pull_request()
    api_recorder.fake.forbid_comments = True
    with pytest.raises(ApiError) as info:
        api.sticky_comment(pr, "m", "x")
    assert info.value.status == 403 and "Resource not accessible" in info.value.message


def test_transient_errors_are_retried(api_recorder) -> None:
    api = GitHubAPI.from_env()
    api.backoff = 0.01
    api_recorder.fake.fail_next = [502, 503]
    api.dispatch("train.yml", "main", {"reason": "drift"})
    assert api_recorder.fake.dispatches == [{"workflow": "train.yml", "ref": "main", "inputs": {"reason": "drift"}}]
    api_recorder.fake.fail_next = [500, 500, 500]
    with pytest.raises(InfraError, match="unreachable after 3 tries"):
        api.dispatch("train.yml", "main")


def test_unreachable_api_is_infra_error() -> None:
    api = GitHubAPI(token="t", repository="a/b", api_url="http://127.0.0.1:9", retries=2, backoff=0.01)
    expected = r"GET http://127.0.0.1:9/repos/a/b/issues\?.*: unreachable after 2 tries \(.*refused\)"
    with pytest.raises(InfraError, match=expected):
        api.open_issues("x")


def test_workflow_runs(api_recorder) -> None:
    api = GitHubAPI.from_env()
    api_recorder.fake.workflow_runs["drift.yml"] = [
        {"id": 1, "status": "completed", "conclusion": "success", "updated_at": "2026-11-01T00:00:00Z"},
        {"id": 2, "status": "completed", "conclusion": "failure", "updated_at": "2026-11-02T00:00:00Z"}]
    assert [r["id"] for r in api.workflow_runs("drift.yml", status="success")] == [1]


class _Server:
    """A local HTTP server recording each request's path and headers; /go/<url> redirects (302) to <url>."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append((self.path, dict(self.headers)))
                if self.path.startswith("/go/"):
                    self.send_response(302)
                    self.send_header("Location", self.path[len("/go/"):])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_token_is_not_forwarded_on_a_redirect_to_another_port() -> None:
    api_server, other = _Server(), _Server()
    try:
        api = GitHubAPI(token="ghs_secret", repository="a/b", api_url=api_server.url, retries=1)
        # same origin: the token follows
        assert api.request("GET", f"go/{api_server.url}/repos/a/b/same") == {"ok": True}
        assert [h.get("Authorization") for _, h in api_server.seen] == ["Bearer ghs_secret"] * 2
        # another port on the same host: it does not
        assert api.request("GET", f"go/{other.url}/storage/blob") == {"ok": True}
        path, headers = other.seen[-1]
        assert path == "/storage/blob" and "Authorization" not in headers
        assert "ghs_secret" not in repr(other.seen)
        # nor to another host name for the same address
        host = other.url.replace("127.0.0.1", "localhost")
        assert api.request("GET", f"go/{host}/storage/blob2") == {"ok": True}
        assert other.seen[-1][0] == "/storage/blob2" and "Authorization" not in other.seen[-1][1]
    finally:
        api_server.close()
        other.close()
