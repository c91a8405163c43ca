"""Whether anything needs training: the actions/cache key and the quick check of dvc.lock against the work tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from ..dvcproject import (
    Project,
    dvc_cache_dir,
    entries,
    md5_file,
    stage_outs,
    tree_digest,
)
from .settings import Settings

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
    where = hashlib.sha256(f"{os.environ.get('GITHUB_REPOSITORY', '')}:{_rel_workdir(s.root)}".encode())
    prefix = f"leanops-dvc-{platform.system().lower()}-{where.hexdigest()[:8]}-"
    paths = [str(dvc_cache_dir(s.root))]
    paths += [str((s.root / p).resolve()) for p in project.uncached_outs()]
    return {"cache-key": prefix + h.hexdigest()[:32], "restore-prefix": prefix, "cache-path": "\n".join(paths)}


def _rel_workdir(root: Path) -> str:
    ws = os.environ.get("GITHUB_WORKSPACE")
    try:
        return str(root.relative_to(Path(ws).resolve())) if ws else root.name
    except ValueError:
        return str(root)


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
