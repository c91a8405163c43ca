"""Under act (issue 16): a repository made by `leanops init` whose starter stage saves its model with
`joblib.dump` (scikit-learn's own recommended persistence, the issue's report) passes ml-pipeline on a pull
request: train-with-cache reads the joblib file from its content and registers it, and the gate passes."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from leanops.tools.harness import ActRun

from ..api_recorder import Recorder
from ..conftest import make_repo
from .test_ml_pipeline import NUMBER, pull_request_event, scaffold

pytestmark = pytest.mark.e2e

PICKLED = "write(MODEL, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))"


def test_a_joblib_model_passes_ml_pipeline_on_a_pull_request(harness, tmp_path: Path) -> None:
    files = scaffold(tmp_path / "scaffold")
    assert PICKLED in files["src/train.py"]
    files["src/train.py"] = files["src/train.py"].replace(
        PICKLED, "import joblib\n    MODEL.parent.mkdir(parents=True, exist_ok=True)\n    joblib.dump(model, MODEL)")
    name = f"example/joblib-{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "repo", files, origin=f"https://github.com/{name}.git")

    with Recorder() as rec:
        rec.fake.add_pull_request(NUMBER)
        run = ActRun(repo=repo, event="pull_request", event_file=pull_request_event(tmp_path / "event.json", name),
                     workflow=".github/workflows/ml-pipeline.yml", env={"GITHUB_API_URL": rec.url},
                     secrets={"GITHUB_TOKEN": "ghs_e2e_token"})
        res = harness.run(run, log=tmp_path / "act.log")
        out = res.stdout + res.stderr

    assert res.returncode == 0, out[-8000:]
    assert "Running stage 'train'" in out, out[-8000:]
    # the file is models/model.pkl by name, a joblib file by content: read, logged and registered
    assert "STACK_GLOBAL" not in out and "is not a model" not in out
    assert re.search(r"model: models/model\.pkl \(pickle\)", out), out[-8000:]
    assert re.search(r"registered \S+ version 1 with alias challenger", out)
    assert re.search(r"gate-metrics/gate\s*\] 🏁  Job succeeded", out)
