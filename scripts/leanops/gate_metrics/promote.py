"""``leanops gate-metrics promote``: the candidate becomes the champion, the old champion previous-champion.

Each promotion is recorded where it survives the aliases moving on: tags on the promoted version (who, when,
the commit, the workflow run, the metrics, the version it replaced), a tag on the replaced version (when and
by which version), and a bounded log of promotions on the registered model. The per-example predictions are
logged to the promoted version's run, so later gates can run the paired bootstrap against this champion.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any

from .. import gh, notify, tracking
from ..errors import BadInput
from .sources import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    TAG_METRICS,
    TAG_PREDICTIONS,
    TAG_PROMOTED_AT,
    Settings,
    candidate,
    default_branch,
    version_metrics,
)

TAG_LOG = "leanops.promotions"  # on the registered model: the last promotions, newest last
LOG_KEEP = 30


def _who() -> str:
    return os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "unknown"


def _run_url() -> str:
    if not os.environ.get("GITHUB_RUN_ID"):
        return ""
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    return f"{server}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"


def check_branch(any_branch: bool) -> None:
    """On a runner, promotion happens on the default branch only (after the merge, after a passing gate)."""
    if any_branch or not gh.on_runner():
        return
    default = default_branch()
    ref = os.environ.get("GITHUB_REF_NAME", "")
    if default and ref != default:
        raise BadInput(f"promote runs on the default branch ({default}), not on {ref!r}; expected a push to "
                       f"{default} after a passing gate (any-branch: true to override)")


def target_version(s: Settings, uri: str, rollback: bool) -> tracking.VersionDetail:
    if rollback:
        prev = tracking.alias_detail(uri, s.model_name, PREVIOUS)
        if prev is None:
            raise BadInput(f"rollback: no version of {s.model_name} has the alias {PREVIOUS}; nothing to roll back to")
        return prev
    if s.model_version:
        found = tracking.version_detail(uri, s.model_name, s.model_version)
        if found is None:
            raise BadInput(f"model-version: {s.model_name} has no version {s.model_version}")
        return found
    if s.run_id:
        store = tracking.reader(uri)
        versions = store.versions_of_run(s.model_name, s.run_id) if store is not None else []
        if versions:
            found = tracking.version_detail(uri, s.model_name, versions[-1].version)
            if found is not None:
                return found
        raise BadInput(f"run-id: no version of {s.model_name} was registered from run {s.run_id}")
    found = tracking.alias_detail(uri, s.model_name, CHALLENGER)
    if found is None:
        raise BadInput(f"model-version: missing, and no version of {s.model_name} has the alias {CHALLENGER}; "
                       "expected train-with-cache's model-version")
    return found


def metrics_to_record(s: Settings, uri: str, target: tracking.VersionDetail, rollback: bool) -> dict[str, float]:
    """What the version scored: recorded before (rollback), else the candidate's metrics plus fairness."""
    metrics = version_metrics(uri, target)
    if rollback:
        return metrics
    from .gate import fairness_of, predictions_path, read_table

    s.model_version = target.info.version
    side = candidate(s)
    metrics.update(side.metrics)
    path, shown = predictions_path(s)
    column = (s.section.get("fairness") or {}).get("sensitive-column")
    if column and path is not None and path.is_file():
        fairness_of(side, read_table(s, path, shown), column, [])
        metrics.update(side.metrics)
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def promote(s: Settings, *, rollback: bool, any_branch: bool) -> int:
    if not s.model_name:
        raise BadInput("model.name: missing; expected the registered model name in leanops.yml (or model-name)",
                       file=s.file)
    check_branch(any_branch)
    uri = s.tracking_uri()
    old = tracking.alias_detail(uri, s.model_name, CHAMPION)
    target = target_version(s, uri, rollback)
    version = target.info.version
    if old is not None and old.info.version == version:
        gh.notice(f"{s.model_name} version {version} is already the champion; nothing changed",
                  title="leanops gate-metrics promote")
        gh.set_outputs({"champion-version": version, "previous-champion-version": _alias_version(uri, s, PREVIOUS),
                        "promoted": False})
        return 0
    metrics = metrics_to_record(s, uri, target, rollback)
    client = tracking.mlflow_client(uri)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    commit = gh.commit_sha(s.root)
    previous = old.info.version if old is not None else ""
    tags = {
        TAG_PROMOTED_AT: now, "leanops.promoted_by": _who(), "leanops.promoted_commit": commit,
        "leanops.promoted_run_url": _run_url(), "leanops.previous_champion": previous,
        "leanops.promotion": "rollback" if rollback else "promote",
        TAG_METRICS: json.dumps(metrics, sort_keys=True),
    }
    with gh.group(f"promote {s.model_name} version {version}"):
        artifact = _log_predictions(s, uri, client, target)
        if artifact:
            tags[TAG_PREDICTIONS] = artifact
        for key, value in tags.items():
            tracking.mlflow_call(uri, f"tag version {version}", client.set_model_version_tag, s.model_name, version,
                                 key, value)
        if old is not None:
            for key, value in (("leanops.demoted_at", now), ("leanops.replaced_by", version)):
                tracking.mlflow_call(uri, f"tag version {previous}", client.set_model_version_tag, s.model_name,
                                     previous, key, value)
            tracking.mlflow_call(uri, f"alias {PREVIOUS}", client.set_registered_model_alias, s.model_name, PREVIOUS,
                                 previous)
        tracking.mlflow_call(uri, f"alias {CHAMPION}", client.set_registered_model_alias, s.model_name, CHAMPION,
                             version)
        _append_log(uri, client, s.model_name, {"version": version, "previous": previous, "at": now, "by": _who(),
                                                "commit": commit, "kind": tags["leanops.promotion"]})
        gh.step(f"alias {CHAMPION} -> version {version}" + (f", {PREVIOUS} -> version {previous}" if previous else ""))
    gh.set_outputs({"champion-version": version, "previous-champion-version": previous, "promoted": True})
    notify.promoted(s.model_name, version, previous, rollback=rollback)
    rows = [["champion", f"version {version}", ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))],
            [PREVIOUS, f"version {previous}" if previous else "none (the first champion)", ""]]
    verb = "rolled back to" if rollback else "promoted"
    gh.add_summary(f"## gate-metrics: {verb} {s.model_name} version {version}\n\n"
                   + gh.md_table(["alias", "version", "metrics"], rows)
                   + f"\nby {_who()} at {now}, commit `{commit[:12] or 'unknown'}`\n")
    return 0


