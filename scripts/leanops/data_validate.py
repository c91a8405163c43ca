"""``leanops data-validate``: Great Expectations 1.x suites gate the pipeline.

    leanops data-validate [--data PATHS] [--suite SUITE.json] [--dvc-pull true|false] ...
    leanops data-validate init DATA --suite SUITE.json [--force]

Datasets (CSV or Parquet; paths or globs) are read with pyarrow and validated with an ephemeral GX
context against a suite kept in the repository in GX's own suite JSON format; no GX project folder is
needed. An expectation whose ``meta.severity`` (or GX's own ``severity``) is ``warning`` or ``info`` is
reported but does not fail the check. Results go to the job summary, to annotations on the suite file,
to a JSON result file and to GX Data Docs HTML.

Speed: the whole suite runs first with ``BOOLEAN_ONLY`` (no unexpected-value lists); only the expectations
that failed run again with ``SUMMARY`` to show the observed value and up to five unexpected values.

Exit codes: 0 passed (warnings allowed), 1 an expectation failed, 2 bad input (a missing, empty, ragged
or undecodable data file, malformed suite JSON, an unknown expectation type, a column the data lacks),
3 infrastructure (``dvc pull`` failed).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import json
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, gh
from .errors import BadInput, CheckFailed, InfraError
from .flags import add_flag
from .fsutil import atomic_dir, atomic_write_json

NAME = "data-validate"
RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
DEFAULT_RESULT_FILE = "data-validate-report/result.json"
DEFAULT_DATA_DOCS = "data-validate-report/data-docs"
WARNING_SEVERITIES = ("warning", "warn", "info")
MAX_UNEXPECTED = 5
# kwargs that name a column of the data (a missing one is bad input, not a failed check)
COLUMN_KWARGS = ("column", "column_A", "column_B")
COLUMN_LIST_KWARGS = ("column_list",)
# expectations about the set of columns itself: a missing column is their subject, so it fails the check
COLUMN_SUBJECT = ("expect_column_to_exist",)


# ---------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(NAME, help="validate datasets against Great Expectations suites (or `init` a suite)")
    add_flag(p, "--data", help="dataset paths or globs, CSV or Parquet, newline- or comma-separated "
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
    return Settings(
        data=[str(data_base / p) if not os.path.isabs(p) else p for p in patterns],
        suite=suite_base / suite,
        dvc_pull=dvc_pull,
        result_format=fmt,
        result_file=(rf_base / (result_file or DEFAULT_RESULT_FILE)).resolve(),
        data_docs=docs_path.resolve() if docs_path else None,
    )


def rel(path: str | Path) -> str:
    """A path as a person (and an annotation) wants it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


# ---------------------------------------------------------------------------- GX, quietly


def import_gx() -> Any:
    """Great Expectations with analytics off and its logger quiet (heavy: imported only when used)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
    import great_expectations as gx

    return gx


def ephemeral_context(gx: Any) -> Any:
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory batch (an md5 over the whole frame) only for its batch markers;
    # the verdict does not need it and it costs about as much as reading the file
    pandas_execution_engine.HASH_THRESHOLD = 0
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    for name, site in list((ctx.variables.data_docs_sites or {}).items()):
        # the default site of an ephemeral context is an empty temporary folder of its own: drop both
        ctx.delete_data_docs_site(name)
        base = ((site or {}).get("store_backend") or {}).get("base_directory")
        if base and Path(base).parent == Path(tempfile.gettempdir()):
            with contextlib.suppress(OSError):
                Path(base).rmdir()
    return ctx


# ---------------------------------------------------------------------------- the suite


@dataclass
class Suite:
    path: Path
    name: str
    raw: dict[str, Any]
    expectations: list[dict[str, Any]]
    lines: list[int | None]
    gx_suite: Any = None

    def line(self, index: int) -> int | None:
        return self.lines[index] if 0 <= index < len(self.lines) else None


def severity(exp: dict[str, Any]) -> str:
    meta = exp.get("meta") or {}
    value = str(meta.get("severity") or exp.get("severity") or "critical").lower()
    return "warning" if value in WARNING_SEVERITIES else "critical"


def _expectation_lines(text: str, expectations: list[Any]) -> list[int | None]:
    """The line of each expectation's ``"type"`` in the suite file, in order (None where unknown)."""
    start = text.find('"expectations"')
    pos = max(start, 0)
    out: list[int | None] = []
    for exp in expectations:
        kind = exp.get("type") if isinstance(exp, dict) else None
        m = None
        if isinstance(kind, str):
            m = re.compile(r'"type"\s*:\s*' + re.escape(json.dumps(kind))).search(text, pos)
        if m is None:
            out.append(None)
            continue
        out.append(text.count("\n", 0, m.start()) + 1)
        pos = m.end()
    return out


