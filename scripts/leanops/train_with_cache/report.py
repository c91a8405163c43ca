"""What a person reads and the workflow uses: outputs, the result file and the job summary.
"""

from __future__ import annotations

from pathlib import Path

from .. import gh, tracking
from ..fsutil import atomic_write_json
from .registry import ALIAS, Outcome
from .repro import _stage_table
from .settings import Settings

RESULT_FILE = Path(".leanops") / "train-with-cache" / "result.json"


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
