"""``leanops serve``: the model server inside the image built by ``leanops build-push-image``.

It serves one MLflow model directory baked into the image; no tracking server is needed at run time.

- Before anything is loaded, the model files' sha256 (``model_digest``) is checked against the digest
  recorded at build time (``--model-sha256``, ``LEANOPS_MODEL_SHA256`` in the image): pickled models run
  code when loaded, so a mismatch refuses to start with one line and exit code 2.
- ``POST /predict`` takes records (``{"records": [{...}]}``, ``{"dataframe_records": [...]}`` or a bare
  list of objects) or a columnar form (``{"columns": {"name": [...]}}``, ``{"inputs": {...}}`` or
  MLflow's ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``), validates them against the
  model signature (a 422 names every bad field) and returns ``{"predictions": [...]}`` (classes or values);
  for a classifier with ``predict_proba`` also ``"probabilities"`` (a list a row) and ``"classes"`` (their order).
- Limits, checked before any row is built: a body over ``--max-body-bytes`` (4 MiB) is a 413 (from its
  Content-Length, before it is read), more than ``--max-rows`` (10,000) rows a 422; parsing and validation run
  in a worker thread, never on the event loop that answers the probes.
- No OpenAPI schema (``/openapi.json``, ``/docs``, ``/redoc``: 404); ``/ready`` says ``loading`` without the
  reason (that goes to the server's output).
- ``GET /health`` (alive), ``GET /ready`` (model loaded), ``GET /metrics`` (Prometheus: requests by
  status, latency histogram, class counts or a prediction histogram, all labelled with the model name
  and version); every answer carries ``X-Model-Version``.
- ``--log-predictions FILE`` (``-`` for stdout) appends one JSON line per request with the inputs and
  the predictions, for the drift check.
"""


import argparse
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gh
from .errors import BadInput, InfraError
from .flags import add_flag
from .models import model_digest, verify  # noqa: F401 - model_digest: the server's digest, re-exported

MLMODEL = "MLmodel"
HEADER = "X-Model-Version"
# MLflow column types -> (what JSON must hold, pandas dtype)
NUMBER, INTEGER, TEXT, BOOLEAN = "a number", "an integer", "a string", "true or false"
COLUMN_TYPES: dict[str, tuple[str, str]] = {
    "double": (NUMBER, "float64"),
    "float": (NUMBER, "float32"),
    "long": (INTEGER, "int64"),
    "integer": (INTEGER, "int32"),
    "string": (TEXT, "object"),
    "boolean": (BOOLEAN, "bool"),
    "datetime": (TEXT, "datetime64[ns]"),
}
MAX_ROWS = 10_000
# a 10,000-row request of a model with ~10 features is ~2 MB of JSON records; parsing JSON takes up to ~25 times
# its size in Python objects (``[[], [], ...]``), so this bound also bounds a request's memory (~100 MB)
MAX_BODY_BYTES = 4 * 1024 * 1024
DRAIN_BYTES = 64 * 1024 * 1024  # an over-limit body is read (and dropped) up to this, then the connection closes
KEEP_ALIVE = 75  # seconds an idle HTTP/1.1 connection stays open (uvicorn default: 5)


# ---------------------------------------------------------------------------- model files


@dataclass
class Column:
    name: str
    type: str
    required: bool = True


def read_signature(model_dir: str | os.PathLike[str]) -> list[Column]:
    """The input columns of an MLflow model's signature (from ``MLmodel``, without importing mlflow)."""
    import yaml

    root = Path(model_dir)
    mlmodel = root / MLMODEL
    if not mlmodel.is_file():
        raise BadInput(f"{root}: no {MLMODEL} file; expected an MLflow model directory")
    try:
        meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{mlmodel}: not valid YAML ({' '.join(str(exc).split())})") from None
    inputs = (meta.get("signature") or {}).get("inputs")
    if not inputs:
        raise BadInput(f"{root}: model signature missing; log the model with "
                       "signature=mlflow.models.infer_signature(X, model.predict(X))")
    specs = json.loads(inputs) if isinstance(inputs, str) else inputs
    columns = []
    for spec in specs:
        kind = spec.get("type")
        if kind not in COLUMN_TYPES or not spec.get("name"):
            raise BadInput(f"{mlmodel}: signature input {spec} is not supported; expected named columns of "
                           f"type {', '.join(COLUMN_TYPES)}")
        columns.append(Column(name=str(spec["name"]), type=str(kind), required=bool(spec.get("required", True))))
    return columns