def load_suite(path: Path, gx: Any) -> Suite:
    """Read a GX suite JSON; every problem is one BadInput naming the file and line."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import get_expectation_impl

    name = rel(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("suite file not found; expected GX suite JSON (create one: leanops data-validate init "
                       f"DATA --suite {name})", file=name) from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text (byte {exc.start}); expected GX suite JSON", file=name) from None
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", file=name) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"malformed JSON: {exc.msg} at column {exc.colno}; expected GX suite JSON",
                       file=name, line=exc.lineno) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise BadInput('expected a GX suite: a JSON object with an "expectations" list', file=name, line=1)
    expectations = raw["expectations"]
    lines = _expectation_lines(text, expectations)
    for i, exp in enumerate(expectations):
        where = f"expectations[{i}]"
        if not isinstance(exp, dict) or not isinstance(exp.get("type"), str):
            raise BadInput(f'{where}: expected an object with a "type" string', file=name, line=lines[i])
        kind = exp["type"]
        try:
            get_expectation_impl(kind)
        except Exception:  # noqa: BLE001 - GX raises ExpectationNotFoundError
            raise BadInput(f"{where}: unknown expectation type {kind!r}", file=name, line=lines[i]) from None
        try:
            ExpectationConfiguration(**exp).to_domain_obj()
        except Exception as exc:  # noqa: BLE001 - pydantic or TypeError: a one-line reason
            raise BadInput(f"{where} ({kind}): invalid: {_first_error(exc)}", file=name, line=lines[i]) from None
    suite_name = raw.get("name") or path.stem
    try:
        gx_suite = ExpectationSuite(**{**raw, "name": suite_name})
    except Exception as exc:  # noqa: BLE001 - unknown top-level keys and the like
        raise BadInput(f"not a GX suite: {_first_error(exc)}", file=name, line=1) from None
    return Suite(path=path, name=suite_name, raw=raw, expectations=expectations, lines=lines, gx_suite=gx_suite)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(x) for x in first.get("loc", ()) if x != "__root__")
            return f"{loc}: {first.get('msg')}" if loc else str(first.get("msg"))
        except Exception:  # noqa: BLE001, S110 - fall back to the message
            pass
    text = " ".join(str(exc).split())
    return text[:200]


def columns_named(exp: dict[str, Any]) -> list[str]:
    kwargs = exp.get("kwargs") or {}
    out = [str(kwargs[k]) for k in COLUMN_KWARGS if isinstance(kwargs.get(k), str)]
    for k in COLUMN_LIST_KWARGS:
        if isinstance(kwargs.get(k), list):
            out += [str(c) for c in kwargs[k]]
    return out


# ---------------------------------------------------------------------------- the data


def expand(patterns: list[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
            if not matches:
                raise BadInput(f"no file matches the glob {rel(pattern)!r}; expected CSV or Parquet files")
            files += matches
        else:
            files.append(Path(pattern))
    unique: dict[Path, Path] = {}
    for f in files:  # a file named twice is read once, in its first place
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def read_table(path: Path) -> Any:
    """A pandas DataFrame read with pyarrow; each problem is one BadInput naming the file and row."""
    import pyarrow as pa

    name = rel(path)
    if not path.is_file():
        raise BadInput("data file not found; expected a CSV or Parquet file", file=name)
    if path.stat().st_size == 0:
        raise BadInput("empty file; expected a header and at least one row", file=name)
    suffix = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInput(f"not readable as Parquet: {_short(exc)}", file=name) from None
    elif path.suffix.lower() in (".csv", ".tsv", ".txt") or suffix.endswith((".csv.gz", ".csv.bz2")):
        import pyarrow.csv as pcsv

        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
        except pa.ArrowInvalid as exc:
            line, why = _find_bad_csv_line(path, delimiter)
            raise BadInput(why or f"not readable as CSV: {_short(exc)}", file=name, line=line) from None
        binary = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        if binary:
            line, why = _find_bad_csv_line(path, delimiter)
            raise BadInput(why or f"undecodable bytes in column {binary[0]!r}; expected UTF-8 text",
                           file=name, line=line)
    else:
        raise BadInput(f"unknown file type {path.suffix or '(none)'!r}; expected .csv, .tsv or .parquet", file=name)
    if table.num_rows == 0:
        raise BadInput("no data rows; expected a header and at least one row", file=name)
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _find_bad_csv_line(path: Path, delimiter: str) -> tuple[int | None, str | None]:
    """The first undecodable or ragged line (only on the error path: a second, slow scan)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, f"undecodable bytes (byte {exc.start} of the line is not UTF-8); expected UTF-8 text"
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        width = len(header or [])
        for row in reader:
            if row and len(row) != width:
                return reader.line_num, f"ragged row: {len(row)} fields; expected {width} like the header"
    return None, None


