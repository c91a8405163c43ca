"""MLflow tracking and registry access that every capability shares, without importing mlflow.

Importing the ``mlflow`` package costs 6-8 s on a runner; the reads that decide whether work is needed
(a run found by tag, a model version behind ``models:/NAME@alias``) go straight to the store instead:

- ``http(s)://`` tracking servers through MLflow's REST API (``/api/2.0/mlflow/...``) with retries and
  exponential backoff, basic or bearer auth from ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN`` (or
  credentials in the URI); an unreachable server ends in ``InfraError`` naming the URI with its
  credentials masked;
- ``sqlite:///`` stores (the embedded local store) read-only with ``sqlite3``.

Writes (runs, models, versions) use the ``mlflow`` library: ``configure_mlflow()`` sets telemetry off and
bounds its own HTTP retries. ``reader(uri)`` returns ``None`` for other schemes (callers then use mlflow).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import gh
from .errors import BadInput, InfraError

LOCAL_STORE = Path(".leanops") / "mlflow"
# the run artifact holding the per-example predictions of gate-metrics.bootstrap.predictions (tag of a version)
TAG_PREDICTIONS = "leanops.predictions_artifact"
RETRY_STATUS = {429, 500, 502, 503, 504}
ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)$")


def quiet_env() -> None:
    """Telemetry off for every tool the kit drives (nothing here may phone home)."""
    for key, value in (("DO_NOT_TRACK", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1"),
                       ("GX_ANALYTICS_ENABLED", "false")):
        os.environ.setdefault(key, value)


def mask_uri(uri: str) -> str:
    """``https://user:pw@host/x?token=t`` -> ``https://***:***@host/x?token=***``."""
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = ("***:***" if ":" in userinfo else "***") + "@" + host
    query = re.sub(r"(?i)((?:token|key|secret|password|sig)[^=&]*=)[^&]*", r"\1***", parts.query)
    if netloc == parts.netloc and query == parts.query:
        return uri  # nothing to hide (and sqlite:////abs keeps its slashes)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_credentials(uri: str) -> None:
    """Ask the runner to hide the credentials of a URI (and the token/password variables) in the log."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        gh.mask(parts.password)
    if parts.username and parts.password:
        gh.mask(urllib.parse.unquote(parts.password))
    for name in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        gh.mask(os.environ.get(name, ""))


def local_store_uri(root: Path) -> str:
    return f"sqlite:///{(root / LOCAL_STORE / 'mlflow.db').resolve()}"


def resolve_uri(explicit: str | None, configured: str | None, root: Path) -> tuple[str, bool]:
    """The tracking URI and whether it is the embedded local store.

    Order: the flag (``LEANOPS_TRACKING_URI``), ``MLFLOW_TRACKING_URI`` (the secret), leanops.yml, the
    embedded store ``.leanops/mlflow/mlflow.db`` under ``root``.
    """
    uri = (explicit or os.environ.get("MLFLOW_TRACKING_URI") or configured or "").strip()
    if not uri:
        (root / LOCAL_STORE).mkdir(parents=True, exist_ok=True)
        return local_store_uri(root), True
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme not in ("http", "https", "sqlite", "databricks", "file", "postgresql", "mysql", "mssql"):
        raise BadInput(f"tracking-uri: expected http(s)://, sqlite:/// or databricks, got {mask_uri(uri)!r}")
    mask_credentials(uri)
    return uri, False


def configure_mlflow(uri: str) -> None:
    """Before importing mlflow: telemetry off, its HTTP retries bounded (we retried already)."""
    quiet_env()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ["MLFLOW_TRACKING_URI"] = uri


# ---------------------------------------------------------------------------- readers


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class VersionInfo:
    name: str
    version: str
    run_id: str
    source: str
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Reader(Protocol):
    uri: str

    def probe(self) -> None: ...
    def experiment_id(self, name: str) -> str | None: ...
    def find_run(self, experiment_id: str, tags: dict[str, str]) -> RunInfo | None: ...
    def versions_of_run(self, name: str, run_id: str) -> list[VersionInfo]: ...
    def alias(self, name: str, alias: str) -> VersionInfo | None: ...


def _retries() -> tuple[int, float]:
    attempts = int(os.environ.get("LEANOPS_TRACKING_RETRIES", "5") or 5)
    backoff = float(os.environ.get("LEANOPS_TRACKING_BACKOFF", "1") or 1)
    return max(1, attempts), max(0.0, backoff)


class RestReader:
    """MLflow's REST API with retries and backoff; errors name the masked URI."""

    def __init__(self, uri: str, *, attempts: int | None = None, backoff: float | None = None) -> None:
        self.uri = uri.rstrip("/")
        default_attempts, default_backoff = _retries()
        self.attempts = attempts or default_attempts
        self.backoff = default_backoff if backoff is None else backoff
        parts = urllib.parse.urlsplit(self.uri)
        self._auth: str | None = None
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or urllib.parse.unquote(parts.username or "")
        password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or urllib.parse.unquote(parts.password or "")
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if token:
            self._auth = f"Bearer {token}"
        elif user:
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        self._base = urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))

    def request(self, method: str, endpoint: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call; ``{}`` for RESOURCE_DOES_NOT_EXIST; InfraError after the retries."""
        url = f"{self._base}/api/2.0/mlflow/{endpoint}"
        data = None
        if payload is not None and method == "GET":
            url += "?" + urllib.parse.urlencode(payload)
        elif payload is not None:
            data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "leanops"}
        if self._auth:
            headers["Authorization"] = self._auth
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                gh.step(f"tracking server {mask_uri(self.uri)}: {last}; retry {attempt}/{self.attempts - 1} "
                        f"in {delay:.0f}s")
                time.sleep(delay)
            req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the configured server
                    body = resp.read()
                return dict(json.loads(body or b"{}"))
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")
                if exc.code == 404 and "RESOURCE_DOES_NOT_EXIST" in text:
                    return {}
                if exc.code in (401, 403):
                    raise InfraError(f"tracking server {mask_uri(self.uri)} refused the credentials "
                                     f"(HTTP {exc.code}); check MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN") from None
                last = f"HTTP {exc.code}"
                if exc.code not in RETRY_STATUS:
                    raise InfraError(f"tracking server {mask_uri(self.uri)}: {endpoint} answered HTTP "
                                     f"{exc.code}: {' '.join(text.split())[:200]}") from None
            except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
                reason = getattr(exc, "reason", exc)
                last = " ".join(str(reason).split()) or type(exc).__name__
        raise InfraError(f"tracking server {mask_uri(self.uri)} unreachable after {self.attempts} attempts: {last}")

    def probe(self) -> None:
        self.request("GET", "experiments/get-by-name", {"experiment_name": "Default"})

    def experiment_id(self, name: str) -> str | None:
        exp = self.request("GET", "experiments/get-by-name", {"experiment_name": name}).get("experiment")
        if not exp or exp.get("lifecycle_stage") == "deleted":
            return None
        return str(exp["experiment_id"])

    def find_run(self, experiment_id: str, tags: dict[str, str]) -> RunInfo | None:
        clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items()] + ["attributes.status = 'FINISHED'"]
        found = self.request("POST", "runs/search", {
            "experiment_ids": [experiment_id], "filter": " and ".join(clauses), "max_results": 1,
            "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY",
        }).get("runs") or []
        if not found:
            return None
        run = found[0]
        data = run.get("data") or {}
        return RunInfo(
            run_id=run["info"]["run_id"], experiment_id=str(run["info"]["experiment_id"]),
            status=run["info"]["status"],
            metrics={m["key"]: float(m["value"]) for m in data.get("metrics") or []},
            tags={t["key"]: t["value"] for t in data.get("tags") or []},
        )

    def versions_of_run(self, name: str, run_id: str) -> list[VersionInfo]:
        found = self.request("GET", "model-versions/search",
                             {"filter": f"name = '{name}' and run_id = '{run_id}'", "max_results": 50})
        return [_version(v) for v in found.get("model_versions") or []]

    def alias(self, name: str, alias: str) -> VersionInfo | None:
        # registered-models/alias answers a missing alias with HTTP 400 (INVALID_PARAMETER_VALUE); the model's
        # own record lists its aliases, and a missing model is RESOURCE_DOES_NOT_EXIST ({})
        model = self.request("GET", "registered-models/get", {"name": name}).get("registered_model") or {}
        versions = [str(a.get("version")) for a in model.get("aliases") or [] if a.get("alias") == alias]
        if not versions:
            return None
        mv = self.request("GET", "model-versions/get", {"name": name, "version": versions[0]}).get("model_version")
        return _version(mv) if mv else None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.request("POST", "registered-models/alias", {"name": name, "alias": alias, "version": str(version)})


def _version(mv: dict[str, Any]) -> VersionInfo:
    return VersionInfo(name=mv["name"], version=str(mv["version"]), run_id=mv.get("run_id") or "",
                       source=mv.get("source") or "", aliases=list(mv.get("aliases") or []))


class SqliteReader:
    """Read-only queries on an MLflow sqlite store (the embedded local store)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.path = Path(uri.removeprefix("sqlite:///").removeprefix("sqlite://"))
        if uri.startswith("sqlite:////"):
            self.path = Path("/" + uri.removeprefix("sqlite:////"))

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if not self.path.is_file():
            return []
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            try:
                return list(con.execute(sql, args))
            finally:
                con.close()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise InfraError(f"tracking store {self.uri}: {exc}") from None

    def probe(self) -> None:
        return None

    def experiment_id(self, name: str) -> str | None:
        rows = self._query("SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
                           (name,))
        return str(rows[0][0]) if rows else None

    def find_run(self, experiment_id: str, tags: dict[str, str]) -> RunInfo | None:
        sql = ("SELECT r.run_uuid, r.status FROM runs r WHERE r.experiment_id = ? AND r.status = 'FINISHED' "
               "AND r.lifecycle_stage = 'active'")
        args: list[Any] = [int(experiment_id)]
        for key, value in tags.items():
            sql += " AND EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?)"
            args += [key, value]
        rows = self._query(sql + " ORDER BY r.start_time DESC LIMIT 1", tuple(args))
        if not rows:
            return None
        run_id = rows[0][0]
        metrics = {k: float(v) for k, v in self._query("SELECT key, value FROM latest_metrics WHERE run_uuid = ?",
                                                        (run_id,))}
        tag_rows = self._query("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))
        return RunInfo(run_id=run_id, experiment_id=experiment_id, status=rows[0][1], metrics=metrics,
                       tags={k: v for k, v in tag_rows})

    def _aliases(self, name: str, version: str) -> list[str]:
        rows = self._query("SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?",
                           (name, int(version)))
        return [r[0] for r in rows]

    def versions_of_run(self, name: str, run_id: str) -> list[VersionInfo]:
        rows = self._query("SELECT version, source FROM model_versions WHERE name = ? AND run_id = ? "
                           "AND current_stage != 'Deleted_Internal' ORDER BY version", (name, run_id))
        return [VersionInfo(name, str(v), run_id, s or "", self._aliases(name, str(v))) for v, s in rows]

    def alias(self, name: str, alias: str) -> VersionInfo | None:
        rows = self._query("SELECT a.version, v.run_id, v.source FROM registered_model_aliases a JOIN model_versions v "
                           "ON v.name = a.name AND v.version = a.version WHERE a.name = ? AND a.alias = ?",
                           (name, alias))
        if not rows:
            return None
        version, run_id, source = rows[0]
        return VersionInfo(name, str(version), run_id or "", source or "", self._aliases(name, str(version)))


DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")  # MLflow's SQLAlchemy store, written directly (no server)


def probe_database(uri: str, *, timeout: int = 10) -> None:
    """A tracking URI that is a database: one connection before any work; InfraError in one line naming the
    store (its password masked) when it does not answer. Any other URI: nothing (``reader(uri).probe()``)."""
    scheme = urllib.parse.urlsplit(uri).scheme.split("+", 1)[0]
    if scheme not in DATABASE_SCHEMES:
        return
    import sqlalchemy as sa

    args = {"connect_timeout": timeout} if scheme == "postgresql" else {}
    try:
        engine = sa.create_engine(uri, poolclass=sa.pool.NullPool, connect_args=args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except ImportError as exc:
        raise BadInput(f"tracking store {mask_uri(uri)}: its database driver is not installed ({exc.name})") \
            from None
    except sa.exc.SQLAlchemyError as exc:
        from .sqlsource import first_line

        raise InfraError(f"tracking store {mask_uri(uri)} unreachable: {first_line(exc)}") from None


def reader(uri: str) -> RestReader | SqliteReader | None:
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme in ("http", "https"):
        return RestReader(uri)
    if scheme == "sqlite":
        return SqliteReader(uri)
    return None


def resolve_model_uri(uri: str, store: Reader) -> VersionInfo:
    """``models:/NAME@alias`` or ``models:/NAME/VERSION`` -> the version behind it."""
    m = ALIAS_URI.match(uri)
    if m:
        found = store.alias(m["name"], m["alias"])
        if not found:
            raise BadInput(f"{uri}: no version of {m['name']} has the alias {m['alias']!r}")
        return found
    m2 = re.match(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$", uri)
    if not m2:
        raise BadInput(f"{uri}: expected models:/NAME@alias or models:/NAME/VERSION")
    for_version = [v for v in _all_versions(store, m2["name"]) if v.version == m2["version"]]
    if not for_version:
        raise BadInput(f"{uri}: no such model version")
    return for_version[0]


def _all_versions(store: Reader, name: str) -> list[VersionInfo]:
    if isinstance(store, RestReader):
        found = store.request("GET", "model-versions/search", {"filter": f"name = '{name}'", "max_results": 1000})
        return [_version(v) for v in found.get("model_versions") or []]
    if isinstance(store, SqliteReader):
        rows = store._query("SELECT version, run_id, source FROM model_versions WHERE name = ?", (name,))
        return [VersionInfo(name, str(v), r or "", s or "") for v, r, s in rows]
    return []


# ---------------------------------------------------------------------------- registry reads and writes (gate-metrics)


@dataclass
class VersionDetail:
    """A model version with its tags (what promotion recorded on it) and creation time (ms)."""

    info: VersionInfo
    tags: dict[str, str] = field(default_factory=dict)
    created: int = 0


def _detail(mv: dict[str, Any]) -> VersionDetail:
    tags = mv.get("tags") or []
    pairs = tags.items() if isinstance(tags, dict) else ((t["key"], t.get("value", "")) for t in tags)
    return VersionDetail(_version(mv), {str(k): str(v) for k, v in pairs}, int(mv.get("creation_timestamp") or 0))


def _client_detail(mv: Any) -> VersionDetail:
    info = VersionInfo(mv.name, str(mv.version), mv.run_id or "", mv.source or "", list(mv.aliases or []))
    return VersionDetail(info, dict(mv.tags or {}), int(mv.creation_timestamp or 0))


def mlflow_client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri`` (tracking and registry), telemetry off, retries bounded."""
    configure_mlflow(uri)
    from mlflow import MlflowClient

    return MlflowClient(uri, registry_uri=uri)


_MISSING_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def mlflow_call(uri: str, what: str, fn: Any, *args: Any, missing: Any = BadInput, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with the mlflow library's exceptions turned into one-line leanops errors.

    A missing resource (or a rejected value) returns ``missing`` when given, else is BadInput (2); anything
    else (unreachable, 5xx) is InfraError (3) naming the masked URI.
    """
    try:
        return fn(*args, **kwargs)
    except (BadInput, InfraError):
        raise
    except Exception as exc:  # noqa: BLE001 - every mlflow failure ends in one line
        code = str(getattr(exc, "error_code", "") or "")
        text = " ".join(str(exc).split())[:300]
        if code in _MISSING_CODES or code == "RESOURCE_ALREADY_EXISTS":
            if missing is not BadInput and code in _MISSING_CODES:
                return missing
            raise BadInput(f"{what}: {text}") from None
        raise InfraError(f"tracking server {mask_uri(uri)}: {what} failed: {text}") from None


def version_detail(uri: str, name: str, version: str) -> VersionDetail | None:
    """One model version with its tags; None when it does not exist."""
    store = reader(uri)
    if isinstance(store, RestReader):
        mv = store.request("GET", "model-versions/get", {"name": name, "version": str(version)}).get("model_version")
        return _detail(mv) if mv else None
    if isinstance(store, SqliteReader):
        rows = store._query("SELECT version, run_id, source, creation_time FROM model_versions WHERE name = ? "
                            "AND version = ? AND current_stage != 'Deleted_Internal'", (name, int(version)))
        if not rows:
            return None
        v, run_id, source, created = rows[0]
        tags = dict(store._query("SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                                 (name, int(version))))
        info = VersionInfo(name, str(v), run_id or "", source or "", store._aliases(name, str(v)))
        return VersionDetail(info, {k: v or "" for k, v in tags.items()}, int(created or 0))
    client = mlflow_client(uri)
    mv = mlflow_call(uri, f"model {name} version {version}", client.get_model_version, name, str(version),
                     missing=None)
    return _client_detail(mv) if mv is not None else None


def alias_detail(uri: str, name: str, alias: str) -> VersionDetail | None:
    """The version behind ``models:/NAME@alias`` with its tags; None when no version has the alias."""
    store = reader(uri)
    if store is not None:
        found = store.alias(name, alias)
        return version_detail(uri, name, found.version) if found else None
    client = mlflow_client(uri)
    mv = mlflow_call(uri, f"model {name} alias {alias}", client.get_model_version_by_alias, name, alias,
                     missing=None)
    return _client_detail(mv) if mv is not None else None


def model_versions(uri: str, name: str, limit: int = 1000) -> list[VersionDetail]:
    """Every version of a registered model with its tags, oldest first."""
    store = reader(uri)
    out: list[VersionDetail] = []
    if isinstance(store, RestReader):
        token = ""
        while len(out) < limit:
            params: dict[str, Any] = {"filter": f"name = '{name}'", "max_results": min(limit, 1000)}
            if token:
                params["page_token"] = token
            found = store.request("GET", "model-versions/search", params)
            out += [_detail(mv) for mv in found.get("model_versions") or []]
            token = found.get("next_page_token") or ""
            if not token:
                break
    elif isinstance(store, SqliteReader):
        rows = store._query("SELECT version FROM model_versions WHERE name = ? AND current_stage != 'Deleted_Internal'",
                            (name,))
        out = [d for (v,) in rows if (d := version_detail(uri, name, str(v))) is not None]
    else:
        client = mlflow_client(uri)
        found = mlflow_call(uri, f"versions of model {name}", client.search_model_versions, f"name = '{name}'",
                            max_results=limit)
        out = [_client_detail(mv) for mv in found]
    return sorted(out, key=lambda d: int(d.info.version))


def run_metrics(uri: str, run_id: str) -> dict[str, float] | None:
    """The latest value of each metric of a run (NaN kept as NaN); None when the run does not exist."""
    store = reader(uri)
    if isinstance(store, RestReader):
        run = store.request("GET", "runs/get", {"run_id": run_id}).get("run")
        if not run:
            return None
        return {m["key"]: float(m["value"]) for m in (run.get("data") or {}).get("metrics") or []}
    if isinstance(store, SqliteReader):
        if not store._query("SELECT 1 FROM runs WHERE run_uuid = ?", (run_id,)):
            return None
        rows = store._query("SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,))
        return {k: float("nan") if is_nan else float(v) for k, v, is_nan in rows}
    client = mlflow_client(uri)
    run = mlflow_call(uri, f"run {run_id}", client.get_run, run_id, missing=None)
    return None if run is None else {k: float(v) for k, v in run.data.metrics.items()}


def download_artifact(uri: str, run_id: str, path: str, dest: Path) -> Path | None:
    """One artifact of a run into ``dest`` (a folder); None when the run has no such artifact."""
    configure_mlflow(uri)
    import mlflow.artifacts

    def fetch() -> str | None:
        try:
            return str(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dest),
                                                           tracking_uri=uri))
        except OSError:  # a local store's missing file
            return None

    local = mlflow_call(uri, f"artifact {path} of run {run_id}", fetch, missing=None)
    return Path(local) if local else None
