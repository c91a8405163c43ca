"""Validating one dataset against a suite: GX runs, outcomes per expectation, the suite-level result.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datasets import rel
from ..errors import BadInput, InfraError
from ..sqlsource import SqlSource
from .suite import COLUMN_SUBJECT, Suite, columns_named, severity

MAX_UNEXPECTED = 5


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


def check_columns(suite: Suite, cols: set[str], where: str) -> None:
    """BadInput naming the first expectation that reads a column the data lacks."""
    missing = []
    for i, exp in enumerate(suite.expectations):
        if exp["type"] in COLUMN_SUBJECT:
            continue
        for col in columns_named(exp):
            if col not in cols:
                missing.append((i, col))
    if missing:
        i, col = missing[0]
        raise BadInput(f"expectations[{i}] ({suite.expectations[i]['type']}) names column {col!r}, which "
                       f"{where} lacks; its columns: {', '.join(sorted(cols))}", file=rel(suite.path),
                       line=suite.line(i))


def validate_dataset(ctx: Any, suite: Suite, path: Path, df: Any, fmt: str, asset_name: str) -> DatasetResult:
    check_columns(suite, {str(c) for c in df.columns}, rel(path))
    start = time.monotonic()
    asset = ctx.data_sources.add_pandas(f"leanops-{asset_name}").add_dataframe_asset(asset_name)
    batch_def = asset.add_batch_definition_whole_dataframe("all")

    def batch(columns: tuple[str, ...]) -> Any:
        # GX filters and copies the whole frame for each column metric: give it only the columns it reads
        return batch_def.get_batch(batch_parameters={"dataframe": df[list(columns)] if columns else df})

    gx_result, outcomes = _run(suite, fmt, batch, domains(suite.expectations))
    return DatasetResult(path=rel(path), rows=len(df), outcomes=outcomes, gx_result=gx_result,
                         seconds=time.monotonic() - start)


def validate_sql(ctx: Any, suite: Suite, source: SqlSource, fmt: str, asset_name: str) -> DatasetResult:
    """A table or query in PostgreSQL, validated in the database (GX's SQL datasource: each expectation is
    queries there; only aggregates and up to 20 unexpected values come back)."""
    columns, rows = source.describe()
    check_columns(suite, set(columns), source.display())
    start = time.monotonic()
    try:
        ds = ctx.data_sources.add_postgres(f"leanops-{asset_name}", connection_string=source.sqlalchemy_url())
        asset = (ds.add_table_asset(asset_name, table_name=source.table.split(".")[-1],
                                    schema_name=source.table.split(".")[0] if "." in source.table else None)
                 if source.table else ds.add_query_asset(asset_name, query=source.query))
        whole = asset.add_batch_definition_whole_table("all").get_batch()
    except Exception as exc:  # noqa: BLE001 - GX wraps the driver's errors in its own types
        raise InfraError(f"PostgreSQL at {source.server} (database {source.database}): GX could not read "
                         f"{source.what}: {' '.join(str(exc).split())[:200]}") from None
    # one pass over the whole suite: the database plans its own queries (no frame to cut per column)
    gx_result, outcomes = _run(suite, fmt, lambda _columns: whole, {(): list(range(len(suite.expectations)))})
    return DatasetResult(path=source.display(), rows=rows, outcomes=outcomes, gx_result=gx_result,
                         seconds=time.monotonic() - start)


def _run(suite: Suite, fmt: str, batch_for: Any, groups: dict[tuple[str, ...], list[int]]) -> tuple[Any, list[Outcome]]:
    """The suite's expectations, group by group, on the batch ``batch_for(columns)`` gives; the failures run
    again with SUMMARY when the first pass did not collect their values."""
    from great_expectations.core import ExpectationSuite

    results: list[Any] = [None] * len(suite.expectations)
    meta: dict[str, Any] = {}
    for columns, indexes in groups.items():
        batch = batch_for(columns)
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
        del batch
    gx_result = suite_result(suite, results, meta)
    outcomes = [_outcome(i, exp, res, suite) for i, (exp, res) in enumerate(zip(suite.expectations, results,
                                                                                    strict=True))]
    return gx_result, outcomes


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