# ---------------------------------------------------------------------------- DVC


def dvc_targets(patterns: list[str]) -> tuple[Path | None, list[str]]:
    """The DVC project above the data and the paths in it that DVC tracks (a .dvc file or a dvc.lock out)."""
    roots: set[Path] = set()
    targets: list[str] = []
    for pattern in patterns:
        static = Path(pattern.split("*")[0].split("?")[0].split("[")[0] or ".").absolute()
        root = next((p for p in [static, *static.parents] if (p / ".dvc").is_dir()), None)
        if root is None:
            continue
        roots.add(root)
        for candidate in [static, *static.parents]:
            if candidate == root.parent:
                break
            if Path(str(candidate) + ".dvc").is_file():
                targets.append(str(candidate.relative_to(root)))
                break
            if _in_dvc_lock(root, candidate):
                targets.append(str(candidate.relative_to(root)))
                break
    if len(roots) != 1:
        return None, []
    return roots.pop(), sorted(set(targets))


def _in_dvc_lock(root: Path, candidate: Path) -> bool:
    lock = root / "dvc.lock"
    if not lock.is_file():
        return False
    try:
        rel_path = str(candidate.relative_to(root))
    except ValueError:
        return False
    return bool(re.search(r"(?m)^\s*-?\s*path:\s*['\"]?" + re.escape(rel_path) + r"['\"]?\s*$", lock.read_text()))


def dvc_pull(patterns: list[str]) -> None:
    """``dvc pull`` of the tracked datasets, in process (DVC's Python API), when the project has a remote."""
    root, targets = dvc_targets(patterns)
    if root is None or not targets:
        gh.step("dvc-pull: the data is not tracked by DVC; nothing to pull")
        return
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except Exception as exc:  # noqa: BLE001 - DVC raises its own errors for a broken project
        raise BadInput(f"not a usable DVC project: {_short(exc)}", file=rel(root / ".dvc" / "config")) from None
    with repo:
        if not (repo.config.get("remote") or {}):
            gh.step(f"dvc-pull: no DVC remote in {rel(root)}; using the files in the work tree")
            return
        with gh.group(f"dvc pull {' '.join(targets)}"):
            try:
                stats = repo.pull(targets=[str(root / t) for t in targets])
            except Exception as exc:  # noqa: BLE001 - network, credentials, missing cache: one line
                raise InfraError(f"dvc pull {' '.join(targets)} failed in {rel(root)}: {_short(exc)}") from None
            gh.step(f"dvc pull: {stats.get('fetched', 0)} file(s) fetched for {', '.join(targets)}")


# ---------------------------------------------------------------------------- validation


@dataclass
class Outcome:
    index: int
    type: str
    column: str
    severity: str
    success: bool
    line: int | None
    observed: str = ""
    unexpected: list[Any] = field(default_factory=list)
    unexpected_count: int | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "type": self.type, "column": self.column, "severity": self.severity,
            "success": self.success, "line": self.line, "observed": self.observed,
            "unexpected_values": self.unexpected, "unexpected_count": self.unexpected_count,
            "error": self.error, "result": self.result,
        }


