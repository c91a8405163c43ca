"""The three commands: run (train or skip), key (the cache key), select (the best leg of a matrix).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import gh, tracking
from ..dvcproject import (
    Project,
    apply_overrides,
    has_remote,
    lock_digest,
)
from ..errors import BadInput
from .freshness import (
    NO_NEW_DATA,
    TAG_REFRESH,
    Refreshed,
    cache_key,
    champion_data,
    refresh,
    same_data,
    up_to_date,
)
from .metrics import read_metrics
from .registry import ALIAS, TAG_KEY, TAG_LOCK, Outcome, find_existing, log_and_register
from .report import finish, stage_gate_inputs, stage_refreshed, summary_refresh
from .repro import StageResult, dvc_transfer, reproduce, trusted_ref
from .settings import Settings

OUTPUT_NAMES = ("skipped", "run-id", "model-uri", "model-version", "metrics", "cache-key")


def cmd_key(s: Settings) -> int:
    info = cache_key(s)
    _, local = tracking.resolve_uri(s.tracking_uri, s.configured_uri, s.root)
    if local:  # the embedded store travels with the DVC cache, so versions go on counting
        info["cache-path"] += "\n" + str((s.root / tracking.LOCAL_STORE).resolve())
    gh.set_outputs(info)
    gh.set_output("tracking", "local" if local else "server")
    gh.set_output("store-path", str((s.root / tracking.LOCAL_STORE).resolve()) if local else "")
    gh.step(f"cache key {info['cache-key']}")
    return 0


def cmd_run(s: Settings) -> int:
    start = time.monotonic()
    if not s.model_name:
        raise BadInput("model.name: missing; expected the registered model name in leanops.yml (or --model-name)",
                       file=str(s.cfg.path or "leanops.yml"))
    if not s.model_path:
        raise BadInput("model.path: missing; expected the model file the pipeline writes",
                       file=str(s.cfg.path or "leanops.yml"))
    project = Project.load(s.root)  # dvc.yaml and dvc.lock, read once for everything below
    key = cache_key(s, project)["cache-key"]
    uri, local = tracking.resolve_uri(s.tracking_uri, s.configured_uri, s.root)
    trusted, why = trusted_ref()
    if not trusted and not local:
        # a pull request writes nowhere: it trains into the embedded store, whatever credential it was handed
        gh.notice(f"tracking server {tracking.mask_uri(uri)} not used: {why}; training into the embedded store")
        uri, local = tracking.local_store_uri(s.root), True
    store = tracking.reader(uri)
    if store is not None:
        store.probe()  # unreachable: retries with backoff, then exit 3 before any work
    tracking.probe_database(uri)  # a postgresql:// (or mysql://) store written directly: answers, or exit 3
    apply_overrides(s.root, s.params_file, s.overrides)
    refreshed: list[Refreshed] = []
    if s.run_refresh:  # fresh data in first; the same data the champion was trained on: nothing to train
        refreshed = refresh(s, project)
        project = Project.load(s.root)  # the refresh rewrote dvc.lock (or the import's .dvc file)
        key = cache_key(s, project)["cache-key"]
        champion = champion_data(s, uri)
        if champion is not None and same_data(refreshed, champion[1]):
            return _no_new_data(s, uri, local, key, champion[0], refreshed, start)
        gh.step("refresh: new data (" + (f"not what version {champion[0]}, the champion, was trained on"
                                         if champion is not None else "no champion yet") + "): training goes on")
    fresh, reason = up_to_date(s, project)
    stages: list[StageResult] = []
    trained = False
    # A run that started from this same state (dvc.yaml, dvc.lock, params and every source dependency, all
    # in the cache key) already trained it: a fresh checkout whose outputs DVC cannot vouch for (a training
    # that is not bit for bit reproducible on another CPU) is not trained again.
    known = None
    if not fresh and all((s.root / d).exists() for d in project.source_deps()):
        known = find_existing(s, uri, {TAG_KEY: key}, trusted=trusted and not local)
    if fresh or known is not None:
        gh.step(f"nothing to reproduce: {reason}" if known is None else
                f"nothing to reproduce: run {known.run_id} was trained from this same state (cache key {key})")
        stages = [StageResult(n, "unchanged") for n in project.stages]
    else:
        gh.step(f"dvc decides: {reason}")
        remote = has_remote(s.root)
        if remote:
            dvc_transfer(s, "pull")
        stages = reproduce(s)
        trained = any(r.state == "ran" for r in stages)
        project = Project.load(s.root)  # dvc repro rewrote dvc.lock
    lock_hash = lock_digest(s.root)
    if known is None and not trained:
        known = find_existing(s, uri, {TAG_LOCK: lock_hash}, trusted=trusted and not local)
    outcome = known
    if outcome is None:
        metrics = read_metrics(s, project)
        push = False
        if trained:
            want = s.push == "true" or (s.push == "auto" and has_remote(s.root))
            push = want and trusted
            if want and not trusted:
                gh.notice(f"dvc push --run-cache skipped: {why}")
        run_id, version = log_and_register(s, project, uri, key, lock_hash, metrics, stages, trained, push,
                                           trusted=trusted and not local)
        if refreshed:  # where the data came from and when, on the run (leanops lineage reads it)
            client = tracking.mlflow_client(uri)
            tracking.mlflow_call(uri, f"tag run {run_id}", client.set_tag, run_id, TAG_REFRESH,
                                 json.dumps([r.as_json() for r in refreshed], sort_keys=True)[:4900])
        outcome = Outcome(skipped=not trained, run_id=run_id, model_uri=f"models:/{s.model_name}/{version}",
                          model_version=version, metrics=metrics, cache_key=key, tracking_uri=uri,
                          local_store=local)
    else:
        gh.step(f"skipped: nothing changed; run {outcome.run_id}, {outcome.model_uri}")
    outcome.cache_key = key
    outcome.local_store = local
    outcome.stages = stages
    gh.set_output("gate-inputs", stage_gate_inputs(s, project))
    finish(s, outcome, time.monotonic() - start, reason="" if trained else "nothing changed", refreshed=refreshed)
    return 0


def _no_new_data(s: Settings, uri: str, local: bool, key: str, version: str, refreshed: list[Refreshed],
                 start: float) -> int:
    """The refreshed data is what the champion was trained on: no training, outputs point at the champion."""
    run_id = ""
    detail = tracking.version_detail(uri, s.model_name, version)
    if detail is not None:
        run_id = detail.info.run_id
    metrics = (tracking.run_metrics(uri, run_id) or {}) if run_id else {}
    gh.notice(f"{NO_NEW_DATA}: the refreshed data has the hashes {s.model_name} version {version} (the champion) "
              "was trained on; nothing trained", title="leanops train-with-cache")
    outcome = Outcome(skipped=True, run_id=run_id, model_uri=f"models:/{s.model_name}/{version}",
                      model_version=version, metrics=metrics, cache_key=key, tracking_uri=uri, local_store=local,
                      stages=[StageResult(r.name, "refreshed") for r in refreshed])
    gh.set_output("gate-inputs", "")
    finish(s, outcome, time.monotonic() - start, reason=NO_NEW_DATA, refreshed=refreshed)
    return 0


def cmd_refresh(s: Settings) -> int:
    """Only the refresh (ml-pipeline's refresh job): run the refresh stages, compare with the champion's data;
    outputs skipped/reason and the refreshed files (at their paths, with dvc.lock) for the jobs that validate
    and train on exactly these bytes."""
    start = time.monotonic()
    if not s.model_name:
        raise BadInput("model.name: missing; expected the registered model name in leanops.yml (or --model-name)",
                       file=str(s.cfg.path or "leanops.yml"))
    project = Project.load(s.root)
    uri, local = tracking.resolve_uri(s.tracking_uri, s.configured_uri, s.root)
    store = tracking.reader(uri)
    if store is not None:
        store.probe()
    tracking.probe_database(uri)
    apply_overrides(s.root, s.params_file, s.overrides)
    refreshed = refresh(s, project)
    champion = champion_data(s, uri)
    same = champion is not None and same_data(refreshed, champion[1])
    folder = "" if same else stage_refreshed(s, refreshed)
    gh.set_outputs({"skipped": same, "reason": NO_NEW_DATA if same else "", "refreshed-files": folder})
    if same:
        assert champion is not None
        gh.notice(f"{NO_NEW_DATA}: the refreshed data has the hashes {s.model_name} version {champion[0]} (the "
                  "champion) was trained on; nothing to validate or train", title="leanops train-with-cache")
    else:
        gh.step("refresh: new data (" + (f"not what version {champion[0]}, the champion, was trained on"
                                         if champion is not None else "no champion yet") + ")")
    summary_refresh(refreshed, NO_NEW_DATA if same else "new data", time.monotonic() - start)
    return 0


def cmd_select(s: Settings, results_dir: str) -> int:
    """The best leg of a matrix by select-metric; its outputs become the workflow's."""
    if not s.select_metric:
        raise BadInput("select-metric: missing; expected train-with-cache.select-metric in leanops.yml")
    folder = Path(results_dir or ".")
    files = sorted(folder.rglob("result.json"))
    if not files:
        raise BadInput(f"results: no result.json under {folder}; expected the matrix legs' results")
    legs = []
    for f in files:
        try:
            legs.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise BadInput(f"not a result file ({exc})", file=str(f)) from None
    # another model folder's legs of the same run (the root's artifact pattern also matches theirs): not ours
    # (the suffix, not a path: off a runner it is "" however the legs' folders are named)
    here = gh.artifact_suffix(s.root)
    legs = [leg for leg in legs if leg.get("artifact-suffix", here) == here]
    if not legs:
        raise BadInput(f"results: no result.json of {gh.workspace_path(s.root)} under {folder}; expected the "
                       "matrix legs' results")
    scored = [leg for leg in legs if s.select_metric in (leg.get("metrics") or {})]
    if not scored:
        raise BadInput(f"select-metric: no leg reported {s.select_metric!r}; "
                       f"metrics seen: {', '.join(sorted({k for leg in legs for k in leg.get('metrics') or {}}))}")
    sign = 1 if s.select_direction == "higher" else -1
    best = max(scored, key=lambda leg: sign * float(leg["metrics"][s.select_metric]))
    uri = os.environ.get("MLFLOW_TRACKING_URI") or s.tracking_uri or s.configured_uri or ""
    store = tracking.reader(uri) if uri else None
    trusted, why = trusted_ref()
    if isinstance(store, tracking.RestReader) and best.get("model-version") and not trusted:
        gh.notice(f"alias {ALIAS} not moved on the tracking server: {why}")
    elif isinstance(store, tracking.RestReader) and best.get("model-version"):
        store.set_alias(s.model_name, ALIAS, str(best["model-version"]))
        gh.step(f"alias {ALIAS} -> {s.model_name} version {best['model-version']}")
    gh.set_outputs({k: best.get(k, "") if k != "metrics" else json.dumps(best.get("metrics") or {}, indent=2,
                                                                          sort_keys=True) for k in OUTPUT_NAMES})
    rows = [[json.dumps(leg.get("param-overrides") or {}), leg.get("model-version", ""),
             f"{float(leg['metrics'][s.select_metric]):.6g}" if leg in scored else "-",
             "best" if leg is best else ""] for leg in legs]
    gh.add_summary(f"## train-with-cache: best of {len(legs)} by {s.select_metric} ({s.select_direction})\n\n"
                   + gh.md_table(["param-overrides", "version", s.select_metric, ""], rows))
    return 0
