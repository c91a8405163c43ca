"""A local stand-in for GitHub's REST API that records every request (tests and `make demo`).

It keeps issues, pull-request comments and workflow dispatches in memory, speaks just enough of the
API for leanops (issues, comments, dispatches, workflow runs, pagination by Link headers), and can be
told to fail (e.g. 403 on comments, as for a fork's pull request, or 5xx a few times to test retries).

    python tests/api_recorder.py --port 8765 --log requests.jsonl    # standalone, for act runs
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeGitHub:
    requests: list[Recorded] = field(default_factory=list)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    workflow_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    forbid_comments: bool = False
    fail_next: list[int] = field(default_factory=list)
    log: Path | None = None
    _next: int = 1
    _next_comment: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_pull_request(self, number: int | None = None, title: str = "PR") -> int:
        with self.lock:
            n = number or self._next
            self._next = max(self._next, n + 1)
            self.issues[n] = {"number": n, "title": title, "body": "", "state": "open", "labels": [],
                              "pull_request": {"url": f"/pulls/{n}"}}
            return n

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issue"] == number]

    # the API -------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if self.fail_next:
            return self.fail_next.pop(0), {"message": "injected failure"}, {}
        m = re.match(r"^/repos/([^/]+)/([^/]+)/(.*)$", path)
        if not m:
            return 404, {"message": "Not Found"}, {}
        rest = m.group(3)
        with self.lock:
            if rest == "issues" and method == "GET":
                items = [i for i in self.issues.values() if _matches(i, query)]
                items.sort(key=lambda i: i["number"], reverse=query.get("direction") != "asc")
                return self._page(items, path, query)
            if rest == "issues" and method == "POST":
                n = self._next
                self._next += 1
                issue = {"number": n, "title": body["title"], "body": body.get("body", ""), "state": "open",
                         "labels": [{"name": name} for name in body.get("labels", [])]}
                self.issues[n] = issue
                return 201, issue, {}
            cm = re.match(r"^issues/(\d+)/comments$", rest)
            if cm:
                number = int(cm.group(1))
                if number not in self.issues:
                    return 404, {"message": "Not Found"}, {}
                if method == "GET":
                    return self._page(sorted(self.comments_on(number), key=lambda c: c["id"]), path, query)
                if self.forbid_comments:
                    return 403, {"message": "Resource not accessible by integration"}, {}
                cid = self._next_comment
                self._next_comment += 1
                comment = {"id": cid, "issue": number, "body": body["body"], "edits": 0}
                self.comments[cid] = comment
                return 201, comment, {}
            em = re.match(r"^issues/comments/(\d+)$", rest)
            if em and method == "PATCH":
                if self.forbid_comments:
                    return 403, {"message": "Resource not accessible by integration"}, {}
                comment = self.comments.get(int(em.group(1)))
                if comment is None:
                    return 404, {"message": "Not Found"}, {}
                comment["body"] = body["body"]
                comment["edits"] += 1
                return 200, comment, {}
            dm = re.match(r"^actions/workflows/([^/]+)/dispatches$", rest)
            if dm and method == "POST":
                self.dispatches.append({"workflow": urllib.parse.unquote(dm.group(1)), **body})
                return 204, None, {}
            rm = re.match(r"^actions/workflows/([^/]+)/runs$", rest)
            if rm and method == "GET":
                runs = self.workflow_runs.get(urllib.parse.unquote(rm.group(1)), [])
                if query.get("status"):
                    runs = [r for r in runs if query["status"] in (r.get("status"), r.get("conclusion"))]
                return 200, {"total_count": len(runs), "workflow_runs": runs}, {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, items: list[Any], path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        per = int(query.get("per_page", 30))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per: page * per]
        headers = {}
        if page * per < len(items):
            nxt = urllib.parse.urlencode({**query, "page": page + 1})
            headers["Link"] = f'<{self.base_url}{path}?{nxt}>; rel="next"'
        return 200, chunk, headers

    base_url: str = ""


def _matches(issue: dict[str, Any], query: dict[str, str]) -> bool:
    state = query.get("state", "open")
    if state != "all" and issue["state"] != state:
        return False
    wanted = [x for x in query.get("labels", "").split(",") if x]
    names = {label["name"] for label in issue["labels"]}
    return all(w in names for w in wanted)


def make_handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            rec = Recorded(self.command, parsed.path, query, body, {k: v for k, v in self.headers.items()})
            fake.requests.append(rec)
            if fake.log:
                with open(fake.log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"method": rec.method, "path": rec.path, "query": query,
                                         "body": body}) + "\n")
            if not (self.headers.get("Authorization") or "").startswith(("Bearer ", "token ")):
                status, payload, headers = 401, {"message": "Requires authentication"}, {}
            else:
                status, payload, headers = fake.handle(self.command, parsed.path, query, body)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return Handler


class Recorder:
    """A running FakeGitHub on 127.0.0.1 (``with Recorder() as rec: rec.url``)."""

    def __init__(self, port: int = 0, log: Path | None = None) -> None:
        self.fake = FakeGitHub(log=log)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(self.fake))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.fake.base_url = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    with Recorder(args.port, args.log) as rec:
        print(f"fake GitHub API on {rec.url}", flush=True)
        threading.Event().wait()
