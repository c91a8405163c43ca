"""What a person reads and the workflow uses: outputs, the result file and the job summary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import gh, tracking
from ..dvcproject import Project
from ..fsutil import atomic_write_json
from .freshness import Refreshed
from .registry import ALIAS, Outcome
from .repro import _stage_table
from .settings import Settings

RESULT_FILE = Path(".leanops") / "train-with-cache" / "result.json"
# what gate-metrics reads of the candidate, at their leanops.yml paths: uploaded by the workflow as the artifact
# leanops-gate-inputs, so a gate in a job of its own has them in every mode (embedded store or server)
GATE_INPUTS = Path(".leanops") / "train-with-cache" / "gate-inputs"


def gate_files(s: Settings, project: Project) -> list[str]:
    """gate-metrics.bootstrap.predictions, the evaluation rows (bootstrap.evaluation-data, else the CSV/Parquet
    input of the stage writing the predictions) and latency.data, as leanops.yml names them."""
    section = s.cfg.data.get("gate-metrics") or {}
    boot = section.get("bootstrap") or {}
    latency = str((section.get("latency") or {}).get("data") or "")
    predictions = str(boot.get("predictions") or "")
    if not predictions:
        return [latency] if latency else []
    rows = str(boot.get("evaluation-data") or "")
    if not rows:
        rows = next((d for d in project.writer_inputs(predictions) if d.endswith((".csv", ".parquet"))), "")
    return list(dict.fromkeys(n for n in (predictions, rows, latency) if n))


def stage_gate_inputs(s: Settings, project: Project) -> str:
    """Copy the gate's files of this candidate under GATE_INPUTS (the folder, "" when there is nothing)."""
    folder = s.root / GATE_INPUTS
    shutil.rmtree(folder, ignore_errors=True)
    copied = []
    root = s.root.resolve()
    for name in gate_files(s, project):
        src = (s.root / name).resolve()
        if not src.is_relative_to(root) or not src.is_file():  # outside the project, or not written: not shipped
            continue
        dest = folder / src.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        copied.append(name)
    if copied:
        gh.step(f"gate inputs for gate-metrics: {', '.join(copied)} -> {GATE_INPUTS}")
    return str(folder) if copied else ""


def finish(s: Settings, o: Outcome, seconds: float, *, reason: str = "", refreshed: list[Refreshed] | None = None
           ) -> None:
    gh.set_outputs(o.outputs())
    gh.set_output("reason", reason)
    gh.set_output("tracking", "local" if o.local_store else "server")
    result = {**o.outputs(), "metrics": o.metrics, "tracking-uri": tracking.mask_uri(o.tracking_uri),
              "select-metric": s.select_metric, "select-direction": s.select_direction,
              "param-overrides": s.overrides, "artifact-suffix": gh.artifact_suffix(s.root)}
    atomic_write_json(s.root / RESULT_FILE, result)
    gh.set_output("result-file", str(s.root / RESULT_FILE))
    head = f"skipped: {reason or 'nothing changed'}" if o.skipped else "trained and registered"
    lines = [f"## train-with-cache: {head}", "",
             gh.md_table(["", ""], [["model", f"`{o.model_uri}` (alias `{ALIAS}`)"], ["run", f"`{o.run_id}`"],
                                    ["tracking", f"`{tracking.mask_uri(o.tracking_uri)}`"
                                     + (" (embedded store, uploaded as an artifact)" if o.local_store else "")],
                                    ["cache key", f"`{o.cache_key}`"], ["took", f"{seconds:.1f}s"]]),
             "### Stages", "", _stage_table(o.stages)]
    if refreshed:
        lines += ["### Refreshed data", "", gh.md_table(
            ["stage", "how", "outputs (md5)", "at (UTC)"],
            [[r.name, f"`{r.how}`", ", ".join(f"`{p}` `{m[:12]}`" for p, m in r.outputs.items()), r.at]
             for r in refreshed])]
    if o.metrics:
        lines += ["### Metrics", "", gh.md_table(["metric", "value"],
                                                 [[k, f"{v:.6g}"] for k, v in sorted(o.metrics.items())])]
    gh.add_summary("\n".join(lines))


REFRESHED = Path(".leanops") / "train-with-cache" / "refreshed"


def stage_refreshed(s: Settings, refreshed: list[Refreshed]) -> str:
    """The refreshed outputs, dvc.lock and the imports' .dvc files under REFRESHED at their paths (the artifact
    leanops-refreshed-data): the validate and train jobs then see exactly these bytes. "" when nothing."""
    folder = s.root / REFRESHED
    shutil.rmtree(folder, ignore_errors=True)
    root = s.root.resolve()
    names = ["dvc.lock", *(r.name for r in refreshed if r.name.endswith(".dvc")),
             *(p for r in refreshed for p in r.outputs)]
    copied = []
    for name in names:
        src = (s.root / name).resolve()
        if not src.is_relative_to(root) or not src.exists():
            continue
        dest = folder / src.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
        copied.append(name)
    return str(folder) if copied else ""


def summary_refresh(refreshed: list[Refreshed], verdict: str, seconds: float) -> None:
    gh.add_summary(f"## train-with-cache refresh: {verdict}\n\n" + gh.md_table(
        ["stage", "how", "outputs (md5)", "at (UTC)"],
        [[r.name, f"`{r.how}`", ", ".join(f"`{p}` `{m[:12]}`" for p, m in r.outputs.items()), r.at]
         for r in refreshed]) + f"\ntook {seconds:.1f}s\n")
