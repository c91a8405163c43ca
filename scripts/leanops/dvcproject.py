"""The DVC project as one parsed value: dvc.yaml, dvc.lock and the params files, with the queries the
capabilities make of them (source dependencies, outputs, metrics files, the stage that writes a file).

``Project.load(root)`` reads dvc.yaml and dvc.lock once; the params files are read when first asked for.
What changes them (``dvc repro``, param overrides) is followed by a new ``Project.load``.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as cfgmod
from . import gh
from .errors import BadInput
from .fsutil import atomic_write


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


def entries(items: Any) -> Iterator[tuple[str, dict[str, Any]]]:
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
    return [e for key in ("outs", "metrics", "plots") for e in entries(stage.get(key))]


def load_params_file(path: Path) -> dict[str, Any]:
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


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(path: Path) -> str:
    if path.is_file():
        return md5_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}\0{md5_file(f)}\n".encode())
        return "dir:" + h.hexdigest()
    return "missing"


def dvc_cache_dir(root: Path) -> Path:
    """DVC's cache (``.dvc/cache`` unless ``cache.dir`` says otherwise)."""
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


def lock_digest(root: Path) -> str:
    path = root / "dvc.lock"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "none"


def apply_overrides(root: Path, params_file: str, overrides: dict[str, Any]) -> None:
    """Write the overrides into the params file (like ``dvc exp run --set-param``)."""
    if not overrides:
        return
    import yaml

    path = root / params_file
    data = load_params_file(path)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    atomic_write(path, text)
    gh.step(f"params: {', '.join(f'{k}={v!r}' for k, v in overrides.items())} -> {params_file}")


@dataclass
class Project:
    """dvc.yaml and dvc.lock of one DVC project, parsed once."""

    root: Path
    pipeline: dict[str, Any]
    lock: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Project:
        return cls(root=root, pipeline=load_pipeline(root), lock=load_lock(root))

    @property
    def stages(self) -> dict[str, Any]:
        return self.pipeline["stages"]

    def _stage_dicts(self) -> Iterator[dict[str, Any]]:
        return (st for st in self.stages.values() if isinstance(st, dict))

    def source_deps(self) -> list[str]:
        """Dependencies no stage produces: the data and code the pipeline starts from."""
        produced = {os.path.normpath(p) for st in self._stage_dicts() for p, _ in stage_outs(st)}
        deps = {os.path.normpath(p) for st in self._stage_dicts() for p, _ in entries(st.get("deps"))}
        return sorted(d for d in deps if d not in produced and not re.match(r"^[a-z0-9]+://", d))

    def uncached_outs(self) -> list[str]:
        return sorted({p for st in self._stage_dicts() for p, opts in stage_outs(st) if opts.get("cache") is False})

    def metrics_files(self) -> list[str]:
        return [p for st in self._stage_dicts() for p, _ in entries(st.get("metrics"))]

    def params_files(self, params_file: str) -> set[str]:
        files = {params_file}
        for stage in self.stages.values():
            for item in stage.get("params") or [] if isinstance(stage, dict) else []:
                if isinstance(item, dict):
                    files.update(str(k) for k in item)
        return files

    def params(self, params_file: str, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every params file the pipeline reads, flattened, with the overrides applied to the main one."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self.params_files(params_file)):
            path = self.root / name
            if not path.is_file():
                continue
            out[name] = cfgmod.flatten(load_params_file(path))
        if overrides:
            main = out.setdefault(params_file, {})
            unknown = sorted(k for k in overrides if k not in main)
            if unknown:
                raise BadInput(f"param-overrides: {', '.join(unknown)} not in {params_file}; expected existing keys "
                               f"such as {', '.join(sorted(main)[:4])}")
            main.update(overrides)
        return out

    def locked_dep_hashes(self, data_stages: Iterable[str] = ()) -> dict[str, str]:
        """The md5 that dvc.lock records for each source dependency, and for each output of ``data_stages``
        (train-with-cache.refresh: the stages that bring the data in from outside, e.g. a database table)."""
        sources = self.source_deps()
        out: dict[str, str] = {}
        stages = self.lock.get("stages") or {}
        for stage in stages.values():
            for dep in stage.get("deps") or []:
                if dep.get("path") in sources and dep.get("md5"):
                    out[str(dep["path"])] = str(dep["md5"])
        for name in data_stages:
            for item in (stages.get(name) or {}).get("outs") or []:
                if item.get("path") and item.get("md5"):
                    out[str(item["path"])] = str(item["md5"])
        return out

    def writer_inputs(self, path: str) -> list[str]:
        """The dependencies of the stage whose outs include ``path`` (empty when no stage writes it)."""
        target = os.path.normpath(path)
        for stage in self.stages.values():
            outs = [str(p) for item in (stage.get("outs") or [])
                    for p in (item if isinstance(item, dict) else {item: 0})]
            if target in (os.path.normpath(o) for o in outs):
                return [str(dep) for dep in stage.get("deps") or []]
        return []


def params_values(root: Path, params_file: str, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every params file the pipeline at ``root`` reads (see ``Project.params``)."""
    return Project.load(root).params(params_file, overrides)
