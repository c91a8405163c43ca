"""Where the candidate and the champion come from: metrics files, MLflow's registry, the base branch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from .. import gh, tracking
from ..errors import BadInput

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
TAG_PROMOTED_AT = "leanops.promoted_at"
TAG_METRICS = "leanops.metrics"
TAG_PREDICTIONS = tracking.TAG_PREDICTIONS


@dataclass
class Settings:
    root: Path
    cfg: cfgmod.Config
    section: dict[str, Any]
    model_name: str
    champion: str
    champion_file: str
    metrics_json: str
    metrics_file: str
    run_id: str
    model_version: str
    base_ref: str
    tracking_flag: str
    comment: bool = True
    history: int = 10
    candidate_files: str = ""  # a folder holding the candidate's gate files at their leanops.yml paths
    keep_champion: bool = False  # a failed gate against a champion ends green: "champion kept" (retraining)
    _uri: str | None = field(default=None, repr=False)

    @property
    def file(self) -> str:
        return str(self.cfg.path or cfgmod.DEFAULT_FILE)

    def line(self, *keys: str | int) -> int | None:
        return self.cfg.line_of("gate-metrics", *keys)

    def tracking_uri(self) -> str:
        """The tracking URI (flag, MLFLOW_TRACKING_URI, leanops.yml, the embedded store); reachable or exit 3."""
        if self._uri is None:
            configured = self.cfg.section("train-with-cache").get("tracking-uri")
            uri, _ = tracking.resolve_uri(self.tracking_flag or None, configured, self.root)
            store = tracking.reader(uri)
            if store is not None:
                store.probe()
            tracking.probe_database(uri)
            self._uri = uri
        return self._uri

    @property
    def bootstrap(self) -> dict[str, Any]:
        return dict(self.section.get("bootstrap") or {})


@dataclass
class Side:
    """The candidate or the champion: its metrics and where they came from."""

    label: str
    metrics: dict[str, float]
    origin: str
    version: str = ""
    run_id: str = ""
    predictions: Path | None = None
    predictions_shown: str = ""


@dataclass
class Point:
    """One past champion in the charts."""

    label: str
    metrics: dict[str, float]


# ---------------------------------------------------------------------------- metrics files


def parse_metrics(text: str, name: str) -> dict[str, float]:
    """A JSON or YAML mapping of metrics, nested keys flattened to ``a.b``; NaN kept, null left out."""
    data: Any
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
    if not isinstance(data, dict):
        raise BadInput('not a JSON or YAML mapping; expected metrics like {"roc_auc": 0.82}', file=name)
    out = {}
    for key, value in cfgmod.flatten(data).items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif isinstance(value, str) and value.strip().lower() in ("nan", "-nan"):
            out[key] = math.nan
    return out


def metrics_paths(s: Settings) -> list[str]:
    """The candidate's metrics files: the flag, gate-metrics.metrics-file, train-with-cache.metrics, dvc.yaml."""
    if s.metrics_file:
        return cfgmod.split_list(s.metrics_file)
    if s.section.get("metrics-file"):
        return [str(s.section["metrics-file"])]
    configured = cfgmod.split_list(s.cfg.section("train-with-cache").get("metrics"))
    if configured:
        return configured
    return [path for path, _ in dvc_entries(s.root, "metrics")]


def dvc_entries(root: Path, kind: str) -> list[tuple[str, str]]:
    """(path, stage) of every ``kind`` entry (deps, outs, metrics) of dvc.yaml; [] without one."""
    if not (root / "dvc.yaml").is_file():
        return []
    from ..dvcproject import load_pipeline

    out = []
    for stage_name, stage in load_pipeline(root)["stages"].items():
        for item in (stage.get(kind) or []) if isinstance(stage, dict) else []:
            for path in (item if isinstance(item, dict) else {item: None}):
                out.append((str(path), str(stage_name)))
    return out


def read_files(root: Path, names: list[str], read: Any) -> dict[str, float]:
    """Metrics of several files (``read(name) -> text or None``); several files prefix their stem."""
    out: dict[str, float] = {}
    for name in names:
        text = read(name)
        if text is None:
            continue
        prefix = "" if len(names) == 1 else Path(name).stem + "."
        out.update({prefix + k: v for k, v in parse_metrics(text, name).items()})
    return out


def _read_work_tree(root: Path) -> Any:
    def read(name: str) -> str | None:
        path = root / name
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

    return read


# ---------------------------------------------------------------------------- the candidate


