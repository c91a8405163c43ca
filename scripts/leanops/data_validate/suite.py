"""Great Expectations suites: loading (with the line of each expectation), severities and the columns each names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datasets import rel
from ..errors import BadInput

WARNING_SEVERITIES = ("warning", "warn", "info")
# kwargs that name a column of the data (a missing one is bad input, not a failed check)
COLUMN_KWARGS = ("column", "column_A", "column_B")
COLUMN_LIST_KWARGS = ("column_list",)
# expectations about the set of columns itself: a missing column is their subject, so it fails the check
COLUMN_SUBJECT = ("expect_column_to_exist",)


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
