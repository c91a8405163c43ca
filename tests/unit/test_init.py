"""``leanops init``: the scaffold of an adopting repository, idempotence, --force, and the templates in the wheel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from leanops import cli, config
from leanops.tools import init

ROOT = Path(__file__).resolve().parents[2]
CHURN = ROOT / "examples/churn/data/raw/churn.csv"
EXPECTED = {
    ".github/workflows/ml-pipeline.yml", ".github/workflows/weekly-drift.yml", "leanops.yml", "dvc.yaml",
    "params.yaml", "src/train.py", "Dockerfile", ".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore",
}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_scaffold_from_the_example_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "churn-repo"
    assert cli.main(["init", str(repo), "--data", str(CHURN)]) == 0
    out = capsys.readouterr().out
    assert files_under(repo) == EXPECTED | {"data/raw/churn.csv", "expectations/churn.json"}
    for name in sorted(EXPECTED):
        assert f"  wrote     {name}" in out
    assert "next steps:" in out and "open a pull request" in out

    cfg = config.load(repo / "leanops.yml", required=True)  # valid against the schema
    assert cfg.model_name == "churn-repo"
    assert cfg.section("data-validate") == {"data": "data/raw/churn.csv", "suite": "expectations/churn.json"}
    assert cfg.section("build-push-image")["dockerfile"] == "Dockerfile"
    params = yaml.safe_load((repo / "params.yaml").read_text())["train"]
    assert (params["target"], params["drop"], params["data"]) == ("churned", ["customer_id"], "data/raw/churn.csv")
    stage = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["train"]
    assert "data/raw/churn.csv" in stage["deps"] and "models/model.pkl" in stage["outs"]
    suite = json.loads((repo / "expectations/churn.json").read_text())
    types = {e["type"] for e in suite["expectations"]}
    assert "expect_table_columns_to_match_set" in types and "expect_column_values_to_be_between" in types
    assert (repo / "data/raw/churn.csv").read_bytes() == CHURN.read_bytes()
    # the workflows are the kit's templates as they are
    assert (repo / ".github/workflows/ml-pipeline.yml").read_text() == (
        ROOT / "templates/workflows/ml-pipeline.yml").read_text()
    assert (repo / "Dockerfile").read_text() == (ROOT / "templates/Dockerfile").read_text()


def test_the_starter_pipeline_trains_on_the_scaffold(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    assert cli.main(["init", str(repo), "--data", str(CHURN)]) == 0
    res = subprocess.run([sys.executable, "src/train.py"], cwd=repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((repo / "metrics/eval.json").read_text())
    gates = config.load(repo / "leanops.yml").section("gate-metrics")["gates"]
    assert set(gates) <= set(metrics)
    assert all(metrics[name] >= gate["min"] for name, gate in gates.items()), metrics
    assert (repo / "models/model.pkl").stat().st_size > 0


def test_idempotent_and_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "r"
    assert cli.main(["init", str(repo), "--data", str(CHURN)]) == 0
    capsys.readouterr()
    before = {name: (repo / name).read_bytes() for name in files_under(repo)}

    assert cli.main(["init", str(repo), "--data", str(CHURN)]) == 0
    out = capsys.readouterr().out
    assert {name: (repo / name).read_bytes() for name in files_under(repo)} == before
    assert "wrote" not in out and out.count("unchanged") == len(EXPECTED) + 1
    assert "  exists    expectations/churn.json" in out

    edited = (repo / "leanops.yml").read_text().replace("min: 0.6", "min: 0.75")
    (repo / "leanops.yml").write_text(edited)
    (repo / "expectations/churn.json").write_text("{}")
    assert cli.main(["init", str(repo), "--data", str(CHURN)]) == 0
    out = capsys.readouterr().out
    assert "  kept      leanops.yml  (exists and differs; --force overwrites it)" in out
    assert (repo / "leanops.yml").read_text() == edited
    assert (repo / "expectations/churn.json").read_text() == "{}"

    assert cli.main(["init", str(repo), "--data", str(CHURN), "--force"]) == 0
    out = capsys.readouterr().out
    assert "  overwrote leanops.yml" in out and "  overwrote expectations/churn.json" in out
    assert {name: (repo / name).read_bytes() for name in EXPECTED} == {name: before[name] for name in EXPECTED}
    assert json.loads((repo / "expectations/churn.json").read_text())["expectations"]


def test_without_data_and_with_data_inside_the_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare"
    assert cli.main(["init", str(bare), "--model-name", "fraud"]) == 0
    assert files_under(bare) == EXPECTED
    assert config.load(bare / "leanops.yml").model_name == "fraud"
    assert "put your data at data/raw/data.csv" in capsys.readouterr().out

    inside = tmp_path / "inside"
    (inside / "datasets").mkdir(parents=True)
    shutil.copy(CHURN, inside / "datasets/customers.csv")
    assert cli.main(["init", str(inside), "--data", str(inside / "datasets/customers.csv"),
                     "--suite", "checks/customers.json", "--target", "churned"]) == 0
    cfg = config.load(inside / "leanops.yml")
    assert cfg.section("data-validate") == {"data": "datasets/customers.csv", "suite": "checks/customers.json"}
    assert (inside / "checks/customers.json").is_file() and not (inside / "data").exists()


def test_bad_input_is_one_line_and_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["init", str(tmp_path / "r"), "--data", str(CHURN), "--target", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--target: 'nope' is no column of the data" in err[0]
    assert not (tmp_path / "r").exists()
    assert cli.main(["init", str(tmp_path / "r"), "--data", str(tmp_path / "missing.csv")]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert cli.main(["init", str(tmp_path / "r"), "--model-name", "-bad name"]) == 2


def test_templates_ship_in_the_wheel(tmp_path: Path) -> None:
    uv = ROOT / ".tools/uv/bin/uv"
    if not uv.exists():
        pytest.skip("no .tools/uv (make setup)")
    res = subprocess.run([str(uv), "build", "--wheel", "--offline", "-o", str(tmp_path / "dist"), str(ROOT)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    wheel = next((tmp_path / "dist").glob("leanops-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    shipped = {p.relative_to(tmp_path / "site/leanops/templates").as_posix()
               for p in (tmp_path / "site/leanops/templates").rglob("*") if p.is_file()}
    source = {p.relative_to(ROOT / "templates").as_posix() for p in (ROOT / "templates").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert shipped == source
    # init run from the wheel finds them there
    code = ("import sys; from leanops import cli; from leanops.tools import init; print(init.templates_dir()); "
            "sys.exit(cli.main(sys.argv[1:]))")
    res = subprocess.run([sys.executable, "-c", code, "init", str(tmp_path / "r")], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == str(tmp_path / "site/leanops/templates")
    assert files_under(tmp_path / "r") == EXPECTED


def test_template_files_map_every_template_once() -> None:
    files = init.template_files()
    assert set(files) == EXPECTED
    assert all(path.is_file() for path in files.values())


def test_without_great_expectations_the_rest_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "great_expectations", None)  # as without the data-validate extra
    assert cli.main(["init", str(tmp_path / "r"), "--data", str(CHURN)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the starter suite needs Great Expectations" in err[0]
    assert files_under(tmp_path / "r") == EXPECTED | {"data/raw/churn.csv"}


def test_next_steps_keep_write_credentials_in_the_environment(tmp_path: Path) -> None:
    """init tells the adopter to put the writing MLflow user and the deploy target in the environment the kit's
    writing jobs name (production, deployment branches main and v* tags), and only the read-only user in the
    repository's secrets; the caller it writes passes both by name and names the environment."""
    text = init.next_steps(init.Plan(root=tmp_path, model="m"), has_data=True)
    assert "environments/production/deployment-branch-policies' -f name=main -f type=branch" in text
    assert "-f name='v*' -f type=tag" in text
    for secret in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "DOCKER_HOST"):
        assert f"gh secret set {secret} --env production" in text
    for line in text.splitlines():  # no writing credential as a repository secret
        for part in line.split(";"):
            if "gh secret set MLFLOW_TRACKING_" in part and "--env" not in part:
                assert "MLFLOW_TRACKING_URI" in part, part
    assert "gh secret set MLFLOW_READ_USERNAME" in text and "gh secret set MLFLOW_READ_PASSWORD" in text
    caller = yaml.safe_load((ROOT / "templates/workflows/ml-pipeline.yml").read_text())["jobs"]["pipeline"]
    assert caller["with"]["environment"] == "production"
    assert {"MLFLOW_READ_USERNAME", "MLFLOW_READ_PASSWORD", "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD"} <= set(caller["secrets"])
