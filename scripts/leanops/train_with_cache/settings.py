"""train-with-cache's settings: flags over ``leanops.yml``'s ``train-with-cache`` section.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from ..errors import BadInput
from ..flags import parse_bool

SECTION = "train-with-cache"


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
    model_run: bool = False  # model.run: the stage logs its own MLflow run and model
    trusted_types: list[str] = field(default_factory=list)  # model.trusted-types (skops)
    refresh: list[str] = field(default_factory=list)  # train-with-cache.refresh: stages (or *.dvc imports)
    run_refresh: bool = False  # --refresh: run them first; no new data, no training


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
        batch=args.batch or "", cfg=cfg, model_run=(cfg.data.get("model") or {}).get("run") is True,
        trusted_types=[str(t) for t in (cfg.data.get("model") or {}).get("trusted-types") or []],
        refresh=cfgmod.split_list(sec.get("refresh")), run_refresh=parse_bool(getattr(args, "refresh", False)),
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
