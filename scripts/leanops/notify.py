"""Optional notifications: one short message to a Slack-compatible webhook for the events a team acts on.

The webhook URL comes from ``LEANOPS_WEBHOOK_URL`` (a repository secret the reusable workflows pass as step
env). Without it nothing is sent. A message is one JSON object ``{"text": ...}`` (Slack's incoming webhooks,
Mattermost, Rocket.Chat, Teams' workflow webhooks and Discord's ``/slack`` endpoint all take it). Delivery
never fails the job: an unreachable or refusing endpoint is a warning.

Events: a failed gate, a promotion (or rollback), a rolled-back canary, detected drift.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

from . import gh

ENV = "LEANOPS_WEBHOOK_URL"
TIMEOUT = 10.0
ATTEMPTS = 2


def webhook_url() -> str:
    return os.environ.get(ENV, "").strip()


def run_link() -> str:
    """The link to this workflow run (empty outside Actions)."""
    run_id, repo = os.environ.get("GITHUB_RUN_ID"), os.environ.get("GITHUB_REPOSITORY")
    if not run_id or not repo:
        return ""
    return f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{repo}/actions/runs/{run_id}"


def _where() -> str:
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    link = run_link()
    return (f" in {repo}" if repo else "") + (f" <{link}|run>" if link else "")


def send(text: str, *, url: str | None = None, timeout: float = TIMEOUT) -> bool:
    """Post ``{"text": text}``; True when the endpoint took it. Never raises; without a URL sends nothing."""
    url = webhook_url() if url is None else url.strip()
    if not url:
        return False
    gh.mask(url)
    if not url.startswith(("https://", "http://")):
        gh.warning(f"notify: {ENV} is not an http(s) URL; no message sent", title="leanops notify")
        return False
    body = json.dumps({"text": text}).encode("utf-8")
    reason = ""
    for _ in range(ATTEMPTS):
        req = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - http(s) checked above
                                     headers={"Content-Type": "application/json", "User-Agent": "leanops"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                resp.read()
                gh.step("notify: message sent")
                return True
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # the endpoint refused this message; a retry would not change that
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = " ".join(str(getattr(exc, "reason", exc)).split())[:200] or type(exc).__name__
    gh.warning(f"notify: the webhook did not take the message ({reason}); continuing", title="leanops notify")
    return False


def _version(model: str, version: str | int | None) -> str:
    return f"{model} version {version}" if version not in (None, "") else model


def gate_failed(model: str, version: str | int | None, metrics: Sequence[str]) -> bool:
    return send(f":x: gate failed: {_version(model, version)} on {', '.join(metrics)}{_where()}")


def promoted(model: str, version: str | int, previous: str | int | None, *, rollback: bool = False) -> bool:
    verb = "rolled back to" if rollback else "promoted"
    before = f" (champion before: version {previous})" if previous not in (None, "") else " (the first champion)"
    return send(f":white_check_mark: {verb} {_version(model, version)}{before}{_where()}")


def canary_rolled_back(model: str, image: str, reason: str) -> bool:
    return send(f":rewind: canary rolled back: {model} {image}: {' '.join(reason.split())[:200]}{_where()}")


def drift_detected(share: float | None, drifted: Sequence[str], issue: int | None) -> bool:
    cols = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
    share_text = f"{share:.0%} of columns" if share is not None else "drift"
    return send(f":warning: drift detected: {share_text} ({cols})" + (f", issue #{issue}" if issue else "")
                + _where())


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("notify", help=f"post one message to the webhook in {ENV} (nothing without it)")
    p.add_argument("message", help="the text (Slack mrkdwn)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not webhook_url():
        gh.step(f"notify: {ENV} is not set; nothing sent")
        return 0
    send(args.message)
    return 0
