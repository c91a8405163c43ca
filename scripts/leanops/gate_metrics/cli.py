"""``leanops gate-metrics``: the candidate model against thresholds and against the champion.

    leanops gate-metrics [run]   gate the candidate (metrics input or file, or an MLflow run/version) on the
                                 gates of leanops.yml and against the champion (MLflow alias champion, the
                                 base branch's metrics file, or a file); paired bootstrap when per-example
                                 predictions exist for both; fairness (fairlearn) and latency gates; report in
                                 the job summary and one sticky pull-request comment
    leanops gate-metrics promote move the alias champion to the candidate, previous-champion to the old one,
                                 and record who, when, the commit and the metrics on the versions

Exit codes: 0 passed, 1 a gate failed, 2 configuration error (unknown metric, contradictory thresholds),
3 tracking server or GitHub API unreachable after retries.
"""

from __future__ import annotations

import argparse
import os

from .. import config as cfgmod
from .. import tracking
from ..flags import add_flag, parse_bool
from .gate import SECTION, gate
from .sources import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(SECTION, help="gate the candidate model on thresholds and against the champion")
    p.add_argument("action", nargs="?", default=os.environ.get("LEANOPS_COMMAND") or "run",
                   choices=["run", "promote", "comment"],
                   help="run (default; env LEANOPS_COMMAND): gate the candidate; promote: make it the champion; "
                        "comment: post a report file as the pull request's sticky comment (a job that loads no model)")
    add_flag(p, "--working-directory", help="the folder holding leanops.yml (paths are relative to it)", default=".")
    add_flag(p, "--model-name", help="registered model name (default: model.name in leanops.yml)", default="")
    add_flag(p, "--model-version", default="",
             help="the candidate's registered version (train-with-cache's model-version; default: the alias "
                  "challenger when the champion comes from MLflow)")
    add_flag(p, "--run-id", default="", help="the candidate's MLflow run (train-with-cache's run-id)")
    add_flag(p, "--metrics", default="",
             help='the candidate\'s metrics as a JSON object (train-with-cache\'s metrics output), e.g. {"f1": 0.6}')
    add_flag(p, "--metrics-file", default="",
             help="the candidate's metrics file (default: leanops.yml, else the metrics of dvc.yaml)")
    add_flag(p, "--champion", default="", choices=["", "mlflow", "base-branch", "file"],
             help="where the champion comes from (default: leanops.yml, else mlflow)")
    add_flag(p, "--champion-file", default="", help="the champion's metrics file when champion is file")
    add_flag(p, "--base-ref", default="", help="the base branch when champion is base-branch (default: the PR's base)")
    add_flag(p, "--tracking-uri", default="",
             help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, leanops.yml, else the embedded local store)")
    add_flag(p, "--candidate-files", default="",
             help="a folder holding the candidate's predictions and evaluation rows at their leanops.yml paths "
                  "(train-with-cache's gate-inputs, the artifact leanops-gate-inputs)")
    add_flag(p, "--keep-champion", kind="bool", default=False,
             help="retraining (a schedule, refresh): a candidate that fails the gate against a champion ends the "
                  "run green with \"champion kept\" (output champion-kept), no alert")
    add_flag(p, "--comment", kind="bool", default=True, help="post the report as one sticky pull-request comment")
    add_flag(p, "--report-file", default="",
             help="comment: the gate's report.md (default: .leanops/gate-metrics/report.md in working-directory)")
    add_flag(p, "--rollback", kind="bool", default=False,
             help="promote: make previous-champion the champion again (instead of the candidate)")
    add_flag(p, "--any-branch", kind="bool", default=False,
             help="promote: allow promotion from a branch other than the default branch")
    p.set_defaults(func=run)


def settings(args: argparse.Namespace) -> Settings:
    root = cfgmod.enter(args.working_directory)
    cfg = cfgmod.load(args.config)
    section = cfg.section(SECTION)
    return Settings(
        root=root, cfg=cfg, section=section, model_name=args.model_name or cfg.model_name or "",
        champion=args.champion or str(section.get("champion") or "mlflow"), champion_file=args.champion_file,
        metrics_json=args.metrics, metrics_file=args.metrics_file, run_id=args.run_id.strip(),
        model_version=args.model_version.strip(), base_ref=args.base_ref, tracking_flag=args.tracking_uri,
        comment=parse_bool(args.comment), history=int(section.get("history") or 10),
        candidate_files=args.candidate_files, keep_champion=parse_bool(args.keep_champion),
    )


def run(args: argparse.Namespace) -> int:
    tracking.quiet_env()
    if args.action == "comment":
        from .report import comment_from_file

        return comment_from_file(cfgmod.enter(args.working_directory), args.report_file, parse_bool(args.comment))
    s = settings(args)
    if args.action == "promote":
        from .promote import promote

        return promote(s, rollback=parse_bool(args.rollback), any_branch=parse_bool(args.any_branch))
    return gate(s)