def candidate(s: Settings) -> Side:
    version = s.model_version
    run_id = s.run_id
    uri = ""
    if version or run_id:
        uri = s.tracking_uri()
        if not s.model_name and version:
            raise BadInput("model.name: missing; expected the registered model name in leanops.yml (or model-name)",
                           file=s.file)
    if version:
        found = tracking.version_detail(uri, s.model_name, version)
        if found is None:
            raise BadInput(f"model-version: {s.model_name} has no version {version} at {tracking.mask_uri(uri)}")
        run_id = run_id or found.info.run_id
    elif run_id and s.model_name:
        store = tracking.reader(uri)
        versions = store.versions_of_run(s.model_name, run_id) if store is not None else []
        version = versions[-1].version if versions else ""
    label = f"{s.model_name} version {version}" if version else (f"run {run_id}" if run_id else "the working tree")

    if s.metrics_json.strip():
        try:
            data = json.loads(s.metrics_json)
        except json.JSONDecodeError as exc:
            raise BadInput(f"metrics: not JSON ({exc.msg}); expected an object like {{\"roc_auc\": 0.82}}") from None
        metrics = parse_metrics(json.dumps(data), "metrics")
        return Side(label, metrics, "the metrics input", version, run_id)
    names = metrics_paths(s)
    explicit = bool(s.metrics_file or s.section.get("metrics-file"))
    present = [n for n in names if (s.root / n).is_file()]
    if explicit and len(present) < len(names):
        missing = [n for n in names if n not in present]
        raise BadInput(f"metrics-file: {', '.join(missing)} not found in {s.root}; expected the candidate's metrics",
                       file=s.file, line=s.line("metrics-file"))
    if run_id and not explicit:
        found_metrics = tracking.run_metrics(uri, run_id)
        if found_metrics is None:
            raise BadInput(f"run-id: no run {run_id} at {tracking.mask_uri(uri)}")
        return Side(label, found_metrics, f"MLflow run {run_id}", version, run_id)
    if present:
        return Side(label, read_files(s.root, names, _read_work_tree(s.root)), ", ".join(names), version, run_id)
    raise BadInput("no candidate metrics: expected metrics (JSON), metrics-file, run-id, or a metrics file in "
                   f"leanops.yml or dvc.yaml (looked for {', '.join(names) or 'none configured'})", file=s.file)


# ---------------------------------------------------------------------------- the champion


def champion(s: Settings) -> tuple[Side | None, list[Point]]:
    """The champion (None: no champion yet) and the past champions for the charts, oldest first."""
    if s.champion == "file":
        return _from_file(s)
    if s.champion == "base-branch":
        return _from_base_branch(s)
    return _from_registry(s)


def _from_file(s: Settings) -> tuple[Side | None, list[Point]]:
    name = s.champion_file or str(s.section.get("champion-file") or "")
    if not name:
        raise BadInput("champion-file: missing; expected the champion's metrics file when champion is file",
                       file=s.file, line=s.line("champion"))
    path = s.root / name
    if not path.is_file():
        raise BadInput(f"champion-file: {name} not found in {s.root}; expected the champion's metrics file",
                       file=s.file, line=s.line("champion-file"))
    side = Side(f"file {name}", parse_metrics(path.read_text(encoding="utf-8", errors="replace"), name), name)
    _explicit_predictions(s, side)
    return side, [Point("champion", side.metrics)]


