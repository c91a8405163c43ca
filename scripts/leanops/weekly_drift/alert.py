"""Acting on drift: one deduplicated issue, the retrain dispatch, and the stale-check of the schedule.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from .. import gh
from ..errors import BadInput
from .detect import Outcome
from .report import issue_text
from .settings import DEFAULT_WORKFLOW, LABEL, Settings

REFRESH_INPUTS = {"refresh": "true"}  # the retraining brings fresh data in first (docs/retraining.md)


def dispatch(workflow: str, ref: str) -> None:
    """workflow_dispatch ``workflow`` on ``ref`` with refresh on; a refusal is a bad setting (exit 2), an outage
    exit 3. A workflow without a ``refresh`` input (a caller from before it) is dispatched without it, with a
    warning: its retraining then trains on the data of the commit."""
    from ..github_api import ApiError, GitHubAPI

    api = GitHubAPI.from_env()
    try:
        try:
            api.dispatch(workflow, ref, REFRESH_INPUTS)
        except ApiError as exc:
            if exc.status != 422:
                raise
            api.dispatch(workflow, ref)
            gh.warning(f"retrain-workflow {workflow}: it has no input refresh (HTTP 422 with it); dispatched "
                       "without: the retraining does not bring fresh data in (add the refresh input of "
                       "templates/workflows/ml-pipeline.yml)", title="leanops weekly-drift")
            gh.step(f"dispatched {workflow} on {ref}")
            return
    except ApiError as exc:
        if exc.status == 403:
            raise BadInput(f"retrain-workflow {workflow}: dispatch refused (HTTP 403); the job needs "
                           "permissions: actions: write") from None
        if exc.status in (404, 422):
            raise BadInput(f"retrain-workflow {workflow}: dispatch on {ref} failed (HTTP {exc.status}); expected a "
                           "workflow file with a workflow_dispatch trigger and no required inputs") from None
        raise
    gh.step(f"dispatched {workflow} on {ref} with refresh: true")


def alert(s: Settings, out: Outcome, reference: Any, current: Any) -> None:
    """On drift: dispatch the retraining (when set), then open or comment on the one issue."""
    failure: BadInput | None = None
    if s.retrain_workflow and s.dispatch:
        try:
            dispatch(s.retrain_workflow, s.retrain_ref)
            out.retrain_dispatched = True
        except BadInput as exc:  # still tell people about the drift, then fail
            failure = exc
    if s.open_issue:
        from ..github_api import GitHubAPI

        title, body, comment = issue_text(s, out, reference, current)
        out.issue_number, out.issue_created = GitHubAPI.from_env().upsert_issue(
            LABEL, title, body, comment, marker=body.partition("\n")[0])  # its first line: the folder's marker
        gh.step(f"issue #{out.issue_number} {'opened' if out.issue_created else 'commented'} ({LABEL})")
    if failure:
        raise failure


def workflow_file() -> str:
    """The running workflow's file name from GITHUB_WORKFLOW_REF (owner/repo/.github/workflows/F@ref)."""
    ref = os.environ.get("GITHUB_WORKFLOW_REF", "")
    path = ref.split("@", 1)[0]
    if "/.github/workflows/" in path:
        return path.rsplit("/", 1)[-1]
    return DEFAULT_WORKFLOW


def _when(run: dict[str, Any], *keys: str) -> dt.datetime | None:
    for key in keys:
        value = run.get(key)
        if value:
            try:
                return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def _age(delta: dt.timedelta) -> str:
    if delta.days >= 1:
        return f"{delta.days} day{'s' if delta.days != 1 else ''}"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"
