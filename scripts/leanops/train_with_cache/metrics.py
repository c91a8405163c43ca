"""The pipeline's metrics files, read and flattened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from .. import gh
from ..dvcproject import Project
from ..errors import BadInput
from .settings import Settings


def metrics_files(s: Settings, project: Project | None = None) -> list[str]:
    if s.metrics:
        return s.metrics
    return (project or Project.load(s.root)).metrics_files()


def read_metrics(s: Settings, project: Project | None = None) -> dict[str, float]:
    """Numbers from the metrics files (JSON or YAML mappings), flattened to ``a.b`` names."""
    out: dict[str, float] = {}
    files = metrics_files(s, project)
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
