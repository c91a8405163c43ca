"""What a person reads: the job summary, annotations on the suite file and GX Data Docs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .. import gh
from ..datasets import rel
from ..fsutil import atomic_dir
from .suite import Suite
from .validate import DatasetResult


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
            # a database's table or query: only word characters in the page's file name
            ident = re.sub(r"[^\w.-]+", "_", res.path) if "://" in res.path else res.path.replace("/", "__")
            key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
                                             run_id=run_id, batch_identifier=ident)
            ctx.validation_results_store.set(key, res.gx_result)
        ctx.build_data_docs(site_names=["leanops"])
        for big in ("glossary_scroller.gif", "validation_failed_unexpected_values.gif", "iterative-dev-loop.png"):
            (tmp / "static" / "images" / big).unlink(missing_ok=True)  # only the how-to buttons show these


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