def _alias_version(uri: str, s: Settings, alias: str) -> str:
    found = tracking.alias_detail(uri, s.model_name, alias)
    return found.info.version if found else ""


def _log_predictions(s: Settings, uri: str, client: Any, target: tracking.VersionDetail) -> str:
    """Log the per-example predictions to the version's run; returns the artifact path ("" when none)."""
    from .gate import predictions_path

    path, _ = predictions_path(s)
    if path is None or not path.is_file() or not target.info.run_id:
        return target.tags.get(TAG_PREDICTIONS, "")
    tracking.mlflow_call(uri, f"log {path.name} to run {target.info.run_id}", client.log_artifact, target.info.run_id,
                         str(path), "gate-metrics")
    return f"gate-metrics/{path.name}"


def _append_log(uri: str, client: Any, name: str, entry: dict[str, str]) -> None:
    model = tracking.mlflow_call(uri, f"registered model {name}", client.get_registered_model, name)
    try:
        log = json.loads((model.tags or {}).get(TAG_LOG) or "[]")
    except json.JSONDecodeError:
        log = []
    log = [*(log if isinstance(log, list) else []), entry][-LOG_KEEP:]
    tracking.mlflow_call(uri, f"tag model {name}", client.set_registered_model_tag, name, TAG_LOG, json.dumps(log))