def _explicit_predictions(s: Settings, side: Side) -> None:
    name = s.bootstrap.get("champion-predictions")
    if name:
        side.predictions, side.predictions_shown = s.root / str(name), str(name)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def event() -> dict[str, Any]:
    """The event payload of the run (``GITHUB_EVENT_PATH``), or {}."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path or not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def default_branch() -> str:
    return str((event().get("repository") or {}).get("default_branch") or "")


def base_ref(s: Settings) -> str:
    pr = event().get("pull_request") or {}
    return (s.base_ref or os.environ.get("GITHUB_BASE_REF") or str((pr.get("base") or {}).get("ref") or "")
            or default_branch() or "main")


def resolve_commit(root: Path, ref: str) -> str:
    for candidate_ref in (f"origin/{ref}", ref, f"refs/remotes/origin/{ref}"):
        res = _git(root, "rev-parse", "--verify", "-q", f"{candidate_ref}^{{commit}}")
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    return ""


def _from_base_branch(s: Settings) -> tuple[Side | None, list[Point]]:
    ref = base_ref(s)
    commit = resolve_commit(s.root, ref)
    if not commit:
        gh.step(f"base branch {ref} not in the checkout: git fetch --depth=50 origin {ref}")
        _git(s.root, "fetch", "--no-tags", "--depth=50", "origin", f"+refs/heads/{ref}:refs/remotes/origin/{ref}")
        commit = resolve_commit(s.root, ref)
    if not commit:
        raise BadInput(f"base-ref: {ref!r} is not in the checkout and could not be fetched; expected the base branch "
                       "(actions/checkout with fetch-depth: 0, or set base-ref)", file=s.file,
                       line=s.line("champion"))
    head = _git(s.root, "rev-parse", "HEAD").stdout.strip()
    note = ""
    if commit == head:  # a push to the base branch itself: the champion is what came before
        commit = _git(s.root, "rev-parse", "--verify", "-q", "HEAD~1^{commit}").stdout.strip()
        note = " (HEAD~1: this is the base branch)"
        if not commit:
            return None, []
    prefix = _git(s.root, "rev-parse", "--show-prefix").stdout.strip()
    names = metrics_paths(s)

    def reader_at(rev: str) -> Any:
        def read(name: str) -> str | None:
            res = _git(s.root, "show", f"{rev}:{prefix}{name}")
            return res.stdout if res.returncode == 0 else None

        return read

    metrics = read_files(s.root, names, reader_at(commit))
    if not metrics:
        return None, []
    side = Side(f"base branch {ref} ({commit[:7]}){note}", metrics, f"{', '.join(names)} at {commit[:7]}")
    _explicit_predictions(s, side)
    predictions = s.bootstrap.get("predictions")
    if side.predictions is None and predictions:
        text = reader_at(commit)(str(predictions))
        if text is not None:
            side.predictions = _temp_file(text, Path(str(predictions)).name)
            side.predictions_shown = f"{predictions} at {commit[:7]}"
    log = _git(s.root, "log", f"-n{s.history}", "--format=%H", commit, "--", *[prefix + n for n in names])
    points = []
    for rev in reversed(log.stdout.split()):
        found = read_files(s.root, names, reader_at(rev))
        if found:
            points.append(Point(rev[:7], found))
    if not points or points[-1].label != commit[:7]:
        points.append(Point(commit[:7], metrics))
    return side, points


def _temp_file(text: str, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="leanops-gate-"))
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _recorded(detail: tracking.VersionDetail) -> dict[str, float]:
    try:
        data = json.loads(detail.tags.get(TAG_METRICS) or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def version_metrics(uri: str, detail: tracking.VersionDetail) -> dict[str, float]:
    """The run's metrics, overlaid with what promotion recorded on the version (fairness included)."""
    metrics = (tracking.run_metrics(uri, detail.info.run_id) or {}) if detail.info.run_id else {}
    metrics.update(_recorded(detail))
    return metrics


def candidate_file(s: Settings, name: str) -> tuple[Path, str] | None:
    """``name`` (a leanops.yml path) from candidate-files: train-with-cache's gate inputs, when the gate runs in a
    job of its own (the artifact leanops-gate-inputs)."""
    if not s.candidate_files or not name:
        return None
    folder = Path(s.candidate_files)
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()) or not path.is_file():
        return None
    return path, f"{name} (train-with-cache's gate inputs)"


def candidate_predictions(s: Settings, side: Side, name: str) -> tuple[Path, str] | None:
    """The candidate's predictions from its MLflow run, when the work tree lacks them (the gate runs in a job of
    its own): the artifact its version names, else ``gate-metrics/<name>`` that train-with-cache logs."""
    if not side.run_id:
        return None
    uri = s.tracking_uri()
    found = tracking.version_detail(uri, s.model_name, side.version) if side.version and s.model_name else None
    artifact = (found.tags.get(TAG_PREDICTIONS) if found else None) or f"gate-metrics/{Path(name).name}"
    local = tracking.download_artifact(uri, side.run_id, artifact, Path(tempfile.mkdtemp(prefix="leanops-gate-")))
    return (local, f"{artifact} of run {side.run_id}") if local is not None and local.is_file() else None


def _from_registry(s: Settings) -> tuple[Side | None, list[Point]]:
    if not s.model_name:
        raise BadInput("model.name: missing; expected the registered model name in leanops.yml (champion: mlflow)",
                       file=s.file, line=s.cfg.line_of("model"))
    uri = s.tracking_uri()
    found = tracking.alias_detail(uri, s.model_name, CHAMPION)
    if found is None:
        return None, []
    side = Side(f"{s.model_name} version {found.info.version} (@{CHAMPION})", version_metrics(uri, found),
                f"MLflow version {found.info.version}", found.info.version, found.info.run_id)
    _explicit_predictions(s, side)
    artifact = found.tags.get(TAG_PREDICTIONS)
    if side.predictions is None and artifact and found.info.run_id:
        local = tracking.download_artifact(uri, found.info.run_id, artifact,
                                           Path(tempfile.mkdtemp(prefix="leanops-gate-")))
        if local is not None:
            side.predictions, side.predictions_shown = local, f"{artifact} of run {found.info.run_id}"
    promoted = [d for d in tracking.model_versions(uri, s.model_name) if d.tags.get(TAG_PROMOTED_AT)]
    promoted.sort(key=lambda d: d.tags[TAG_PROMOTED_AT])
    points = [Point(f"v{d.info.version}", version_metrics(uri, d)) for d in promoted[-s.history:]]
    if not points or points[-1].label != f"v{found.info.version}":
        points.append(Point(f"v{found.info.version}", side.metrics))
    return side, points[-s.history:]
