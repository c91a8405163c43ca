"""``leanops train-with-cache``: run the DVC pipeline, record it in MLflow, skip the work when nothing changed.

    leanops train-with-cache [run]   dvc repro (optionally one target), log params/metrics/hashes/model to
                                     MLflow, register a version under model.name with the alias challenger
    leanops train-with-cache key     the actions/cache key, restore prefix and paths (outputs cache-key,
                                     restore-prefix, cache-path), from dvc.yaml, dvc.lock, the effective
                                     params and the hashes of the pipeline's source dependencies
    leanops train-with-cache select  the best of a matrix of results by the configured metric

Nothing trains when no stage is out of date: a pure-Python check of ``dvc.lock`` against the work tree
(hashes, params, commands) answers without importing DVC or MLflow; when it cannot vouch, a run that started
from the same state (the cache key: dvc.yaml, dvc.lock, params, source dependencies) answers, else ``dvc
repro`` decides (stages restored from DVC's run-cache count as not run). Then no run and no version are created:
the outputs point at the run tagged with the same ``dvc.lock`` digest. A version is registered only after
everything is logged; a failure before the alias is set deletes the version and marks the run FAILED.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as cfgmod
from . import gh, tracking
from .errors import BadInput, CheckFailed, InfraError
from .flags import add_flag
from .fsutil import atomic_write, atomic_write_json

SECTION = "train-with-cache"
ALIAS = "challenger"
TAG_LOCK = "leanops.dvc_lock_sha256"
TAG_KEY = "leanops.cache_key"
TAG_MODEL = "leanops.model_name"
TAG_VERSION = "leanops.model_version"
TAG_BATCH = "leanops.batch"
RESULT_FILE = Path(".leanops") / "train-with-cache" / "result.json"
OUTPUT_NAMES = ("skipped", "run-id", "model-uri", "model-version", "metrics", "cache-key")
# dvc.yaml keys the fast up-to-date check understands; anything else lets `dvc repro` decide.
SIMPLE_STAGE_KEYS = {"cmd", "deps", "params", "outs", "metrics", "plots", "desc", "meta"}
SIMPLE_OUT_OPTIONS = {"cache", "desc", "remote", "push", "type", "title", "x", "y", "template", "x_label",
                      "y_label", "label", "labels"}


# ---------------------------------------------------------------------------- settings


@dataclass
class Settings:
    root: Path
    target: str
    model_name: str
    model_path: str
    experiment: str
    params_file: str
    metrics: list[str]
    overrides: dict[str, Any]
    tracking_uri: str | None
    configured_uri: str | None
    push: str
    select_metric: str
    select_direction: str
    batch: str
    cfg: cfgmod.Config = field(repr=False, default_factory=lambda: cfgmod.Config(data={}))


def _add_common(p: argparse.ArgumentParser) -> None:
    add_flag(p, "--working-directory", help="the DVC project (where dvc.yaml and leanops.yml are)", default=".")
    add_flag(p, "--target", help="one dvc.yaml stage (or path) to reproduce; empty: the whole pipeline", default="")
    add_flag(p, "--param-overrides", default="",
             help='JSON object of params to set before the run, e.g. {"train.C": 0.5}')
    add_flag(p, "--params", default="", help="the params file (default: leanops.yml, else params.yaml)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(SECTION, help="run the DVC pipeline with caching and record it in MLflow")
    p.add_argument("action", nargs="?", default="run", choices=["run", "key", "select"],
                   help="run (default), key (the cache key), select (best of a matrix)")
    _add_common(p)
    add_flag(p, "--model-name", help="registered model name (default: model.name in leanops.yml)", default="")
    add_flag(p, "--experiment", help="MLflow experiment (default: leanops.yml, else the model name)", default="")
    add_flag(p, "--metrics", default="",
             help="metrics files, comma/newline-separated (default: leanops.yml, else dvc.yaml's metrics)")
    add_flag(p, "--tracking-uri", default="",
             help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, leanops.yml, else the embedded local store)")
    add_flag(p, "--push", default="", choices=["auto", "true", "false"],
             help="dvc push --run-cache after training: auto (default) = when a remote exists; never from forks")
    add_flag(p, "--select-metric", default="", help="metric that picks the best of a matrix (default: leanops.yml)")
    add_flag(p, "--select-direction", default="", help="higher or lower (default: leanops.yml, else higher)")
    add_flag(p, "--batch", default="", help="tag shared by the legs of one matrix (leanops.batch)")
    add_flag(p, "--results", default="", help="select: folder of result.json files of the matrix legs")
    p.set_defaults(func=run)


def settings(args: argparse.Namespace) -> Settings:
    root = cfgmod.enter(args.working_directory)
    cfg = cfgmod.load(args.config)
    sec = cfg.section(SECTION)
    model_name = args.model_name or cfg.model_name or ""
    metrics = cfgmod.split_list(args.metrics) or cfgmod.split_list(sec.get("metrics"))
    direction = args.select_direction or sec.get("select-direction") or "higher"
    if direction not in ("higher", "lower"):
        raise BadInput(f"select-direction: expected higher or lower, got {direction!r}")
    return Settings(
        root=root, target=args.target or sec.get("target") or "", model_name=model_name,
        model_path=(cfg.data.get("model") or {}).get("path") or "",
        experiment=args.experiment or sec.get("experiment") or model_name,
        params_file=args.params or sec.get("params") or "params.yaml", metrics=metrics,
        overrides=parse_overrides(args.param_overrides), tracking_uri=args.tracking_uri or None,
        configured_uri=sec.get("tracking-uri"), push=args.push or str(sec.get("push") or "auto"),
        select_metric=args.select_metric or sec.get("select-metric") or "", select_direction=direction,
        batch=args.batch or "", cfg=cfg,
    )


def parse_overrides(text: str) -> dict[str, Any]:
    if not text or text.strip() in ("", "null", "{}", '""'):
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"param-overrides: not JSON ({exc.msg} at column {exc.colno}); "
                       'expected an object like {"train.C": 0.5}') from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise BadInput(f'param-overrides: expected a JSON object like {{"train.C": 0.5}}, got {text.strip()[:60]!r}')
    return cfgmod.flatten(value)


# ---------------------------------------------------------------------------- the pipeline files


def _yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    data, _ = cfgmod.parse_yaml(path.read_text(encoding="utf-8"), str(path))
    return data


def load_pipeline(root: Path) -> dict[str, Any]:
    path = root / "dvc.yaml"
    if not path.is_file():
        raise BadInput(f"no dvc.yaml in {root}; expected a DVC pipeline (dvc stage add ...) or set working-directory")
    data = _yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict) or not data["stages"]:
        raise BadInput("expected a mapping with a non-empty 'stages'", file="dvc.yaml")
    return data


def load_lock(root: Path) -> dict[str, Any]:
    data = _yaml(root / "dvc.lock")
    return data if isinstance(data, dict) else {}


def _entries(items: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """dvc.yaml deps/outs/metrics entries as (path, options)."""
    for item in items or []:
        if isinstance(item, str):
            yield item, {}
        elif isinstance(item, dict) and len(item) == 1:
            (path, opts), = item.items()
            yield str(path), dict(opts or {})
        else:
            yield str(item), {"?": True}


def stage_outs(stage: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [e for key in ("outs", "metrics", "plots") for e in _entries(stage.get(key))]


def params_values(root: Path, params_file: str, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every params file the pipeline reads, flattened, with the overrides applied to the main one."""
    pipeline = load_pipeline(root)
    files = {params_file}
    for stage in pipeline["stages"].values():
        for item in stage.get("params") or [] if isinstance(stage, dict) else []:
            if isinstance(item, dict):
                files.update(str(k) for k in item)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(files):
        path = root / name
        if not path.is_file():
            continue
        data = _load_params_file(path)
        out[name] = cfgmod.flatten(data)
    if overrides:
        main = out.setdefault(params_file, {})
        unknown = sorted(k for k in overrides if k not in main)
        if unknown:
            raise BadInput(f"param-overrides: {', '.join(unknown)} not in {params_file}; expected existing keys "
                           f"such as {', '.join(sorted(main)[:4])}")
        main.update(overrides)
    return out


