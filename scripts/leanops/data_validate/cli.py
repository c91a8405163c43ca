"""``leanops data-validate``: Great Expectations 1.x suites gate the pipeline.

    leanops data-validate [--data PATHS] [--suite SUITE.json] [--dvc-pull true|false] ...
    leanops data-validate init DATA --suite SUITE.json [--force]

Datasets (CSV or Parquet; paths or globs) are read with pyarrow and validated with an ephemeral GX
context against a suite kept in the repository in GX's own suite JSON format; no GX project folder is
needed. A PostgreSQL table or query (``data: postgresql://USER@HOST:PORT/DB`` with ``table:`` or ``query:`` in
leanops.yml, the password in ``PGPASSWORD``) is validated in the database through GX's SQL datasource. An
expectation whose ``meta.severity`` (or GX's own ``severity``) is ``warning`` or ``info`` is reported but does
not fail the check. Results go to the job summary, to annotations on the suite file,
to a JSON result file and to GX Data Docs HTML.

Speed: the whole suite runs first with ``BOOLEAN_ONLY`` (no unexpected-value lists); only the expectations
that failed run again with ``SUMMARY`` to show the observed value and up to five unexpected values.

Exit codes: 0 passed (warnings allowed), 1 an expectation failed, 2 bad input (a missing, empty, ragged
or undecodable data file, malformed suite JSON, an unknown expectation type, a column the data lacks),
3 infrastructure (``dvc pull`` failed, the database unreachable or its login refused).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config, gh
from ..datasets import dvc_pull, expand, read_table, rel
from ..errors import BadInput, CheckFailed
from ..flags import add_flag
from ..fsutil import atomic_write_json
from ..sqlsource import SqlSource, is_sql
from .profile import profile
from .report import annotate, build_data_docs, summary
from .suite import ephemeral_context, import_gx, load_suite
from .validate import DatasetResult, validate_dataset, validate_sql

NAME = "data-validate"
RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
DEFAULT_RESULT_FILE = "data-validate-report/result.json"
DEFAULT_DATA_DOCS = "data-validate-report/data-docs"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(NAME, help="validate datasets against Great Expectations suites (or `init` a suite)")
    add_flag(p, "--data", help="dataset paths or globs, CSV or Parquet, newline- or comma-separated, or one "
             "postgresql://USER@HOST:PORT/DB URL (table or query in leanops.yml, password in PGPASSWORD) "
             "(default: data-validate.data in leanops.yml)")
    add_flag(p, "--suite", help="GX suite JSON (default: data-validate.suite in leanops.yml)")
    add_flag(p, "--dvc-pull", kind="bool", default=None,
             help="pull DVC-tracked datasets first when the DVC project has a remote (unset: "
             "data-validate.dvc-pull in leanops.yml, else true)")
    add_flag(p, "--result-format", choices=list(RESULT_FORMATS),
             help="GX result format of the first pass (failures always get SUMMARY); default BOOLEAN_ONLY")
    add_flag(p, "--result-file", help=f"where to write the JSON result (default {DEFAULT_RESULT_FILE})")
    add_flag(p, "--data-docs", help=f"folder for the GX Data Docs site (default {DEFAULT_DATA_DOCS}); "
             "'false' skips it")
    p.set_defaults(func=run)
    inner = p.add_subparsers(dest="data_validate_command", metavar="init")
    init = inner.add_parser("init", help="profile a dataset and write a starter suite for review")
    init.add_argument("dataset", metavar="DATA", help="a CSV or Parquet file to profile")
    init.add_argument("--suite", dest="suite", default=None,
                      help="where to write the suite (default: data-validate.suite in leanops.yml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing suite")
    init.add_argument("--margin", type=float, default=0.1,
                      help="widen numeric ranges by this share of the observed range (default 0.1)")
    init.add_argument("--max-categories", type=int, default=20,
                      help="columns with at most this many distinct values get an allowed set (default 20)")
    init.set_defaults(func=run_init)


@dataclass
class Settings:
    data: list[str]
    sql: SqlSource | None  # data: postgresql://... with table or query (leanops.yml)
    suite: Path
    dvc_pull: bool
    result_format: str
    result_file: Path
    data_docs: Path | None


def settings(args: argparse.Namespace) -> Settings:
    """CLI flags (and their LEANOPS_* variables) override leanops.yml, which overrides the defaults.

    Paths from flags are relative to the working directory; paths from the file to the file's folder.
    """
    cfg = config.load(args.config)
    section = cfg.section(NAME)

    def pick(flag_value: Any, key: str) -> tuple[Any, Path]:
        if flag_value not in (None, ""):
            return flag_value, Path.cwd()
        return section.get(key), cfg.root

    data, data_base = pick(args.data, "data")
    patterns = config.split_list(data)
    if not patterns:
        raise BadInput(f"no dataset: pass --data (input data) or set data-validate.data in {cfg.where(NAME)}")
    suite, suite_base = pick(args.suite, "suite")
    if not suite:
        raise BadInput(f"no suite: pass --suite (input suite) or set data-validate.suite in {cfg.where(NAME)}")
    fmt = args.result_format or section.get("result-format") or "BOOLEAN_ONLY"
    result_file, rf_base = pick(args.result_file, "result-file")
    docs, docs_base = pick(args.data_docs, "data-docs")
    docs_path: Path | None = docs_base / (docs or DEFAULT_DATA_DOCS)
    if docs is False or str(docs).strip().lower() in ("false", "off", "no"):
        docs_path = None
    dvc_pull = args.dvc_pull if args.dvc_pull is not None else bool(section.get("dvc-pull", True))
    sql = None
    if any(is_sql(p) for p in patterns):
        if len(patterns) > 1:
            raise BadInput(f"data: a database URL is the only dataset of a run (got {len(patterns)} entries); "
                           "validate files and a table in two steps", file=cfg.where(NAME))
        sql = SqlSource.parse(patterns[0], table=section.get("table"), query=section.get("query"),
                              where=cfg.where(NAME), keys=("data-validate.table", "data-validate.query"))
    return Settings(
        data=[] if sql else [str(data_base / p) if not os.path.isabs(p) else p for p in patterns],
        sql=sql,
        suite=suite_base / suite,
        dvc_pull=dvc_pull and sql is None,
        result_format=fmt,
        result_file=(rf_base / (result_file or DEFAULT_RESULT_FILE)).resolve(),
        data_docs=docs_path.resolve() if docs_path else None,
    )


def run(args: argparse.Namespace) -> int:
    s = settings(args)
    gx = import_gx()
    suite = load_suite(s.suite, gx)
    if s.dvc_pull:
        dvc_pull(s.data)
    files = expand(s.data)
    ctx = ephemeral_context(gx)
    results: list[DatasetResult] = []
    if s.sql is not None:
        with gh.group(f"data-validate {s.sql.display()} against {rel(s.suite)} (in the database)"):
            res = validate_sql(ctx, suite, s.sql, s.result_format, "0-sql")
            gh.step(f"{len(res.outcomes)} expectations on {res.rows:,} rows in {res.seconds:.2f}s: {res.passed} "
                    f"passed, {len(res.failed)} failed, {len(res.warnings)} warning(s)")
        results.append(res)
    for i, path in enumerate(files):
        with gh.group(f"data-validate {rel(path)} against {rel(s.suite)}"):
            t0 = time.monotonic()
            df = read_table(path)
            gh.step(f"read {len(df):,} rows x {len(df.columns)} columns in {time.monotonic() - t0:.2f}s")
            res = validate_dataset(ctx, suite, path, df, s.result_format, f"{i}-{path.name}")
            del df
            gh.step(f"{len(res.outcomes)} expectations in {res.seconds:.2f}s: {res.passed} passed, "
                    f"{len(res.failed)} failed, {len(res.warnings)} warning(s)")
        results.append(res)
    if s.data_docs:
        with gh.group(f"GX Data Docs -> {rel(s.data_docs)}"):
            build_data_docs(ctx, suite, results, s.data_docs)
    evaluated = sum(len(r.outcomes) for r in results)
    failed = sum(len(r.failed) for r in results)
    warnings = sum(len(r.warnings) for r in results)
    doc = {
        "success": failed == 0, "evaluated": evaluated, "failed": failed, "warnings": warnings,
        "suite": rel(s.suite), "result_format": s.result_format,
        "data_docs": str(s.data_docs / "index.html") if s.data_docs else None,
        "datasets": [{"path": r.path, "rows": r.rows, "evaluated": len(r.outcomes), "passed": r.passed,
                      "failed": len(r.failed), "warnings": len(r.warnings), "seconds": round(r.seconds, 3),
                      "results": [o.to_json() for o in r.outcomes]} for r in results],
    }
    atomic_write_json(s.result_file, doc)
    gh.add_summary(summary(suite, results, s.data_docs))
    annotate(suite, results)
    gh.set_outputs({"success": failed == 0, "evaluated": evaluated, "failed": failed, "warnings": warnings,
                    "result-file": str(s.result_file), "data-docs": str(s.data_docs) if s.data_docs else ""})
    if failed:
        raise CheckFailed(f"{failed} expectation(s) of {rel(s.suite)} failed on {sum(bool(r.failed) for r in results)}"
                          f" of {len(results)} dataset(s); see the job summary and {rel(s.result_file)}")
    gh.step(f"data-validate: {evaluated} expectations evaluated on {len(results)} dataset(s), none failed"
            + (f" ({warnings} warning(s))" if warnings else ""))
    return 0


def run_init(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    suite_arg = args.suite or cfg.section(NAME).get("suite")
    if not suite_arg:
        raise BadInput(f"no suite path: pass --suite PATH or set data-validate.suite in {cfg.where(NAME)}")
    suite_path = Path(suite_arg) if args.suite else cfg.root / suite_arg
    if suite_path.exists() and not args.force:
        raise BadInput("suite exists; refusing to overwrite it (pass --force to replace it)", file=rel(suite_path))
    if args.margin < 0 or args.max_categories < 0:
        raise BadInput("--margin and --max-categories: expected numbers >= 0")
    gx = import_gx()
    from great_expectations.core import ExpectationSuite

    data = Path(args.dataset)
    with gh.group(f"profiling {rel(data)}"):
        df = read_table(data)
        exps = profile(df, margin=args.margin, max_categories=args.max_categories)
    doc: dict[str, Any] = {
        "name": suite_path.stem,
        "expectations": exps,
        "meta": {"great_expectations_version": gx.__version__,
                 "leanops": {"profiled": rel(data), "rows": len(df), "columns": len(df.columns)}},
        "notes": f"Starter suite profiled from {rel(data)} by `leanops data-validate init`. Review each "
                 "expectation; set meta.severity to 'warning' for checks that should report without failing.",
    }
    ExpectationSuite(**doc)  # what we write must load in GX as it is
    atomic_write_json(suite_path, doc)
    gh.step(f"wrote {rel(suite_path)}: {len(exps)} expectations from {len(df):,} rows x {len(df.columns)} columns")
    gh.set_outputs({"suite": str(suite_path), "expectations": len(exps)})
    return 0
