"""GitHub's REST API, reached through ``GITHUB_API_URL`` with the job's token (standard library only).

One client for every capability: sticky pull-request comments (gate-metrics), one deduplicated issue and
workflow dispatch (weekly-drift). Transient failures are retried with backoff; after that an InfraError
(exit 3) names the URL. HTTP errors that retrying cannot fix raise ``ApiError`` with the status, so that
callers can tell "the token may not comment here" (403 on a fork's pull request) from an outage.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import gh
from .errors import BadInput, InfraError

DEFAULT_API = "https://api.github.com"
RETRY_STATUSES = {429, 500, 502, 503, 504}
DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


class _SameOriginAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but send ``Authorization`` only back to the origin it was meant for.

    urllib copies every header to the redirected request, so a redirect to another host (or port, or
    scheme) would hand it the job's token: artifact and log downloads redirect to storage hosts.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


_OPENER = urllib.request.build_opener(_SameOriginAuthRedirect)


class ApiError(InfraError):
    """GitHub answered with an error status that a retry will not fix."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class GitHubAPI:
    token: str
    repository: str
    api_url: str = DEFAULT_API
    retries: int = 3
    backoff: float = 0.5
    timeout: float = 20.0

    @classmethod
    def from_env(cls, token: str | None = None, repository: str | None = None) -> GitHubAPI:
        """From the runner's environment: GITHUB_API_URL, GITHUB_REPOSITORY and a token."""
        tok = token or os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN") or ""
        repo = repository or os.environ.get("GITHUB_REPOSITORY") or ""
        if not repo or "/" not in repo:
            raise BadInput(f"GITHUB_REPOSITORY: expected owner/repo, got {repo!r}")
        if not tok:
            raise BadInput("GITHUB_TOKEN: expected a token (pass github.token to the action's `token` input)")
        gh.mask(tok)
        return cls(token=tok, repository=repo, api_url=os.environ.get("GITHUB_API_URL") or DEFAULT_API)

    # ------------------------------------------------------------------ transport

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        base = self.api_url.rstrip("/")
        full = path if path.startswith("http") else f"{base}/{path.lstrip('/')}"
        if params:
            full += ("&" if "?" in full else "?") + urllib.parse.urlencode(params)
        return full

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One API call; returns the decoded JSON (None for an empty body)."""
        data, _ = self._request(method, path, body, params)
        return data

    def _request(self, method: str, path: str, body: Any, params: dict[str, Any] | None) -> tuple[Any, Any]:
        url = self.url(path, params)
        payload = json.dumps(body).encode() if body is not None else None
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "leanops",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        last = ""
        for attempt in range(self.retries):
            req = urllib.request.Request(url, data=payload, headers=headers, method=method)  # noqa: S310
            try:
                with _OPENER.open(req, timeout=self.timeout) as resp:  # noqa: S310 - GITHUB_API_URL
                    raw = resp.read()
                    return (json.loads(raw) if raw.strip() else None), resp.headers
            except urllib.error.HTTPError as exc:
                detail = _message(exc)
                if exc.code not in RETRY_STATUSES:
                    raise ApiError(f"{method} {url}: HTTP {exc.code} {detail}", exc.code) from None
                last = f"HTTP {exc.code} {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = str(getattr(exc, "reason", exc))
            if attempt + 1 < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise InfraError(f"{method} {url}: unreachable after {self.retries} tries ({last})")

    def paginate(self, path: str, params: dict[str, Any] | None = None, limit: int = 1000) -> Iterator[Any]:
        """Items of a list endpoint, following ``Link: rel="next"``."""
        query = {"per_page": 100, **(params or {})}
        url: str | None = self.url(path, query)
        seen = 0
        while url and seen < limit:
            data, headers = self._request("GET", url, None, None)
            for item in data or []:
                seen += 1
                yield item
            url = _next_link(headers.get("Link", "") if headers else "")

    # ------------------------------------------------------------------ issues and comments

    def repo_path(self, suffix: str) -> str:
        return f"repos/{self.repository}/{suffix.lstrip('/')}"

    def open_issues(self, label: str) -> list[dict[str, Any]]:
        """Open issues (not pull requests) carrying ``label``, oldest first."""
        items = self.paginate(self.repo_path("issues"), {"state": "open", "labels": label, "sort": "created",
                                                          "direction": "asc"})
        return [i for i in items if "pull_request" not in i]

    def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        return dict(self.request("POST", self.repo_path("issues"), {"title": title, "body": body,
                                                                    "labels": labels}))

    def comment(self, number: int, body: str) -> dict[str, Any]:
        return dict(self.request("POST", self.repo_path(f"issues/{number}/comments"), {"body": body}))

    def upsert_issue(self, label: str, title: str, body: str, comment: str | None = None,
                     marker: str | None = None) -> tuple[int, bool]:
        """One open issue per label (and per ``marker``, a hidden comment its body holds: one issue per model
        folder): create it, or comment on the open one. Returns (number, created)."""
        existing = [i for i in self.open_issues(label) if marker is None or marker in (i.get("body") or "")]
        if existing:
            number = int(existing[0]["number"])
            self.comment(number, comment if comment is not None else body)
            return number, False
        return int(self.create_issue(title, body, [label])["number"]), True

    def sticky_comment(self, number: int, marker: str, body: str) -> tuple[int, bool]:
        """Create or update in place the one comment holding ``marker`` (a hidden HTML comment).

        Returns (comment id, created).
        """
        tag = f"<!-- {marker} -->"
        text = body if tag in body else f"{tag}\n{body}"
        for item in self.paginate(self.repo_path(f"issues/{number}/comments")):
            if tag in (item.get("body") or ""):
                self.request("PATCH", self.repo_path(f"issues/comments/{item['id']}"), {"body": text})
                return int(item["id"]), False
        created = self.request("POST", self.repo_path(f"issues/{number}/comments"), {"body": text})
        return int(created["id"]), True

    # ------------------------------------------------------------------ workflows

    def dispatch(self, workflow: str, ref: str, inputs: dict[str, str] | None = None) -> None:
        """``workflow_dispatch`` a workflow (file name or id); needs ``actions: write``."""
        path = self.repo_path(f"actions/workflows/{urllib.parse.quote(workflow, safe='')}/dispatches")
        self.request("POST", path, {"ref": ref, "inputs": inputs or {}})

    def workflow_runs(self, workflow: str, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        path = self.repo_path(f"actions/workflows/{urllib.parse.quote(workflow, safe='')}/runs")
        params = {"status": status} if status else {}
        data = self.request("GET", path, params={**params, "per_page": min(limit, 100)})
        return list((data or {}).get("workflow_runs", []))


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()
        return str(json.loads(raw).get("message", "")) if raw else ""
    except Exception:  # noqa: BLE001 - the status alone is enough
        return ""


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        section = part.split(";")
        if len(section) > 1 and 'rel="next"' in section[1]:
            return section[0].strip().strip("<>")
    return None