# ---------------------------------------------------------------------------- validation


class InvalidInput(Exception):
    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['error']}" for p in problems))
        self.problems = problems


def _too_many(n: int, max_rows: int) -> InvalidInput:
    return InvalidInput([{"field": "records", "error": f"{n} rows; at most {max_rows} per request"}])


def to_records(body: Any, max_rows: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Any accepted request form -> a list of records.

    The row count is checked against ``max_rows`` *before* any row is built: a small columnar body
    (``{"columns": {"a": [0, 0, ...]}}``, 2 bytes a value) would otherwise expand into a million dicts.
    """
    rows: Any = body.get("records", body.get("dataframe_records")) if isinstance(body, dict) else None
    cols: Any = body.get("columns", body.get("inputs")) if isinstance(body, dict) else None
    records: list[Any]
    if isinstance(body, list):
        records = body
    elif isinstance(rows, list):
        records = rows
    elif isinstance(cols, dict):
        lengths = {len(v) if isinstance(v, list) else -1 for v in cols.values()}
        if -1 in lengths or len(lengths) > 1:
            raise InvalidInput([{"field": "columns", "error": "expected lists of one and the same length"}])
        n = lengths.pop() if lengths else 0
        if n > max_rows:
            raise _too_many(n, max_rows)
        records = [{k: v[i] for k, v in cols.items()} for i in range(n)]
    elif isinstance(body, dict) and isinstance(body.get("dataframe_split"), dict):
        split = body["dataframe_split"]
        names, data = split.get("columns"), split.get("data")
        if isinstance(data, list) and len(data) > max_rows:
            raise _too_many(len(data), max_rows)
        if not isinstance(names, list) or not isinstance(data, list) or any(
                not isinstance(r, list) or len(r) != len(names) for r in data):
            raise InvalidInput([{"field": "dataframe_split", "error": "expected columns and rows of that length"}])
        records = [dict(zip(names, row, strict=True)) for row in data]
    else:
        raise InvalidInput([{"field": "body", "error": "expected records ({\"records\": [{...}]}) or columns "
                                                       "({\"columns\": {\"name\": [...]}})"}])
    if not records:
        raise InvalidInput([{"field": "records", "error": "no rows"}])
    if len(records) > max_rows:
        raise _too_many(len(records), max_rows)
    if any(not isinstance(r, dict) for r in records):
        raise InvalidInput([{"field": "records", "error": "expected every row to be an object"}])
    return records


class TooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes; at most {limit} per request")
        self.problems = [{"field": "body", "error": str(self)}]


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused (TooLarge) as soon as it is known to exceed ``limit`` (from its Content-Length
    before a byte is kept, else while it streams in). The rest is read and dropped, up to DRAIN_BYTES, so the
    client (or the router) that is still sending gets the 413 instead of a reset connection."""
    declared = request.headers.get("content-length", "")
    chunks: list[bytes] = []
    size, too_large = 0, declared.isdigit() and int(declared) > limit
    async for chunk in request.stream():
        size += len(chunk)
        if too_large or size > limit:
            too_large = True
            chunks.clear()
            if size > DRAIN_BYTES:
                break  # not worth reading further: the connection is closed after the answer
        else:
            chunks.append(chunk)
    if too_large:
        raise TooLarge(int(declared) if declared.isdigit() else size, limit)
    return b"".join(chunks)


def parse(raw: bytes, columns: list[Column], max_rows: int = MAX_ROWS) -> tuple[list[dict[str, Any]], Any]:
    """A request body -> (records, DataFrame); InvalidInput names what is wrong. Runs in a worker thread."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput([{"field": "body", "error": "not valid JSON"}]) from None
    records = to_records(body, max_rows)
    return records, validate(records, columns)


def _check(value: Any, col: Column) -> bool:
    expected = COLUMN_TYPES[col.type][0]
    if expected == NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == INTEGER:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if expected == TEXT:
        return isinstance(value, str)
    return isinstance(value, bool)


def validate(records: list[dict[str, Any]], columns: list[Column]) -> Any:
    """Records -> a DataFrame in the signature's column order and types; InvalidInput names bad fields."""
    import pandas as pd

    problems: dict[tuple[str, str], list[int]] = {}
    gaps: set[str] = set()
    for i, rec in enumerate(records):
        for col in columns:
            value = rec.get(col.name)
            if value is None:
                gaps.add(col.name)
                if col.required:
                    problems.setdefault((col.name, "missing"), []).append(i)
                continue
            if not _check(value, col):
                problems.setdefault((col.name, f"expected {COLUMN_TYPES[col.type][0]} ({col.type})"), []).append(i)
    if problems:
        raise InvalidInput([
            {"field": name, "error": error, "rows": rows[:20]} for (name, error), rows in problems.items()
        ])
    frame = pd.DataFrame.from_records(records, columns=[c.name for c in columns])
    # an optional column left out keeps its NaN: MLflow's own schema handling decides about it
    return frame.astype({c.name: COLUMN_TYPES[c.type][1] for c in columns if c.name not in gaps})


def _jsonable(values: Any) -> list[Any]:
    import numpy as np

    if hasattr(values, "to_dict") and hasattr(values, "columns"):  # a DataFrame
        values = values.to_dict(orient="records")
    elif hasattr(values, "tolist"):
        values = values.tolist()
    out = []
    for v in list(values):
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out.append(v)
    return out


# ---------------------------------------------------------------------------- the app


@dataclass
class ModelState:
    """What the server serves: a model directory, its identity, and the loaded model once ready."""

    model_dir: Path
    name: str = "model"
    version: str = "unknown"
    columns: list[Column] = field(default_factory=list)
    model: Any = None
    error: str = ""
    # a classifier's predict_proba (the raw model behind the pyfunc) and its classes, in that order; None for a
    # regressor or a model without one: /predict then answers with the values alone
    proba: Any = None
    classes: list[Any] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.model is not None


def load_model(state: ModelState) -> ModelState:
    """Import mlflow's pyfunc and load the (already verified) model directory."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow.pyfunc

    state.columns = state.columns or read_signature(state.model_dir)
    model = mlflow.pyfunc.load_model(str(state.model_dir))
    state.proba, state.classes = probabilities_of(model)
    state.model = model
    return state


def probabilities_of(model: Any) -> tuple[Any, list[Any]]:
    """(predict_proba, classes) of the estimator behind a pyfunc model (scikit-learn, XGBoost's and LightGBM's
    scikit-learn classes), or (None, []) for a regressor, a booster or a model of the adopter's own."""
    try:
        raw = model.get_raw_model()
    except Exception:  # noqa: BLE001 - a flavor without a raw model: values only
        return None, []
    try:
        proba, classes = getattr(raw, "predict_proba", None), getattr(raw, "classes_", None)
    except Exception:  # noqa: BLE001 - a property that refuses (a Pipeline ending in a regressor): values only
        return None, []
    if not callable(proba) or classes is None:
        return None, []
    return proba, _jsonable(classes)


def answer_for(state: ModelState, frame: Any) -> dict[str, Any]:
    """The model's answer for ``frame``: ``predictions`` (classes or values), and for a classifier
    ``probabilities`` (one list a row, in the order of ``classes``). Runs in a worker thread."""
    out: dict[str, Any] = {"predictions": _jsonable(state.model.predict(frame))}
    if state.proba is not None:
        out["probabilities"] = [[None if not math.isfinite(p) else p for p in row]
                                for row in _jsonable_rows(state.proba(frame))]
        out["classes"] = state.classes
    return out


def _jsonable_rows(values: Any) -> list[list[float]]:
    rows = values.tolist() if hasattr(values, "tolist") else [list(r) for r in values]
    return [[float(p) for p in row] for row in rows]


# latency buckets 25% apart from 0.5 ms to about 30 s: fine enough to compare two distributions (the canary's
# analysis falls back on them when a server has no per-request samples)
LATENCY_BUCKETS = tuple(round(0.0005 * 1.25 ** i, 6) for i in range(50))
SAMPLES_PATH = "/metrics/samples"  # the latest /predict requests, one by one: GET ?since=SEQ
SAMPLES_KEPT = 20_000


class Metrics:
    """The Prometheus metrics of one server, in a registry of their own, and the latest ``/predict`` requests one
    by one (sequence number, seconds, status) for the canary's comparison of latency distributions."""

    def __init__(self, state: ModelState) -> None:
        from collections import deque

        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.samples: deque[tuple[int, float, int]] = deque(maxlen=SAMPLES_KEPT)
        self.seq = 0

        self.registry = CollectorRegistry()
        labels = ["model_name", "model_version"]
        self.base = {"model_name": state.name, "model_version": state.version}
        self.requests = Counter("leanops_requests", "HTTP requests by path and status", [*labels, "path", "status"],
                                registry=self.registry)
        self.latency = Histogram("leanops_request_duration_seconds", "request latency", [*labels, "path"],
                                 registry=self.registry,
                                 buckets=LATENCY_BUCKETS)
        self.rows = Counter("leanops_predicted_rows", "rows predicted", labels, registry=self.registry)
        self.classes = Counter("leanops_prediction_class", "predictions by class", [*labels, "class"],
                               registry=self.registry)
        self.values = Histogram("leanops_prediction_value", "numeric predictions", labels, registry=self.registry,
                                buckets=(-10, -1, -0.5, 0, 0.1, 0.25, 0.5, 0.75, 0.9, 1, 10, 100, 1000))
        self.info = Gauge("leanops_model_info", "the served model (always 1)", labels, registry=self.registry)
        self.info.labels(**self.base).set(1)

    def observe_request(self, status: int, seconds: float) -> None:
        """One ``/predict`` request into the samples (event loop only: no lock needed)."""
        self.seq += 1
        self.samples.append((self.seq, round(seconds, 6), status))

    def samples_since(self, since: int) -> dict[str, Any]:
        """The kept samples after sequence number ``since`` (negative: none, only the current ``seq``); ``first``
        tells whether older ones were dropped."""
        rows = [list(s) for s in self.samples if s[0] > since] if since >= 0 else []
        return {"seq": self.seq, "first": self.samples[0][0] if self.samples else self.seq + 1, "samples": rows}

    def observe_predictions(self, predictions: list[Any]) -> None:
        self.rows.labels(**self.base).inc(len(predictions))
        for p in predictions:
            if isinstance(p, float) and not p.is_integer():
                self.values.labels(**self.base).observe(p)
            elif isinstance(p, bool | int | str) or (isinstance(p, float) and p.is_integer()):
                self.classes.labels(**self.base, **{"class": str(p)}).inc()


class PredictionLog:
    """JSON lines of inputs and predictions (``-`` is stdout), appended under a lock."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.lock = threading.Lock()
        if target != "-":
            Path(target).parent.mkdir(parents=True, exist_ok=True)

    def write(self, state: ModelState, records: list[dict[str, Any]], predictions: list[Any],
              probabilities: list[list[float]] | None = None) -> None:
        entry = {"ts": time.time(), "model_name": state.name, "model_version": state.version,
                 "inputs": records, "predictions": predictions}
        if probabilities is not None:
            entry["probabilities"] = probabilities
        line = json.dumps(entry, default=str) + "\n"
        with self.lock:
            if self.target == "-":
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                with open(self.target, "a", encoding="utf-8") as fh:
                    fh.write(line)


def create_app(state: ModelState, *, log_predictions: str = "", max_body_bytes: int = MAX_BODY_BYTES,
               max_rows: int = MAX_ROWS) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.concurrency import run_in_threadpool

    # no OpenAPI schema, no /docs, no /redoc: the server answers its four paths and nothing that maps it
    app = FastAPI(title=f"leanops serve: {state.name}", version=state.version, openapi_url=None, docs_url=None,
                  redoc_url=None)
    metrics = Metrics(state)
    plog = PredictionLog(log_predictions) if log_predictions else None
    app.state.model = state
    app.state.metrics = metrics
    known = {"/predict", "/health", "/ready", "/metrics", SAMPLES_PATH}

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        path = request.url.path if request.url.path in known else "other"
        if path not in ("/metrics", SAMPLES_PATH):
            seconds = time.perf_counter() - start
            metrics.requests.labels(**metrics.base, path=path, status=str(response.status_code)).inc()
            metrics.latency.labels(**metrics.base, path=path).observe(seconds)
            if path == "/predict":
                metrics.observe_request(response.status_code, seconds)
        response.headers[HEADER] = state.version
        return response

    # /health, /ready and /metrics run on the event loop, not in the worker threads: a server with every
    # worker busy predicting still answers its probes and the canary's scrapes at once
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        if state.ready:
            return JSONResponse({"status": "ready", "model": state.name, "version": state.version})
        # no exception text to whoever reaches the port: the reason goes to the server's own output (one line)
        return JSONResponse({"status": "loading"}, status_code=503)

    @app.get("/metrics")
    async def prom() -> Response:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(SAMPLES_PATH)
    async def samples(since: int = 0) -> Response:
        # json.dumps, not FastAPI's encoder: thousands of rows on the event loop in milliseconds
        return Response(json.dumps(metrics.samples_since(since)), media_type="application/json")

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        if not state.ready:
            return JSONResponse({"detail": "model not loaded yet"}, status_code=503)
        try:
            raw = await read_body(request, max_body_bytes)
        except TooLarge as exc:
            return JSONResponse({"detail": exc.problems}, status_code=413)
        try:
            # off the event loop: a worker thread parses, counts the rows before building them and validates
            records, frame = await run_in_threadpool(parse, raw, state.columns, max_rows)
        except InvalidInput as exc:
            return JSONResponse({"detail": exc.problems}, status_code=422)
        try:
            # off the event loop: /health, /ready and /metrics stay responsive while the model predicts
            answer = await run_in_threadpool(answer_for, state, frame)
        except Exception as exc:  # noqa: BLE001 - the model's own failure is the client's 500, in one line
            return JSONResponse({"detail": " ".join(f"{type(exc).__name__}: {exc}".split())[:500]},
                                status_code=500)
        predictions = answer["predictions"]
        metrics.observe_predictions(predictions)
        if plog:
            plog.write(state, records, predictions, answer.get("probabilities"))
        return JSONResponse({**answer, "model": state.name, "version": state.version})

    return app


# ---------------------------------------------------------------------------- the command


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve an MLflow model directory over HTTP (the image's entrypoint)")
    add_flag(p, "--model-dir", help="the MLflow model directory", default="/opt/leanops/model")
    add_flag(p, "--model-sha256", help="digest of the model files recorded at build time (required unless "
             "--allow-unverified)", default="")
    add_flag(p, "--allow-unverified", kind="bool", default=False,
             help="start without --model-sha256 (a model you built yourself, never one from a registry)")
    add_flag(p, "--model-name", help="model name for labels and headers", default="model")
    add_flag(p, "--model-version", help="model version for labels and the X-Model-Version header",
             default="unknown")
    add_flag(p, "--host", help="address to listen on", default="127.0.0.1")
    add_flag(p, "--port", help="port to listen on", default=8080, kind="int")
    add_flag(p, "--log-predictions", help="append inputs and predictions as JSON lines to this file (- stdout)",
             default="")
    add_flag(p, "--max-body-bytes", help=f"largest /predict body in bytes; larger: 413 (default {MAX_BODY_BYTES})",
             default=MAX_BODY_BYTES, kind="int")
    add_flag(p, "--max-rows", help=f"most rows per /predict request; more: 422 (default {MAX_ROWS})",
             default=MAX_ROWS, kind="int")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    model_dir = Path(args.model_dir)
    if not args.model_sha256 and not args.allow_unverified:
        raise BadInput(f"{model_dir}: no recorded digest; expected --model-sha256 (LEANOPS_MODEL_SHA256, set by "
                       "build-push-image) or --allow-unverified for a model you built yourself")
    digest = verify(model_dir, args.model_sha256)
    if not args.model_sha256:
        gh.warning(f"{model_dir}: --allow-unverified: the model files were not checked against a recorded digest")
    sys.dont_write_bytecode = True  # nothing written into the model directory: its digest covers every file
    state = ModelState(model_dir=model_dir, name=args.model_name, version=args.model_version,
                       columns=read_signature(model_dir))
    if args.max_body_bytes < 1 or args.max_rows < 1:
        raise BadInput(f"max-body-bytes {args.max_body_bytes}, max-rows {args.max_rows}: expected integers >= 1")
    app = create_app(state, log_predictions=args.log_predictions, max_body_bytes=args.max_body_bytes,
                     max_rows=args.max_rows)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=5,
                                           # longer than a proxy's idle keep-alive (the router's is 30 s): a
                                           # server closing an idle connection as the proxy reuses it is a 502
                                           timeout_keep_alive=KEEP_ALIVE))

    def load() -> None:
        t0 = time.monotonic()
        try:
            load_model(state)
        except Exception as exc:  # noqa: BLE001 - one line, then stop the server
            state.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            server.should_exit = True
            return
        gh.step(f"leanops serve: {state.name} version {state.version} ready in {time.monotonic() - t0:.1f}s "
                f"(sha256:{digest[:12]})")

    gh.step(f"leanops serve: {state.name} version {state.version} on http://{args.host}:{args.port} "
            f"(model files sha256:{digest[:12]} verified)" if args.model_sha256 else
            f"leanops serve: {state.name} version {state.version} on http://{args.host}:{args.port}")
    threading.Thread(target=load, name="load-model", daemon=True).start()
    server.run()
    if state.error:
        raise InfraError(f"{model_dir}: the model did not load: {state.error}")
    return 0
