"""The two datasets of a drift check, read into Arrow tables (never whole pandas frames).

Accepted files (a path, a glob, or several, comma- or newline-separated; DVC-tracked files that are
missing are pulled first):

- CSV (``.csv``, ``.tsv``, ``.csv.gz``) and Parquet (``.parquet``, ``.pq``);
- JSON lines (``.jsonl``, ``.ndjson``, ``.json``), one object per line, in any of three shapes:

  1. ``leanops serve --log-predictions``: ``{"ts": ..., "model_name": ..., "model_version": ...,
     "inputs": [{feature: value, ...}, ...], "predictions": [p, ...]}`` (one line per request, one
     record and one prediction per row);
  2. one record per line: ``{"inputs": {feature: value, ...}, "prediction": p}``;
  3. a flat record: ``{feature: value, ..., "prediction": p}`` (``prediction`` optional).

  Predictions become the column ``prediction`` (the ``prediction-column`` setting renames what is
  looked for in flat records and tables).

The reference defaults to the training data of the champion: the model version of ``model.name`` with
the MLflow alias ``champion``, whose training run recorded its data files as tags
``dvc.dep.PATH = MD5`` (``leanops train-with-cache``). The file is used as it is in the work tree when its
MD5 matches, else taken from the DVC cache, else read with DVC at the run's commit.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config, gh, tracking
from ..datasets import dvc_pull, expand, find_bad_csv_line, rel, short
from ..errors import BadInput, InfraError
from ..sqlsource import SqlSource

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz")
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + JSONL_SUFFIXES
EXPECTED = "expected CSV, Parquet or JSON lines"
LOG_METADATA = ("ts", "model_name", "model_version")
CHAMPION_ALIAS = "champion"
TAG_DEP = "dvc.dep."


@dataclass
class Data:
    """One side of the comparison."""

    role: str  # "reference" or "current"
    table: Any  # pyarrow.Table
    files: list[str] = field(default_factory=list)
    source: str = ""  # how it was found, for the summary

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(DATA_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


# ---------------------------------------------------------------------------- files


def resolve_files(patterns: list[str], role: str) -> list[Path]:
    """Paths and globs -> files; a missing DVC-tracked file is pulled first; BadInput names what is missing."""
    for pattern in patterns:
        if glob.has_magic(pattern) and not any(Path(m).is_file() for m in glob.glob(pattern, recursive=True)):
            raise BadInput(f"{role}: no file matches the glob {rel(pattern)!r}; {EXPECTED} files")
    missing = [p for p in patterns if not glob.has_magic(p) and not Path(p).exists()]
    if missing:
        dvc_pull(missing)  # a no-op unless they are DVC-tracked and the project has a remote
    files: list[Path] = []
    for path in expand(patterns):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _suffix(p) in DATA_SUFFIXES)
            if not inside:
                raise BadInput(f"{role}: no CSV, Parquet or JSON lines file in the folder", file=rel(path))
            files += inside
        elif not path.is_file():
            tracked = Path(str(path) + ".dvc").is_file()
            hint = " (DVC-tracked: no DVC remote to pull it from, or the pull did not bring it)" if tracked else ""
            raise BadInput(f"{role}: file not found{hint}; {EXPECTED}", file=rel(path))
        else:
            files.append(path)
    return files


def read_file(path: Path, prediction_column: str = "prediction") -> Any:
    """One file as an Arrow table; every problem is one BadInput naming the file (and line when known)."""
    import pyarrow as pa

    name = rel(path)
    if path.stat().st_size == 0:
        raise BadInput("empty file; expected a header and at least one row", file=name)
    suffix = _suffix(path)
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInput(f"not readable as Parquet: {short(exc)}", file=name) from None
    elif suffix in CSV_SUFFIXES:
        import pyarrow.csv as pcsv

        delimiter = "\t" if suffix.startswith(".tsv") else ","
        try:
            table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
        except pa.ArrowInvalid as exc:
            line, why = find_bad_csv_line(path, delimiter) if not suffix.endswith((".gz", ".bz2")) else (None, None)
            raise BadInput(why or f"not readable as CSV: {short(exc)}", file=name, line=line) from None
    elif suffix in JSONL_SUFFIXES:
        table = _read_jsonl(path)
        table = normalise_records(table, name, prediction_column)
    else:
        raise BadInput(f"unknown file type {path.suffix or '(none)'!r}; {EXPECTED} (.csv, .parquet, .jsonl)",
                       file=name)
    return table


def _read_jsonl(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.json as pj

    try:
        return pj.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # the slow path finds the line at fault, and copes with values that change type between lines
    import gzip

    opener: Any = gzip.open if path.name.endswith(".gz") else open
    rows: list[dict[str, Any]] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BadInput(f"not a JSON object per line: {short(exc)}", file=rel(path), line=number) from None
            if not isinstance(obj, dict):
                raise BadInput(f"expected a JSON object per line, got {type(obj).__name__}", file=rel(path),
                               line=number)
            rows.append(obj)
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BadInput(f"values of one key have different types across lines: {short(exc)}",
                       file=rel(path)) from None


def normalise_records(table: Any, name: str, prediction_column: str = "prediction") -> Any:
    """The three JSON-lines shapes -> one row per record, features as columns, predictions as ``prediction``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "inputs" not in table.column_names:
        return table
    inputs = table["inputs"]
    if inputs.null_count:  # flat records mixed with {"inputs": ...} lines: each part on its own
        has = pc.is_valid(inputs)
        nested = normalise_records(table.filter(has), name, prediction_column)
        flat = table.filter(pc.invert(has))
        flat = flat.select([c for c in flat.column_names if c not in ("inputs", "predictions", *LOG_METADATA)
                            and flat[c].null_count < flat.num_rows])
        return pa.concat_tables([nested, flat], promote_options="permissive")
    preds_name = next((c for c in ("predictions", "prediction") if c in table.column_names), None)
    if pa.types.is_list(inputs.type) or pa.types.is_large_list(inputs.type):
        records = pc.list_flatten(inputs)
        predictions = None
        if preds_name:
            preds = table[preds_name]
            if pa.types.is_list(preds.type) or pa.types.is_large_list(preds.type):
                if not pc.all(pc.equal(pc.list_value_length(inputs), pc.list_value_length(preds))).as_py():
                    raise BadInput("a line has a different number of inputs and predictions", file=name)
                predictions = pc.list_flatten(preds)
    elif pa.types.is_struct(inputs.type):
        records = inputs
        predictions = table[preds_name] if preds_name else None
    else:
        raise BadInput(f"\"inputs\" holds {inputs.type}; expected an object or a list of objects", file=name)
    if not pa.types.is_struct(records.type):
        raise BadInput("\"inputs\" holds something other than objects; expected {feature: value} records",
                       file=name)
    chunks = records.chunks if hasattr(records, "chunks") else [records]
    columns = {f.name: pa.chunked_array([c.field(i) for c in chunks], type=f.type)
               for i, f in enumerate(records.type)}
    if predictions is not None:
        if pa.types.is_nested(predictions.type):
            gh.notice(f"{name}: predictions are not scalars ({predictions.type}); no prediction drift")
        else:
            columns[prediction_column] = predictions
    return pa.table(columns)


