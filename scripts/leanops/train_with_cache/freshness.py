"""Whether anything needs training: the actions/cache key and the quick check of dvc.lock against the work tree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import gh
from ..dvcproject import (
    Project,
    dvc_cache_dir,
    entries,
    md5_file,
    stage_outs,
    tree_digest,
)
from ..errors import BadInput, InfraError
from .settings import SECTION, Settings

# dvc.yaml keys the fast up-to-date check understands; anything else lets `dvc repro` decide.
SIMPLE_STAGE_KEYS = {"cmd", "deps", "params", "outs", "metrics", "plots", "desc", "meta"}
SIMPLE_OUT_OPTIONS = {"cache", "desc", "remote", "push", "type", "title", "x", "y", "template", "x_label",
                      "y_label", "label", "labels"}


def cache_key(s: Settings, project: Project | None = None) -> dict[str, str]:
    """The actions/cache key and what it covers."""
    project = project or Project.load(s.root)
    h = hashlib.sha256()
    h.update((s.root / "dvc.yaml").read_bytes())
    lock = s.root / "dvc.lock"
    h.update(lock.read_bytes() if lock.is_file() else b"no lock")
    h.update(json.dumps(project.params(s.params_file, s.overrides), sort_keys=True, default=str).encode())
    for dep in project.source_deps():
        h.update(f"{dep}\0{tree_digest(s.root / dep)}\n".encode())
    h.update(f"target={s.target}".encode())
    where = hashlib.sha256(f"{os.environ.get('GITHUB_REPOSITORY', '')}:{gh.workspace_path(s.root)}".encode())
    prefix = f"leanops-dvc-{platform.system().lower()}-{where.hexdigest()[:8]}-"
    paths = [str(dvc_cache_dir(s.root))]
    paths += [str((s.root / p).resolve()) for p in project.uncached_outs()]
    return {"cache-key": prefix + h.hexdigest()[:32], "restore-prefix": prefix, "cache-path": "\n".join(paths)}


def up_to_date(s: Settings, project: Project | None = None) -> tuple[bool, str]:
    """Whether every stage matches dvc.lock (hashes, params, command), checked without DVC.

    Returns (False, reason) as soon as anything differs or is beyond this check (then DVC decides).
    """
    project = project or Project.load(s.root)
    pipeline = project.pipeline
    if set(pipeline) - {"stages", "plots", "metrics", "params", "artifacts"}:
        return False, "dvc.yaml uses templating"
    lock_stages = project.lock.get("stages") or {}
    params = project.params(s.params_file, {})
    hashes: dict[str, str] = {}
    for name, stage in pipeline["stages"].items():
        if not isinstance(stage, dict) or set(stage) - SIMPLE_STAGE_KEYS or "${" in json.dumps(stage):
            return False, f"stage {name} is beyond the quick check"
        locked = lock_stages.get(name)
        if not isinstance(locked, dict):
            return False, f"stage {name} is not in dvc.lock"
        if stage.get("cmd") != locked.get("cmd"):
            return False, f"stage {name}: command changed"
        for kind, items in (("deps", list(entries(stage.get("deps")))), ("outs", stage_outs(stage))):
            lock_entries = {os.path.normpath(e.get("path", "")): e for e in locked.get(kind) or []}
            if {os.path.normpath(p) for p, _ in items} != set(lock_entries):
                return False, f"stage {name}: {kind} changed"
            for path, opts in items:
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


# ---------------------------------------------------------------------------- refresh: fresh data in

TAG_REFRESH = "leanops.refresh"  # on the run: JSON list of what was refreshed, from where, when, with which hashes
NO_NEW_DATA = "no new data"


@dataclass
class Refreshed:
    """One refreshed stage (or DVC import): how, what it reads, what it wrote (path -> md5) and when."""

    name: str
    how: str
    source: dict[str, Any]
    outputs: dict[str, str]
    at: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "how": self.how, "source": self.source, "outputs": self.outputs,
                "refreshed_at": self.at}


def refresh_targets(s: Settings, project: Project) -> list[tuple[str, str]]:
    """(name, kind) of train-with-cache.refresh: ``import`` for a DVC import file (``*.dvc``), else ``stage``."""
    file = str(s.cfg.path or "leanops.yml")
    if not s.refresh:
        raise BadInput("refresh: no stages to refresh; expected train-with-cache.refresh in leanops.yml, a list of "
                       "the dvc.yaml stages (or DVC import files *.dvc) that bring data in", file=file,
                       line=s.cfg.line_of(SECTION))
    out = []
    for i, name in enumerate(s.refresh):
        if name.endswith(".dvc") and (s.root / name).is_file():
            out.append((name, "import"))
        elif name in project.stages:
            out.append((name, "stage"))
        else:
            known = ", ".join(sorted(project.stages)) or "none"
            raise BadInput(f"refresh: {name!r} is neither a stage of dvc.yaml ({known}) nor a DVC import file "
                           "(*.dvc)", file=file, line=s.cfg.line_of(SECTION, "refresh", i))
    return out


def _dvc_env() -> dict[str, str]:
    from .repro import stage_env, trusted_ref

    env = dict(stage_env(trusted_ref()[0]), PYTHONUNBUFFERED="1")
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in env.get("PATH", "").split(os.pathsep):  # the stages' `python` is the one with the libs
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


def _import_outputs(root: Path, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    import yaml

    data = yaml.safe_load((root / name).read_text(encoding="utf-8")) or {}
    base = Path(name).parent
    outs = {os.path.normpath(base / str(o.get("path"))): str(o.get("md5") or "") for o in data.get("outs") or []}
    deps = data.get("deps") or []
    source = {"deps": [str(d.get("path")) for d in deps],
              **({"repo": (deps[0].get("repo") or {}).get("url", "")} if deps and deps[0].get("repo") else {})}
    return outs, source


def _stage_outputs(root: Path, name: str) -> dict[str, str]:
    locked = (Project.load(root).lock.get("stages") or {}).get(name) or {}
    return {os.path.normpath(str(o.get("path"))): str(o.get("md5") or "") for o in locked.get("outs") or []}


def refresh(s: Settings, project: Project) -> list[Refreshed]:
    """Run the refresh stages first: ``dvc update`` for imports, ``dvc repro -f -s`` for stages. A source that
    cannot be read (the stage fails) is InfraError in one line, before anything is written to the registry."""
    from .repro import _dvc

    done = []
    params = project.params(s.params_file, s.overrides)
    for name, kind in refresh_targets(s, project):
        args = ["update", name] if kind == "import" else ["repro", "-f", "-s", name]
        how = "dvc " + " ".join(args[:-1])
        with gh.group(f"refresh: {how} {name}"):
            res = subprocess.run(_dvc(args), cwd=s.root, capture_output=True, text=True, env=_dvc_env(),
                                 check=False)
            print(res.stdout + res.stderr, file=sys.stdout if gh.on_runner() else sys.stderr, flush=True)
        if res.returncode != 0:
            lines = [ln.strip() for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
            last = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "no output")
            said = next((ln for ln in reversed(lines) if not ln.startswith(("ERROR", "Running stage", ">"))), "")
            why = last.removeprefix("ERROR: ")[:200] + (f" ({said[:200]})" if said and said != last else "")
            raise InfraError(f"refresh: {how} {name} failed, the data source could not be read: {why}")
        at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        if kind == "import":
            outputs, source = _import_outputs(s.root, name)
        else:
            stage = project.stages[name]
            outputs = _stage_outputs(s.root, name)
            keys = [str(k) for item in stage.get("params") or [] for k in (item if isinstance(item, dict) else [item])]
            flat = {k: v for f in params.values() for k, v in f.items()}
            source = {"command": stage.get("cmd"), "deps": [str(d) for d in stage.get("deps") or []],
                      "params": {k: flat[k] for k in keys if k in flat}}
        done.append(Refreshed(name, how, source, outputs, at))
        gh.step(f"refresh: {how} {name} -> " + ", ".join(f"{p} md5 {m[:12]}" for p, m in outputs.items()))
    return done


def lock_hashes(text: str) -> dict[str, str]:
    """path -> md5 of every dependency and output a dvc.lock records."""
    import yaml

    data = yaml.safe_load(text) or {}
    out: dict[str, str] = {}
    for stage in (data.get("stages") or {}).values():
        for kind in ("deps", "outs"):
            for entry in (stage or {}).get(kind) or []:
                if isinstance(entry, dict) and entry.get("path") and entry.get("md5"):
                    out[os.path.normpath(str(entry["path"]))] = str(entry["md5"])
    return out


def champion_data(s: Settings, uri: str) -> tuple[str, dict[str, str]] | None:
    """The champion (alias champion of model.name) and the data hashes of its training (its run's dvc.lock);
    None without a champion or without a recorded dvc.lock."""
    import tempfile

    from .. import tracking

    found = tracking.alias_detail(uri, s.model_name, "champion")
    if found is None or not found.info.run_id:
        return None
    local = tracking.download_artifact(uri, found.info.run_id, "dvc/dvc.lock",
                                       Path(tempfile.mkdtemp(prefix="leanops-refresh-")))
    if local is None or not local.is_file():
        return None
    return found.info.version, lock_hashes(local.read_text(encoding="utf-8"))


def same_data(refreshed: list[Refreshed], champion: dict[str, str]) -> bool:
    """Whether every refreshed output has the hash the champion was trained with."""
    outputs = {p: m for r in refreshed for p, m in r.outputs.items()}
    return bool(outputs) and all(champion.get(p) == m for p, m in outputs.items())
