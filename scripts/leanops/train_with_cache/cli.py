"""``leanops train-with-cache``: run the DVC pipeline, record it in MLflow, skip the work when nothing changed.

    leanops train-with-cache [run]   dvc repro (optionally one target), log params/metrics/hashes/model to
                                     MLflow, register a version under model.name with the alias challenger
    leanops train-with-cache key     the actions/cache key, restore prefix and paths (outputs cache-key,
                                     restore-prefix, cache-path), from dvc.yaml, dvc.lock, the effective
                                     params and the hashes of the pipeline's source dependencies
    leanops train-with-cache select  the best of a matrix of results by the configured metric
    leanops train-with-cache refresh only the stages of train-with-cache.refresh (fresh data in) and the check
                                     against the champion's data (outputs skipped, reason, refreshed-files)

Nothing trains when no stage is out of date: a pure-Python check of ``dvc.lock`` against the work tree
(hashes, params, commands) answers without importing DVC or MLflow; when it cannot vouch, a run that started
from the same state (the cache key: dvc.yaml, dvc.lock, params, source dependencies) answers, else ``dvc
repro`` decides (stages restored from DVC's run-cache count as not run). Then no run and no version are created:
the outputs point at the run tagged with the same ``dvc.lock`` digest. A version is registered only after
everything is logged; a failure before the alias is set deletes the version and marks the run FAILED.
"""

from __future__ import annotations

import argparse

from .. import tracking
from ..flags import add_flag
from .commands import cmd_key, cmd_refresh, cmd_run, cmd_select
from .settings import SECTION, settings


def _add_common(p: argparse.ArgumentParser) -> None:
    add_flag(p, "--working-directory", help="the DVC project (where dvc.yaml and leanops.yml are)", default=".")
    add_flag(p, "--target", help="one dvc.yaml stage (or path) to reproduce; empty: the whole pipeline", default="")
    add_flag(p, "--param-overrides", default="",
             help='JSON object of params to set before the run, e.g. {"train.C": 0.5}')
    add_flag(p, "--params", default="", help="the params file (default: leanops.yml, else params.yaml)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(SECTION, help="run the DVC pipeline with caching and record it in MLflow")
    p.add_argument("action", nargs="?", default="run", choices=["run", "key", "select", "refresh"],
                   help="run (default), key (the cache key), select (best of a matrix), refresh (only the refresh "
                        "stages and the no-new-data check)")
    _add_common(p)
    add_flag(p, "--model-name", help="registered model name (default: model.name in leanops.yml)", default="")
    add_flag(p, "--experiment", help="MLflow experiment (default: leanops.yml, else the model name)", default="")
    add_flag(p, "--metrics", default="",
             help="metrics files, comma/newline-separated (default: leanops.yml, else dvc.yaml's metrics)")
    add_flag(p, "--tracking-uri", default="",
             help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, leanops.yml, else the embedded local store)")
    add_flag(p, "--push", default="", choices=["auto", "true", "false"],
             help="dvc push --run-cache after training: auto (default) = when a remote exists; never from forks")
    add_flag(p, "--select-metric", default="", help="metric that picks the best of a matrix (default: leanops.yml)")
    add_flag(p, "--select-direction", default="", help="higher or lower (default: leanops.yml, else higher)")
    add_flag(p, "--batch", default="", help="tag shared by the legs of one matrix (leanops.batch)")
    add_flag(p, "--results", default="", help="select: folder of result.json files of the matrix legs")
    add_flag(p, "--refresh", kind="bool", default=False,
             help="run the stages of train-with-cache.refresh first (dvc update for imports, dvc repro -f -s for "
                  "stages); when they bring the data the champion was trained on: no new data, nothing trained")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tracking.quiet_env()
    s = settings(args)
    if args.action == "key":
        return cmd_key(s)
    if args.action == "select":
        return cmd_select(s, args.results)
    if args.action == "refresh":
        return cmd_refresh(s)
    return cmd_run(s)