def load(patterns: list[str], role: str, prediction_column: str = "prediction", source: str = "") -> Data:
    """Read and concatenate every file of one side."""
    import pyarrow as pa

    files = resolve_files(patterns, role)
    tables = [read_file(p, prediction_column) for p in files]
    if len(tables) == 1:
        table = tables[0]
    else:
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise BadInput(f"{role}: the files do not share column types: {short(exc)}") from None
    return Data(role=role, table=table, files=[rel(p) for p in files], source=source or ", ".join(patterns))


def load_sql(source: SqlSource, role: str) -> Data:
    """One side from a PostgreSQL table or query (the rows it selects: the query sets the window)."""
    return Data(role=role, table=source.read(), files=[source.display()], source=source.display())


# ---------------------------------------------------------------------------- the champion's training data


def _run_tags(store: Any, run_id: str) -> dict[str, str]:
    if isinstance(store, tracking.RestReader):
        run = store.request("GET", "runs/get", {"run_id": run_id}).get("run") or {}
        return {t["key"]: t["value"] for t in (run.get("data") or {}).get("tags") or []}
    if isinstance(store, tracking.SqliteReader):
        return {k: v for k, v in store._query("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))}
    return {}


def _tracking_uri(cfg: config.Config, root: Path) -> str | None:
    configured = (cfg.section("train-with-cache").get("tracking-uri") or "").strip()
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip() or configured
    if uri:
        tracking.mask_credentials(uri)
        return uri
    local = root / tracking.LOCAL_STORE / "mlflow.db"
    return tracking.local_store_uri(root) if local.is_file() else None


def champion_files(cfg: config.Config, root: Path) -> tuple[list[str], str]:
    """The champion's training data files (paths under ``root``) and a description of where they came from."""
    hint = f"set weekly-drift.reference in {cfg.where('weekly-drift')} (or the reference input)"
    name = cfg.model_name
    if not name:
        raise BadInput(f"no reference data: {hint}, or model.name for the champion's training data")
    uri = _tracking_uri(cfg, root)
    store = tracking.reader(uri) if uri else None
    if store is None:
        raise BadInput(f"no reference data: {hint}; without it the champion's training data is looked up in "
                       "MLflow, and no tracking server (MLFLOW_TRACKING_URI) or local store is configured")
    version = store.alias(name, CHAMPION_ALIAS)
    if version is None:
        raise BadInput(f"no reference data: {hint}; no version of {name} has the alias {CHAMPION_ALIAS} in "
                       f"{tracking.mask_uri(store.uri)}")
    tags = _run_tags(store, version.run_id)
    deps = {k[len(TAG_DEP):]: v for k, v in tags.items()
            if k.startswith(TAG_DEP) and _suffix(Path(k[len(TAG_DEP):])) in DATA_SUFFIXES}
    if not deps:
        raise BadInput(f"no reference data: {hint}; the training run {version.run_id} of {version.uri} "
                       "(alias champion) recorded no data file (dvc.dep.* tags from leanops train-with-cache)")
    commit = tags.get("mlflow.source.git.commit", "")
    files = [fetch_version(root, dep, md5, commit) for dep, md5 in sorted(deps.items())]
    return files, f"{version.uri} (champion): {', '.join(sorted(deps))}"


def fetch_version(root: Path, dep: str, md5: str, commit: str) -> str:
    """The file ``dep`` as it was when its MD5 was ``md5``: the work tree, the DVC cache, or DVC at ``commit``."""
    from ..dvcproject import dvc_cache_dir, md5_file

    path = root / dep
    if path.is_file() and md5_file(path) == md5:
        gh.step(f"reference {dep}: the work tree holds the champion's version (md5 {md5[:8]})")
        return str(path)
    cache = dvc_cache_dir(root)
    for candidate in (cache / "files" / "md5" / md5[:2] / md5[2:], cache / md5[:2] / md5[2:]):
        if candidate.is_file():
            gh.step(f"reference {dep}: the champion's version from the DVC cache (md5 {md5[:8]})")
            return _with_name(candidate, dep)
    if not commit:
        raise BadInput(f"reference {dep}: the champion's version (md5 {md5[:8]}) is neither in the work tree nor "
                       "in the DVC cache, and its training run recorded no commit; set weekly-drift.reference")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    import dvc.api

    target = Path(tempfile.mkdtemp(prefix="leanops-drift-")) / Path(dep).name
    with gh.group(f"dvc: {dep} at {commit[:12]}"):
        try:
            with dvc.api.open(dep, repo=str(root), rev=commit, mode="rb") as src, open(target, "wb") as out:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    out.write(chunk)
        except Exception as exc:  # noqa: BLE001 - git, DVC remote or network: one line
            text = short(exc)
            if "unknown revision" in text.lower() or "revision" in text.lower() and commit[:7] in text:
                raise BadInput(f"reference {dep}: commit {commit[:12]} of the champion's training run is not in "
                               "this clone; check out with fetch-depth: 0, or set weekly-drift.reference") from None
            raise InfraError(f"reference {dep}: reading it at {commit[:12]} with DVC failed: {text}") from None
    return str(target)


def _with_name(cached: Path, dep: str) -> str:
    """DVC's cache files have no suffix: link the file under its own name so its type is known."""
    target = Path(tempfile.mkdtemp(prefix="leanops-drift-")) / Path(dep).name
    try:
        os.symlink(cached, target)
    except OSError:
        import shutil

        shutil.copyfile(cached, target)
    return str(target)
