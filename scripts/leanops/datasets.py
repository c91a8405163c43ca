"""Reading datasets, as every capability does: paths and globs, CSV/TSV/Parquet through pyarrow, DVC pull.

Each problem is one ``BadInput`` naming the file (and the line of a ragged or undecodable CSV row).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import gh
from .errors import BadInput, InfraError


def rel(path: str | Path) -> str:
    """A path as a person (and an annotation) wants it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


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
            raise BadInput(f"not readable as Parquet: {short(exc)}", file=name) from None
    elif path.suffix.lower() in (".csv", ".tsv", ".txt") or suffix.endswith((".csv.gz", ".csv.bz2")):
        import pyarrow.csv as pcsv

        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
        except pa.ArrowInvalid as exc:
            line, why = find_bad_csv_line(path, delimiter)
            raise BadInput(why or f"not readable as CSV: {short(exc)}", file=name, line=line) from None
        binary = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        if binary:
            line, why = find_bad_csv_line(path, delimiter)
            raise BadInput(why or f"undecodable bytes in column {binary[0]!r}; expected UTF-8 text",
                           file=name, line=line)
    else:
        raise BadInput(f"unknown file type {path.suffix or '(none)'!r}; expected .csv, .tsv or .parquet", file=name)
    if table.num_rows == 0:
        raise BadInput("no data rows; expected a header and at least one row", file=name)
    return table.to_pandas(split_blocks=True, self_destruct=True)


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


def find_bad_csv_line(path: Path, delimiter: str) -> tuple[int | None, str | None]:
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


@contextlib.contextmanager
def _dvc_errors() -> Iterator[list[str]]:
    """DVC's own error lines (``failed to connect to s3 (...)``) kept for the kit's one line instead of printed
    before it: the list fills while the block runs."""
    import logging

    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(" ".join(record.getMessage().split()))

    logs = [logging.getLogger(name) for name in ("dvc", "dvc_data", "dvc_objects")]
    saved = [(log.handlers[:], log.propagate) for log in logs]
    for log in logs:
        log.handlers, log.propagate = [Keep(logging.ERROR)], False
    try:
        yield said
    finally:
        for log, (handlers, propagate) in zip(logs, saved, strict=True):
            log.handlers, log.propagate = handlers, propagate


def _describe_remote(config: Any) -> str:
    """The default remote as the error names it: name, URL without credentials, and its endpoint."""
    from urllib.parse import urlsplit, urlunsplit

    remotes = config.get("remote") or {}
    name = (config.get("core") or {}).get("remote") or next(iter(remotes), "")
    conf = remotes.get(name) or {}
    parts = urlsplit(str(conf.get("url", "")))
    url = urlunsplit(parts._replace(netloc=parts.hostname or "")) if parts.username or parts.password \
        else parts.geturl()
    endpoint = conf.get("endpointurl") or os.environ.get("AWS_ENDPOINT_URL", "") if url.startswith("s3://") else ""
    return f"'{name}' ({url}{f' at {endpoint}' if endpoint else ''})"


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
        raise BadInput(f"not a usable DVC project: {short(exc)}", file=rel(root / ".dvc" / "config")) from None
    with repo:
        if not (repo.config.get("remote") or {}):
            gh.step(f"dvc-pull: no DVC remote in {rel(root)}; using the files in the work tree")
            return
        with gh.group(f"dvc pull {' '.join(targets)}"), _dvc_errors() as said:
            try:
                stats = repo.pull(targets=[str(root / t) for t in targets])
            except Exception as exc:  # noqa: BLE001 - network, credentials, missing cache: one line
                cause = "; ".join(dict.fromkeys([*said, short(exc)]))
                raise InfraError(f"dvc pull {' '.join(targets)} failed in {rel(root)}: DVC remote "
                                 f"{_describe_remote(repo.config)}: {cause[:500]}") from None
            gh.step(f"dvc pull: {stats.get('fetched', 0)} file(s) fetched for {', '.join(targets)}")