def _load_params_file(path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BadInput(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    else:
        data = _yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput("expected a mapping of parameters", file=str(path))
    return data


def apply_overrides(root: Path, params_file: str, overrides: dict[str, Any]) -> None:
    """Write the overrides into the params file (like ``dvc exp run --set-param``)."""
    if not overrides:
        return
    import yaml

    path = root / params_file
    data = _load_params_file(path)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    atomic_write(path, text)
    gh.step(f"params: {', '.join(f'{k}={v!r}' for k, v in overrides.items())} -> {params_file}")


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree_digest(path: Path) -> str:
    if path.is_file():
        return md5_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}\0{md5_file(f)}\n".encode())
        return "dir:" + h.hexdigest()
    return "missing"


def source_deps(pipeline: dict[str, Any]) -> list[str]:
    """Dependencies no stage produces: the data and code the pipeline starts from."""
    produced = {os.path.normpath(p) for st in pipeline["stages"].values() if isinstance(st, dict)
                for p, _ in stage_outs(st)}
    deps = {os.path.normpath(p) for st in pipeline["stages"].values() if isinstance(st, dict)
            for p, _ in _entries(st.get("deps"))}
    return sorted(d for d in deps if d not in produced and not re.match(r"^[a-z0-9]+://", d))


def lock_digest(root: Path) -> str:
    path = root / "dvc.lock"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "none"


# ---------------------------------------------------------------------------- cache key


def dvc_cache_dir(root: Path) -> Path:
    """DVC's cache (``.dvc/cache`` unless ``cache.dir`` says otherwise)."""
    import configparser

    dvc_dir = root / ".dvc"
    for name in ("config.local", "config"):
        parser = configparser.ConfigParser(strict=False)
        try:
            parser.read(dvc_dir / name)
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            return (dvc_dir / parser.get("cache", "dir")).resolve()
    return (dvc_dir / "cache").resolve()


def has_remote(root: Path) -> bool:
    text = ""
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if path.is_file():
            text += path.read_text(encoding="utf-8") + "\n"
    return bool(re.search(r"(?m)^\s*\[\s*'?remote\s+\"", text)) and bool(re.search(r"(?m)^\s*remote\s*=", text))


def uncached_outs(pipeline: dict[str, Any]) -> list[str]:
    return sorted({p for st in pipeline["stages"].values() if isinstance(st, dict)
                   for p, opts in stage_outs(st) if opts.get("cache") is False})


def cache_key(s: Settings) -> dict[str, str]:
    """The actions/cache key and what it covers."""
    pipeline = load_pipeline(s.root)
    h = hashlib.sha256()
    h.update((s.root / "dvc.yaml").read_bytes())
    lock = s.root / "dvc.lock"
    h.update(lock.read_bytes() if lock.is_file() else b"no lock")
    h.update(json.dumps(params_values(s.root, s.params_file, s.overrides), sort_keys=True, default=str).encode())
    for dep in source_deps(pipeline):
        h.update(f"{dep}\0{_tree_digest(s.root / dep)}\n".encode())
    h.update(f"target={s.target}".encode())
    where = hashlib.sha256(f"{os.environ.get('GITHUB_REPOSITORY', '')}:{_rel_workdir(s.root)}".encode())
    prefix = f"leanops-dvc-{platform.system().lower()}-{where.hexdigest()[:8]}-"
    paths = [str(dvc_cache_dir(s.root))]
    paths += [str((s.root / p).resolve()) for p in uncached_outs(pipeline)]
    return {"cache-key": prefix + h.hexdigest()[:32], "restore-prefix": prefix, "cache-path": "\n".join(paths)}


def _rel_workdir(root: Path) -> str:
    ws = os.environ.get("GITHUB_WORKSPACE")
    try:
        return str(root.relative_to(Path(ws).resolve())) if ws else root.name
    except ValueError:
        return str(root)


# ---------------------------------------------------------------------------- up to date?


def up_to_date(s: Settings) -> tuple[bool, str]:
    """Whether every stage matches dvc.lock (hashes, params, command), checked without DVC.

    Returns (False, reason) as soon as anything differs or is beyond this check (then DVC decides).
    """
    pipeline = load_pipeline(s.root)
    if set(pipeline) - {"stages", "plots", "metrics", "params", "artifacts"}:
        return False, "dvc.yaml uses templating"
    lock_stages = load_lock(s.root).get("stages") or {}
    params = params_values(s.root, s.params_file, {})
    hashes: dict[str, str] = {}
    for name, stage in pipeline["stages"].items():
        if not isinstance(stage, dict) or set(stage) - SIMPLE_STAGE_KEYS or "${" in json.dumps(stage):
            return False, f"stage {name} is beyond the quick check"
        locked = lock_stages.get(name)
        if not isinstance(locked, dict):
            return False, f"stage {name} is not in dvc.lock"
        if stage.get("cmd") != locked.get("cmd"):
            return False, f"stage {name}: command changed"
        for kind, entries in (("deps", list(_entries(stage.get("deps")))), ("outs", stage_outs(stage))):
            lock_entries = {os.path.normpath(e.get("path", "")): e for e in locked.get(kind) or []}
            if {os.path.normpath(p) for p, _ in entries} != set(lock_entries):
                return False, f"stage {name}: {kind} changed"
            for path, opts in entries:
                if set(opts) - SIMPLE_OUT_OPTIONS or opts.get("persist"):
                    return False, f"stage {name}: {path} options are beyond the quick check"
                entry = lock_entries[os.path.normpath(path)]
                want = entry.get("md5")
                if entry.get("hash") != "md5" or not want or str(want).endswith(".dir"):
                    return False, f"stage {name}: {path} is not a plain file"
                file = s.root / path
                if not file.is_file():
                    return False, f"stage {name}: {path} is missing"
                key = str(file)
                if key not in hashes:
                    hashes[key] = md5_file(file)
                if hashes[key] != want:
                    return False, f"stage {name}: {path} changed"
        locked_params = locked.get("params") or {}
        wanted: dict[str, list[str]] = {}
        for item in stage.get("params") or []:
            if isinstance(item, str):
                wanted.setdefault("params.yaml", []).append(item)  # DVC's default params file
            elif isinstance(item, dict):
                for pfile, keys in item.items():
                    if not isinstance(keys, list):
                        return False, f"stage {name}: whole-file params"
                    wanted.setdefault(str(pfile), []).extend(str(k) for k in keys)
            else:
                return False, f"stage {name}: params beyond the quick check"
        for pfile, keys in wanted.items():
            have = params.get(pfile, {})
            recorded = locked_params.get(pfile) or {}
            for k in keys:
                if k not in have or k not in recorded or have[k] != recorded[k]:
                    return False, f"stage {name}: param {k} changed"
    return True, "every stage matches dvc.lock"


# ---------------------------------------------------------------------------- dvc repro


@dataclass
class StageResult:
    name: str
    state: str  # ran, cached (restored from the run-cache), unchanged, failed
    seconds: float = 0.0


STAGE_LINE = re.compile(
    r"^(?:Running stage '(?P<run>[^']+)'|Stage '(?P<cached>[^']+)' is cached|Stage '(?P<same>[^']+)' didn't change)"
)
FAILED_LINE = re.compile(r"failed to reproduce '(?P<stage>[^']+)'")


def _dvc(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def reproduce(s: Settings) -> list[StageResult]:
    """``dvc repro`` with its log streamed; which stages ran, came from the run-cache or stayed."""
    cmd = _dvc(["repro", *([s.target] if s.target else [])])
    results: list[StageResult] = []
    tail: collections.deque[str] = collections.deque(maxlen=25)
    started = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in env.get("PATH", "").split(os.pathsep):  # the stages' `python` is the one with the libs
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    with gh.group("dvc repro" + (f" {s.target}" if s.target else "")):
        proc = subprocess.Popen(cmd, cwd=s.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", file=sys.stdout if gh.on_runner() else sys.stderr, flush=True)
            m = STAGE_LINE.match(line.strip())
            if m:
                now = time.monotonic()
                if results:
                    results[-1].seconds = now - started
                started = now
                tail.clear()
                name = m["run"] or m["cached"] or m["same"]
                results.append(StageResult(name, "ran" if m["run"] else "cached" if m["cached"] else "unchanged"))
            elif line.strip():
                tail.append(line.rstrip())
        code = proc.wait()
    if results:
        results[-1].seconds = time.monotonic() - started
    if code != 0:
        text = "\n".join(tail)
        failed = FAILED_LINE.search(text)
        stage = failed["stage"] if failed else (results[-1].name if results else "?")
        for r in results:
            if r.name == stage:
                r.state = "failed"
        if "dvc.yaml" in text and not results:
            last = next((ln for ln in reversed(tail) if "ERROR" in ln), tail[-1] if tail else "")
            raise BadInput(f"dvc repro: {last.removeprefix('ERROR: ')}", file="dvc.yaml")
        gh.add_summary(f"## train-with-cache: stage `{stage}` failed\n\n" + _stage_table(results)
                       + f"\n<details><summary>last lines of its output</summary>\n\n```text\n{text}\n```\n"
                       "</details>\n")
        last = next((ln for ln in reversed(tail) if ln.startswith("ERROR")), tail[-1] if tail else "no output")
        raise CheckFailed(f"stage {stage} failed: {last.removeprefix('ERROR: ')}")
    return results


def _stage_table(results: list[StageResult]) -> str:
    return gh.md_table(["stage", "result", "seconds"], [[r.name, r.state, f"{r.seconds:.1f}"] for r in results])


def trusted_ref() -> tuple[bool, str]:
    """Whether this run may write to shared storage: never a pull request from a fork."""
    event = os.environ.get("GITHUB_EVENT_NAME", "")
    if not event:
        return True, "not on a runner"
    if event in ("push", "workflow_dispatch", "schedule", "repository_dispatch", "release", "merge_group"):
        return True, f"{event} event"
    if event == "pull_request":
        payload: dict[str, Any] = {}
        path = os.environ.get("GITHUB_EVENT_PATH")
        if path and Path(path).is_file():
            try:
                payload = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                payload = {}
        pr = payload.get("pull_request") or {}
        head = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
        base = ((pr.get("base") or {}).get("repo") or {}).get("full_name") or os.environ.get("GITHUB_REPOSITORY")
        if head and base and head == base:
            return True, "pull request from a branch of this repository"
        return False, "pull request from a fork"
    return False, f"{event} event"


def dvc_transfer(s: Settings, verb: str) -> None:
    res = subprocess.run(_dvc([verb, "--run-cache"]), cwd=s.root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        if verb == "pull":
            gh.warning(f"dvc pull --run-cache: {last} (continuing; stages without cached results run)")
            return
        raise InfraError(f"dvc push --run-cache failed: {last}")
    gh.step(f"dvc {verb} --run-cache: done")


# ---------------------------------------------------------------------------- metrics


def metrics_files(s: Settings) -> list[str]:
    if s.metrics:
        return s.metrics
    pipeline = load_pipeline(s.root)
    return [p for st in pipeline["stages"].values() if isinstance(st, dict) for p, _ in _entries(st.get("metrics"))]


def read_metrics(s: Settings) -> dict[str, float]:
    """Numbers from the metrics files (JSON or YAML mappings), flattened to ``a.b`` names."""
    out: dict[str, float] = {}
    files = metrics_files(s)
    for name in files:
        path = s.root / name
        if not path.is_file():
            gh.warning(f"{name}: metrics file not found after the run; not logged")
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        data: Any = None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            try:
                import yaml

                data = yaml.safe_load(text)
            except Exception:  # noqa: BLE001 - any parse failure is the same user mistake
                data = None
        if not isinstance(data, dict):
            raise BadInput("not a JSON or YAML mapping; expected a metrics file like {\"roc_auc\": 0.82}",
                           file=name)
        prefix = "" if len(files) == 1 else Path(name).stem + "."
        for key, value in cfgmod.flatten(data).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[prefix + key] = float(value)
    return out


# ---------------------------------------------------------------------------- MLflow


@dataclass
class Outcome:
    skipped: bool
    run_id: str
    model_uri: str
    model_version: str
    metrics: dict[str, float]
    cache_key: str
    tracking_uri: str
    local_store: bool
    stages: list[StageResult] = field(default_factory=list)

    def outputs(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "run-id": self.run_id, "model-uri": self.model_uri,
                "model-version": self.model_version, "metrics": json.dumps(self.metrics, indent=2, sort_keys=True),
                "cache-key": self.cache_key}


def find_existing(s: Settings, uri: str, tags: dict[str, str]) -> Outcome | None:
    """The run that recorded this pipeline state (its dvc.lock digest, or the cache key of the state it started
    from), with a registered version; without importing mlflow when possible."""
    store = tracking.reader(uri)
    if store is None:
        return None
    exp = store.experiment_id(s.experiment)
    if exp is None:
        return None
    run = store.find_run(exp, {**tags, TAG_MODEL: s.model_name})
    if run is None:
        return None
    versions = store.versions_of_run(s.model_name, run.run_id)
    if not versions:
        return None
    mv = versions[-1]
    return Outcome(skipped=True, run_id=run.run_id, model_uri=mv.uri, model_version=mv.version,
                   metrics=run.metrics, cache_key="", tracking_uri=uri, local_store=False)


def _load_model(s: Settings) -> Any:
    import pickle

    path = s.root / s.model_path
    if not path.is_file():
        raise BadInput(f"model.path: {s.model_path} does not exist after the pipeline ran; expected the file "
                       "the pipeline writes", file=str(s.cfg.path or "leanops.yml"),
                       line=s.cfg.line_of("model", "path"))
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - the adopting pipeline's own artifact
    except Exception as exc:  # noqa: BLE001 - whatever the unpickler says, the file is not a model
        raise BadInput(f"model.path: {s.model_path} is not a pickled model ({type(exc).__name__}: {exc}); "
                       "expected a pickled scikit-learn estimator", file=str(s.cfg.path or "leanops.yml"),
                       line=s.cfg.line_of("model", "path")) from None


def _gate_predictions(s: Settings) -> str:
    """gate-metrics.bootstrap.predictions when the pipeline wrote it ("" otherwise)."""
    name = str(((s.cfg.data.get("gate-metrics") or {}).get("bootstrap") or {}).get("predictions") or "")
    return name if name and (s.root / name).is_file() else ""


def _example_path(s: Settings) -> tuple[Path | None, str]:
    """model.input-example, else the CSV/Parquet input of the stage that writes model.path."""
    explicit = (s.cfg.data.get("model") or {}).get("input-example")
    if explicit:
        return s.root / str(explicit), str(explicit)
    target = os.path.normpath(s.model_path)
    for stage in load_pipeline(s.root)["stages"].values():
        outs = [str(p) for item in (stage.get("outs") or []) for p in (item if isinstance(item, dict) else {item: 0})]
        if target in (os.path.normpath(o) for o in outs):
            for dep in stage.get("deps") or []:
                dep = str(dep)
                if dep.endswith((".csv", ".parquet")):
                    return s.root / dep, dep
    return None, ""


def _signature(s: Settings, model: Any) -> Any:
    """The model's signature inferred from up to 100 example rows; None (and a warning) without them.

    build-push-image and the model server need it: they check request bodies against its columns.
    """
    from mlflow.models import infer_signature

    from .datasets import read_table

    path, shown = _example_path(s)
    if path is None or not path.is_file():
        gh.warning(f"model signature not inferred: {'no example rows' if not shown else shown + ' is missing'}; "
                   "set model.input-example to rows the model accepts (build-push-image needs the signature)",
                   file=str(s.cfg.path or "leanops.yml"), title="leanops train-with-cache")
        return None
    rows = read_table(path).head(100)  # BadInput names the file when it cannot be read
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        missing = [str(n) for n in names if n not in rows.columns]
        if missing:
            raise BadInput(f"model.input-example: {shown} lacks the model's input columns {', '.join(missing)}; "
                           "expected rows the model accepts", file=str(s.cfg.path or "leanops.yml"),
                           line=s.cfg.line_of("model", "input-example"))
        rows = rows[[str(n) for n in names]]
    try:
        with warnings.catch_warnings():  # mlflow's hint about integer columns and missing values, on every run
            warnings.simplefilter("ignore", UserWarning)
            return infer_signature(rows, model.predict(rows))
    except Exception as exc:  # noqa: BLE001 - the adopter's model refused the example rows
        raise BadInput(f"model.input-example: the model cannot predict the rows of {shown} "
                       f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); expected rows the model accepts",
                       file=str(s.cfg.path or "leanops.yml"), line=s.cfg.line_of("model", "input-example")) from None


def _fault(point: str) -> None:
    """Fault injection for the tests of the clean-up path (LEANOPS_TRAIN_FAULT=<point>)."""
    if os.environ.get("LEANOPS_TRAIN_FAULT") == point:
        raise InfraError(f"injected fault at {point} (LEANOPS_TRAIN_FAULT)")


def log_and_register(s: Settings, uri: str, key: str, lock_hash: str, metrics: dict[str, float],
                     stages: list[StageResult], trained: bool, push: bool) -> tuple[str, str]:
    """One MLflow run with everything, then a model version with the alias challenger.

    Registration comes last; any failure before the alias is set deletes the version and marks the run
    FAILED, so no half-registered version remains.
    """
    tracking.configure_mlflow(uri)
    with gh.group("MLflow: log and register"):
        t0 = time.monotonic()
        import mlflow
        import mlflow.sklearn
        from mlflow import MlflowClient

        gh.step(f"mlflow {mlflow.__version__} imported in {time.monotonic() - t0:.1f}s")
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(uri, registry_uri=uri)
        model = _load_model(s)
        exp = client.get_experiment_by_name(s.experiment)
        if exp is None or exp.lifecycle_stage != "active":
            art = None
            if uri.startswith("sqlite:"):
                art = (s.root / tracking.LOCAL_STORE / "artifacts").resolve().as_uri()
            exp_id = client.create_experiment(s.experiment, artifact_location=art)
        else:
            exp_id = exp.experiment_id
        lock = load_lock(s.root)
        tags = {
            TAG_LOCK: lock_hash, TAG_KEY: key, TAG_MODEL: s.model_name, "leanops.trained": str(trained).lower(),
            "mlflow.source.git.commit": gh.commit_sha(s.root), "mlflow.source.type": "JOB",
            "leanops.stages": ",".join(f"{r.name}:{r.state}" for r in stages),
        }
        if s.batch:
            tags[TAG_BATCH] = s.batch
        if os.environ.get("GITHUB_RUN_ID"):
            tags["github.run_url"] = (f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                                      f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/"
                                      f"{os.environ['GITHUB_RUN_ID']}")
        sources = source_deps(load_pipeline(s.root))
        for stage in (lock.get("stages") or {}).values():
            for dep in stage.get("deps") or []:
                if dep.get("path") in sources and dep.get("md5"):
                    tags[f"dvc.dep.{dep['path']}"] = str(dep["md5"])
        params = {k: v for f in params_values(s.root, s.params_file, {}).values() for k, v in f.items()}
        run = client.create_run(exp_id, tags=tags, run_name=f"train-{lock_hash[:8]}")
        run_id = run.info.run_id
        version: str | None = None
        try:
            from mlflow.entities import Metric, Param

            now = int(time.time() * 1000)
            client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                             metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
            client.log_artifact(run_id, str(s.root / "dvc.lock"), "dvc")
            client.log_artifact(run_id, str(s.root / "dvc.yaml"), "dvc")
            for name in metrics_files(s):
                if (s.root / name).is_file():
                    client.log_artifact(run_id, str(s.root / name), "metrics")
            mlflow.set_experiment(experiment_id=exp_id)  # start_run refuses a run outside the active experiment
            version_tags = {TAG_LOCK: lock_hash, TAG_KEY: key}
            predictions = _gate_predictions(s)
            if predictions:  # what gate-metrics compares, for a gate (or promotion) in a job of its own
                client.log_artifact(run_id, str(s.root / predictions), "gate-metrics")
                version_tags[tracking.TAG_PREDICTIONS] = f"gate-metrics/{Path(predictions).name}"
            with mlflow.start_run(run_id=run_id):
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=_requirements(),
                                                serialization_format="cloudpickle", signature=_signature(s, model))
            gh.step(f"logged run {run_id} ({len(params)} params, {len(metrics)} metrics, model)")
            _fault("before-register")
            if push:
                dvc_transfer(s, "push")
            mv = mlflow.register_model(info.model_uri, s.model_name, tags=version_tags)
            version = str(mv.version)
            client.set_tag(run_id, TAG_VERSION, version)
            _fault("before-alias")
            client.set_registered_model_alias(s.model_name, ALIAS, version)
            client.set_terminated(run_id, "FINISHED")
        except BaseException:
            if version is not None:
                try:
                    client.delete_model_version(s.model_name, version)
                    gh.step(f"deleted the unfinished version {s.model_name}/{version}")
                except Exception as exc:  # noqa: BLE001 - report, then raise the first failure
                    gh.warning(f"could not delete the unfinished version {s.model_name}/{version}: {exc}")
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception as exc:  # noqa: BLE001 - the first failure is the one to report
                gh.warning(f"could not mark run {run_id} FAILED: {exc}")
            raise
        gh.step(f"registered {s.model_name} version {version} with alias {ALIAS} "
                f"in {time.monotonic() - t0:.1f}s")
        return run_id, version


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("scikit-learn", "cloudpickle", "numpy", "pandas", "scipy"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


# ---------------------------------------------------------------------------- commands


def run(args: argparse.Namespace) -> int:
    tracking.quiet_env()
    s = settings(args)
    if args.action == "key":
        return cmd_key(s)
    if args.action == "select":
        return cmd_select(s, args.results)
    return cmd_run(s)


def cmd_key(s: Settings) -> int:
    info = cache_key(s)
    _, local = tracking.resolve_uri(s.tracking_uri, s.configured_uri, s.root)
    if local:  # the embedded store travels with the DVC cache, so versions go on counting
        info["cache-path"] += "\n" + str((s.root / tracking.LOCAL_STORE).resolve())
    gh.set_outputs(info)
    gh.set_output("tracking", "local" if local else "server")
    gh.set_output("store-path", str((s.root / tracking.LOCAL_STORE).resolve()) if local else "")
    gh.step(f"cache key {info['cache-key']}")
    return 0


def cmd_run(s: Settings) -> int:
    start = time.monotonic()
    if not s.model_name:
        raise BadInput("model.name: missing; expected the registered model name in leanops.yml (or --model-name)",
                       file=str(s.cfg.path or "leanops.yml"))
    if not s.model_path:
        raise BadInput("model.path: missing; expected the model file the pipeline writes",
                       file=str(s.cfg.path or "leanops.yml"))
    load_pipeline(s.root)
    key = cache_key(s)["cache-key"]
    uri, local = tracking.resolve_uri(s.tracking_uri, s.configured_uri, s.root)
    store = tracking.reader(uri)
    if store is not None:
        store.probe()  # unreachable: retries with backoff, then exit 3 before any work
    apply_overrides(s.root, s.params_file, s.overrides)
    fresh, reason = up_to_date(s)
    stages: list[StageResult] = []
    trained = False
    # A run that started from this same state (dvc.yaml, dvc.lock, params and every source dependency, all
    # in the cache key) already trained it: a fresh checkout whose outputs DVC cannot vouch for (a training
    # that is not bit for bit reproducible on another CPU) is not trained again.
    known = None
    if not fresh and all((s.root / d).exists() for d in source_deps(load_pipeline(s.root))):
        known = find_existing(s, uri, {TAG_KEY: key})
    if fresh or known is not None:
        gh.step(f"nothing to reproduce: {reason}" if known is None else
                f"nothing to reproduce: run {known.run_id} was trained from this same state (cache key {key})")
        stages = [StageResult(n, "unchanged") for n in load_pipeline(s.root)["stages"]]
    else:
        gh.step(f"dvc decides: {reason}")
        remote = has_remote(s.root)
        if remote:
            dvc_transfer(s, "pull")
        stages = reproduce(s)
        trained = any(r.state == "ran" for r in stages)
    lock_hash = lock_digest(s.root)
    outcome = known or (None if trained else find_existing(s, uri, {TAG_LOCK: lock_hash}))
    if outcome is None:
        metrics = read_metrics(s)
        push = False
        if trained:
            allowed, why = trusted_ref()
            want = s.push == "true" or (s.push == "auto" and has_remote(s.root))
            push = want and allowed
            if want and not allowed:
                gh.notice(f"dvc push --run-cache skipped: {why}")
        run_id, version = log_and_register(s, uri, key, lock_hash, metrics, stages, trained, push)
        outcome = Outcome(skipped=not trained, run_id=run_id, model_uri=f"models:/{s.model_name}/{version}",
                          model_version=version, metrics=metrics, cache_key=key, tracking_uri=uri,
                          local_store=local)
    else:
        gh.step(f"skipped: nothing changed; run {outcome.run_id}, {outcome.model_uri}")
    outcome.cache_key = key
    outcome.local_store = local
    outcome.stages = stages
    finish(s, outcome, time.monotonic() - start)
    return 0


def finish(s: Settings, o: Outcome, seconds: float) -> None:
    gh.set_outputs(o.outputs())
    gh.set_output("tracking", "local" if o.local_store else "server")
    result = {**o.outputs(), "metrics": o.metrics, "tracking-uri": tracking.mask_uri(o.tracking_uri),
              "select-metric": s.select_metric, "select-direction": s.select_direction,
              "param-overrides": s.overrides}
    atomic_write_json(s.root / RESULT_FILE, result)
    gh.set_output("result-file", str(s.root / RESULT_FILE))
    head = "skipped: nothing changed" if o.skipped else "trained and registered"
    lines = [f"## train-with-cache: {head}", "",
             gh.md_table(["", ""], [["model", f"`{o.model_uri}` (alias `{ALIAS}`)"], ["run", f"`{o.run_id}`"],
                                    ["tracking", f"`{tracking.mask_uri(o.tracking_uri)}`"
                                     + (" (embedded store, uploaded as an artifact)" if o.local_store else "")],
                                    ["cache key", f"`{o.cache_key}`"], ["took", f"{seconds:.1f}s"]]),
             "### Stages", "", _stage_table(o.stages)]
    if o.metrics:
        lines += ["### Metrics", "", gh.md_table(["metric", "value"],
                                                 [[k, f"{v:.6g}"] for k, v in sorted(o.metrics.items())])]
    gh.add_summary("\n".join(lines))


def cmd_select(s: Settings, results_dir: str) -> int:
    """The best leg of a matrix by select-metric; its outputs become the workflow's."""
    if not s.select_metric:
        raise BadInput("select-metric: missing; expected train-with-cache.select-metric in leanops.yml")
    folder = Path(results_dir or ".")
    files = sorted(folder.rglob("result.json"))
    if not files:
        raise BadInput(f"results: no result.json under {folder}; expected the matrix legs' results")
    legs = []
    for f in files:
        try:
            legs.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise BadInput(f"not a result file ({exc})", file=str(f)) from None
    scored = [leg for leg in legs if s.select_metric in (leg.get("metrics") or {})]
    if not scored:
        raise BadInput(f"select-metric: no leg reported {s.select_metric!r}; "
                       f"metrics seen: {', '.join(sorted({k for leg in legs for k in leg.get('metrics') or {}}))}")
    sign = 1 if s.select_direction == "higher" else -1
    best = max(scored, key=lambda leg: sign * float(leg["metrics"][s.select_metric]))
    uri = os.environ.get("MLFLOW_TRACKING_URI") or s.tracking_uri or s.configured_uri or ""
    store = tracking.reader(uri) if uri else None
    if isinstance(store, tracking.RestReader) and best.get("model-version"):
        store.set_alias(s.model_name, ALIAS, str(best["model-version"]))
        gh.step(f"alias {ALIAS} -> {s.model_name} version {best['model-version']}")
    gh.set_outputs({k: best.get(k, "") if k != "metrics" else json.dumps(best.get("metrics") or {}, indent=2,
                                                                          sort_keys=True) for k in OUTPUT_NAMES})
    rows = [[json.dumps(leg.get("param-overrides") or {}), leg.get("model-version", ""),
             f"{float(leg['metrics'][s.select_metric]):.6g}" if leg in scored else "-",
             "best" if leg is best else ""] for leg in legs]
    gh.add_summary(f"## train-with-cache: best of {len(legs)} by {s.select_metric} ({s.select_direction})\n\n"
                   + gh.md_table(["param-overrides", "version", s.select_metric, ""], rows))
    return 0