@dataclass
class DatasetResult:
    path: str
    rows: int
    outcomes: list[Outcome]
    gx_result: Any = None
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "warning"]

    @property
    def passed(self) -> int:
        return sum(o.success for o in self.outcomes)


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars: bool_, int64, float64 -> Python
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def _outcome(index: int, exp: dict[str, Any], res: Any, suite: Suite) -> Outcome:
    kwargs = exp.get("kwargs") or {}
    column = kwargs.get("column") or ", ".join(str(c) for c in kwargs.get("column_list") or []) or (
        " / ".join(str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs) or "(table)")
    result = dict(res.result or {})
    info = res.exception_info or {}
    error = None
    if info.get("raised_exception") is True:
        error = info.get("exception_message")
    elif isinstance(info, dict) and info and "raised_exception" not in info:  # keyed by metric
        for item in info.values():
            if isinstance(item, dict) and item.get("raised_exception"):
                error = item.get("exception_message")
                break
    out = Outcome(index=index, type=exp["type"], column=str(column), severity=severity(exp),
                  success=bool(res.success), line=suite.line(index), error=error)
    if not out.success:
        out.result = _jsonable(result)
        out.unexpected_count = result.get("unexpected_count")
        values: list[Any] = []
        for v in result.get("partial_unexpected_list") or []:
            v = _jsonable(v)
            if v not in values:
                values.append(v)
            if len(values) == MAX_UNEXPECTED:
                break
        out.unexpected = values
        if error:
            out.observed = f"error: {' '.join(str(error).split())[:160]}"
        elif "observed_value" in result:
            out.observed = json.dumps(_jsonable(result["observed_value"]))[:160]
        elif result.get("unexpected_count") is not None:
            pct = result.get("unexpected_percent")
            out.observed = f"{result['unexpected_count']} unexpected" + (f" ({pct:.2f}%)" if pct is not None else "")
    return out


def validate_dataset(ctx: Any, suite: Suite, path: Path, df: Any, fmt: str, asset_name: str) -> DatasetResult:
    from great_expectations.core import ExpectationSuite

    missing = []
    cols = {str(c) for c in df.columns}
    for i, exp in enumerate(suite.expectations):
        if exp["type"] in COLUMN_SUBJECT:
            continue
        for col in columns_named(exp):
            if col not in cols:
                missing.append((i, col))
    if missing:
        i, col = missing[0]
        raise BadInput(f"expectations[{i}] ({suite.expectations[i]['type']}) names column {col!r}, which "
                       f"{rel(path)} lacks; its columns: {', '.join(sorted(cols))}", file=rel(suite.path),
                       line=suite.line(i))
    start = time.monotonic()
    asset = ctx.data_sources.add_pandas(f"leanops-{asset_name}").add_dataframe_asset(asset_name)
    batch_def = asset.add_batch_definition_whole_dataframe("all")
    results: list[Any] = [None] * len(suite.expectations)
    meta: dict[str, Any] = {}
    for columns, indexes in domains(suite.expectations).items():
        # GX filters and copies the whole frame for each column metric: give it only the columns it reads
        frame = df[list(columns)] if columns else df
        batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
        part = batch.validate(ExpectationSuite(name=suite.name, expectations=[suite.expectations[i] for i in indexes]),
                              result_format=fmt)
        if len(part.results) != len(indexes):
            raise InfraError(f"GX returned {len(part.results)} results for {len(indexes)} expectations")
        meta = meta or dict(part.meta or {})
        failed = [(i, j) for j, (i, r) in enumerate(zip(indexes, part.results, strict=True)) if not r.success]
        for i, r in zip(indexes, part.results, strict=True):
            results[i] = r
        if failed and fmt in ("BOOLEAN_ONLY", "BASIC"):
            # only the failures pay for observed values and unexpected values
            detail = batch.validate(ExpectationSuite(name=suite.name,
                                                     expectations=[suite.expectations[i] for i, _ in failed]),
                                    result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20})
            for (i, _), r in zip(failed, detail.results, strict=True):
                results[i] = r
        del frame
    gx_result = suite_result(suite, results, meta)
    outcomes = [_outcome(i, exp, res, suite) for i, (exp, res) in enumerate(zip(suite.expectations, results,
                                                                                    strict=True))]
    return DatasetResult(path=rel(path), rows=len(df), outcomes=outcomes, gx_result=gx_result,
                         seconds=time.monotonic() - start)


