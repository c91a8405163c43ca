"""`leanops init DIR` for one more model in a repository that has one (issue 16).

The model's files go to DIR; its caller workflows to the repository's .github/workflows, named after the model,
with DIR as working-directory; its canary router gets a port no other model of the repository publishes. The
first model's files are left as they were, and a second run changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from leanops import cli


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and ".git" not in p.relative_to(root).parts}


def test_init_adds_a_second_model_beside_the_first(tmp_path: Path, monkeypatch, capsys) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo)
    assert cli.main(["init", "--model-name", "churn"]) == 0
    first = snapshot(repo)
    assert ".github/workflows/ml-pipeline.yml" in first

    # the root model's .gitignore ignores /models/ (its output): a model there would never be committed
    assert cli.main(["init", "models/fraud"]) == 2
    assert "models/fraud: git ignores this folder (.gitignore:2:/models/)" in capsys.readouterr().err
    assert snapshot(repo) == first

    assert cli.main(["init", "teams/fraud"]) == 0
    out = capsys.readouterr().out
    after = snapshot(repo)
    assert {k: v for k, v in after.items() if k in first} == first  # the first model untouched
    added = sorted(set(after) - set(first))
    assert ".github/workflows/ml-pipeline-fraud.yml" in added and ".github/workflows/weekly-drift-fraud.yml" in added
    assert {"teams/fraud/leanops.yml", "teams/fraud/dvc.yaml", "teams/fraud/Dockerfile"} <= set(added)
    assert not [a for a in added if a.startswith("teams/fraud/.github")]

    pipeline = yaml.safe_load(after[".github/workflows/ml-pipeline-fraud.yml"])
    assert pipeline["name"] == "ml-pipeline (fraud)"
    assert pipeline["jobs"]["pipeline"]["with"]["working-directory"] == "teams/fraud"
    drift = yaml.safe_load(after[".github/workflows/weekly-drift-fraud.yml"])
    assert drift["jobs"]["drift"]["with"]["working-directory"] == "teams/fraud"
    config = yaml.safe_load(after["teams/fraud/leanops.yml"])
    assert config["model"]["name"] == "fraud"
    assert config["canary-deploy"]["router"]["publish"] == "127.0.0.1:8081"
    assert yaml.safe_load(first["leanops.yml"])["canary-deploy"]["router"]["publish"] == "127.0.0.1:8080"
    assert "working-directory: teams/fraud" in out and "127.0.0.1:8081" in out

    # a third model takes the next port; a second run of init changes nothing
    assert cli.main(["init", "teams/upsell"]) == 0
    assert yaml.safe_load((repo / "teams/upsell/leanops.yml").read_text())["canary-deploy"]["router"][
        "publish"] == "127.0.0.1:8082"
    again = snapshot(repo)
    assert cli.main(["init", "teams/fraud"]) == 0
    assert snapshot(repo) == again
    assert "0 files written, 0 kept" in capsys.readouterr().err


def test_the_second_models_workflows_pass_actionlint(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo)
    assert cli.main(["init"]) == 0 and cli.main(["init", "teams/fraud"]) == 0
    files = sorted(str(p) for p in (repo / ".github/workflows").glob("*.yml"))
    assert len(files) == 4
    res = subprocess.run([str(Path(sys.executable).parent / "actionlint"), *files], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