def domains(expectations: list[dict[str, Any]]) -> dict[tuple[str, ...], list[int]]:
    """Expectations grouped by the columns they read, in suite order; () is the whole table.

    Table-level expectations, ``expect_column_to_exist`` and any with a ``row_condition`` (which may read
    other columns) see the whole frame.
    """
    out: dict[tuple[str, ...], list[int]] = {}
    for i, exp in enumerate(expectations):
        kwargs = exp.get("kwargs") or {}
        cols: tuple[str, ...] = ()
        if exp["type"] not in COLUMN_SUBJECT and not kwargs.get("row_condition"):
            cols = tuple(dict.fromkeys(columns_named(exp)))
        out.setdefault(cols, []).append(i)
    return out


def suite_result(suite: Suite, results: list[Any], meta: dict[str, Any]) -> Any:
    """One GX suite validation result (for Data Docs) from the per-domain runs, in suite order."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.validator.validator import calc_validation_statistics

    stats = calc_validation_statistics(results)
    return ExpectationSuiteValidationResult(
        results=results, success=stats.success, suite_name=suite.name, meta=meta,
        statistics={"evaluated_expectations": stats.evaluated_expectations,
                    "successful_expectations": stats.successful_expectations,
                    "unsuccessful_expectations": stats.unsuccessful_expectations,
                    "success_percent": stats.success_percent})


def build_data_docs(ctx: Any, suite: Suite, results: list[DatasetResult], target: Path) -> None:
    """GX's own Data Docs site (index, suite page, one page per dataset), built aside and swapped in."""
    import datetime

    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    with atomic_dir(target) as tmp:
        ctx.add_data_docs_site("leanops", {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        ctx.suites.add(suite.gx_suite)
        run_id = RunIdentifier(run_name=os.environ.get("GITHUB_RUN_ID") or "leanops",
                               run_time=datetime.datetime.now(datetime.timezone.utc))
        for res in results:
            key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
                                             run_id=run_id, batch_identifier=res.path.replace("/", "__"))
            ctx.validation_results_store.set(key, res.gx_result)
        ctx.build_data_docs(site_names=["leanops"])
        for big in ("glossary_scroller.gif", "validation_failed_unexpected_values.gif", "iterative-dev-loop.png"):
            (tmp / "static" / "images" / big).unlink(missing_ok=True)  # only the how-to buttons show these


# ---------------------------------------------------------------------------- reporting


def _cell_values(values: list[Any]) -> str:
    return ", ".join("null" if v is None else json.dumps(v) if not isinstance(v, str) else v for v in values)


def summary(suite: Suite, results: list[DatasetResult], docs: Path | None) -> str:
    total = {"evaluated": 0, "passed": 0, "failed": 0, "warnings": 0}
    parts = [f"## data-validate: `{rel(suite.path)}`\n"]
    rows = []
    for res in results:
        total["evaluated"] += len(res.outcomes)
        total["passed"] += res.passed
        total["failed"] += len(res.failed)
        total["warnings"] += len(res.warnings)
        verdict = "❌ failed" if res.failed else ("⚠️ passed with warnings" if res.warnings else "✅ passed")
        rows.append([f"`{res.path}`", f"{res.rows:,}", len(res.outcomes), res.passed, len(res.failed),
                     len(res.warnings), verdict])
    parts.append(gh.md_table(["dataset", "rows", "evaluated", "passed", "failed", "warnings", "verdict"], rows))
    if total["evaluated"]:
        parts.append("```mermaid\npie showData title Expectations\n"
                     + "".join(f'    "{k}" : {total[k]}\n' for k in ("passed", "failed", "warnings") if total[k])
                     + "```\n")
    for res in results:
        bad = res.failed + res.warnings
        if not bad:
            continue
        parts.append(f"### `{res.path}`: {len(res.failed)} failed, {len(res.warnings)} warning(s)\n")
        parts.append(gh.md_table(
            ["severity", "column", "expectation", "observed", "unexpected values (up to 5)", "suite line"],
            [[o.severity, o.column, f"`{o.type}`", o.observed, _cell_values(o.unexpected), o.line or ""]
             for o in bad]))
    if docs:
        parts.append(f"GX Data Docs: `{rel(docs)}/index.html` (uploaded as an artifact by the reusable workflow).\n")
    return "\n".join(parts)


def annotate(suite: Suite, results: list[DatasetResult]) -> None:
    file = rel(suite.path)
    for res in results:
        for o in res.failed + res.warnings:
            where = f" on column {o.column}" if o.column != "(table)" else ""
            values = f"; unexpected: {_cell_values(o.unexpected)}" if o.unexpected else ""
            msg = f"{res.path}: {o.type}{where} failed; observed {o.observed or 'n/a'}{values}"
            level = gh.error if o.severity == "critical" else gh.warning
            level(msg, file=file, line=o.line, title=f"data-validate ({o.severity})")


# ---------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    s = settings(args)
    gx = import_gx()
    suite = load_suite(s.suite, gx)
    if s.dvc_pull:
        dvc_pull(s.data)
    files = expand(s.data)
    ctx = ephemeral_context(gx)
    results: list[DatasetResult] = []
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


# ---------------------------------------------------------------------------- init


def profile(df: Any, *, margin: float, max_categories: int) -> list[dict[str, Any]]:
    """A starter suite from one dataset: columns and types, nulls, ranges, allowed sets, keys, row count."""
    import pandas as pd

    rows = len(df)
    meta: dict[str, Any] = {}
    exps: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": [str(c) for c in df.columns], "exact_match": True}, "meta": dict(meta)},
        {"type": "expect_table_row_count_to_be_between",
         "kwargs": {"min_value": max(1, rows // 2), "max_value": rows * 2},
         "meta": {"note": f"{rows} rows when profiled; bounds are half and twice that"}},
    ]
    for name in df.columns:
        col = df[name]
        column = str(name)
        nulls = int(col.isna().sum())
        share = nulls / rows if rows else 0.0
        dtype = str(col.dtype)
        is_bool = pd.api.types.is_bool_dtype(col.dtype)
        is_int = pd.api.types.is_integer_dtype(col.dtype)
        is_float = pd.api.types.is_float_dtype(col.dtype)
        types = [dtype]
        if is_int:
            types = [dtype, "float64"]  # an integer column with a null reads as float64
        elif dtype == "object":
            types = ["str"]  # GX checks each value of an object column
        exps.append({"type": "expect_column_values_to_be_in_type_list",
                     "kwargs": {"column": column, "type_list": types}, "meta": dict(meta)})
        if nulls == 0:
            exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column},
                         "meta": dict(meta)})
        else:
            mostly = max(0.0, math.floor((1.0 - min(1.0, share * (1 + margin) + 0.01)) * 1000) / 1000)
            exps.append({"type": "expect_column_values_to_not_be_null",
                         "kwargs": {"column": column, "mostly": mostly},
                         "meta": {"note": f"{share:.2%} null when profiled"}})
        values = col.dropna()
        if values.empty:
            continue
        distinct = int(values.nunique())
        if (is_int or is_float) and not is_bool:
            lo, hi = float(values.min()), float(values.max())
            if is_int and distinct <= 2:
                exps.append({"type": "expect_column_values_to_be_in_set",
                             "kwargs": {"column": column, "value_set": sorted(int(v) for v in values.unique())},
                             "meta": dict(meta)})
            else:
                pad = (hi - lo) * margin if hi > lo else abs(hi) * margin or 1.0
                low, high = lo - pad, hi + pad
                if lo >= 0 > low:
                    low = 0.0  # a column that was never negative stays so
                if is_int:
                    low, high = float(math.floor(low)), float(math.ceil(high))
                exps.append({"type": "expect_column_values_to_be_between",
                             "kwargs": {"column": column, "min_value": _num(low, is_int),
                                        "max_value": _num(high, is_int)},
                             "meta": {"note": f"observed {_num(lo, is_int)} to {_num(hi, is_int)}; "
                                      f"widened by {margin:.0%} of the range"}})
        elif (is_bool or dtype in ("object", "string", "category")) and distinct <= max_categories and distinct < rows:
            exps.append({"type": "expect_column_values_to_be_in_set",
                         "kwargs": {"column": column, "value_set": sorted(_jsonable(v) for v in values.unique())},
                         "meta": dict(meta)})
        if nulls == 0 and distinct == rows and rows > 1 and (is_int or dtype == "object"):
            exps.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": column},
                         "meta": {"note": "unique when profiled: a key"}})
    return exps


def _num(value: float, is_int: bool) -> int | float:
    return int(value) if is_int else round(value, 6)


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
