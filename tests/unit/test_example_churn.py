"""The churn example: deterministic data, a DVC pipeline that really runs, a valid leanops.yml."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import pytest
import yaml

from leanops import config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
RAW = EXAMPLE / "data" / "raw" / "churn.csv"
COLUMNS = [
    "customer_id",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract",
    "payment_method",
    "internet_service",
    "support_calls",
    "senior_citizen",
    "gender",
    "churned",
]
METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("churn_generate_data", EXAMPLE / "generate_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def mean(rows: list[dict[str, str]], col: str) -> float:
    return sum(float(r[col]) for r in rows) / len(rows)


def share(rows: list[dict[str, str]], col: str, value: str) -> float:
    return sum(r[col] == value for r in rows) / len(rows)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - DVC's content hash


# --- the generator -------------------------------------------------------------------------------


def test_generator_reproduces_committed_csv_byte_for_byte(gen: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "churn.csv"
    assert gen.main(["--out", str(out)]) == 0  # defaults: --rows 5000 --seed 7 --shift 0
    assert out.read_bytes() == RAW.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["churn.csv"]  # no temporary file left behind


def test_generator_is_deterministic_and_seed_matters(gen: ModuleType, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    gen.main(["--rows", "300", "--seed", "3", "--out", str(a)])
    gen.main(["--rows", "300", "--seed", "3", "--out", str(b)])
    gen.main(["--rows", "300", "--seed", "4", "--out", str(c)])
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert len(read(a)) == 300


def test_committed_csv_is_a_plausible_churn_table() -> None:
    rows = read(RAW)
    assert len(rows) == 5000
    assert list(rows[0]) == COLUMNS
    assert len({r["customer_id"] for r in rows}) == 5000
    values = {col: {r[col] for r in rows} for col in COLUMNS}
    assert values["contract"] == {"month-to-month", "one-year", "two-year"}
    assert len(values["payment_method"]) == 4
    assert values["internet_service"] == {"dsl", "fiber", "none"}
    assert values["gender"] == {"female", "male"}
    assert values["senior_citizen"] == {"0", "1"}
    assert values["churned"] == {"0", "1"}
    for r in rows:
        assert int(r["customer_id"]) > 0 and int(r["support_calls"]) >= 0
        assert 1 <= int(r["tenure_months"]) <= 72
        for money in ("monthly_charges", "total_charges"):
            assert len(r[money].split(".")[1]) == 2 and float(r[money]) > 0
        assert float(r["total_charges"]) >= float(r["monthly_charges"])
    assert 0.15 < mean(rows, "churned") < 0.40
    # churn depends on the features the way it does in real data
    mtm = [r for r in rows if r["contract"] == "month-to-month"]
    two = [r for r in rows if r["contract"] == "two-year"]
    assert mean(mtm, "churned") > 2 * mean(two, "churned")


def test_shift_moves_the_population(gen: ModuleType, tmp_path: Path) -> None:
    base, shifted = tmp_path / "base.csv", tmp_path / "shifted.csv"
    gen.main(["--rows", "3000", "--out", str(base)])
    gen.main(["--rows", "3000", "--shift", "1", "--out", str(shifted)])
    b, s = read(base), read(shifted)
    assert list(s[0]) == COLUMNS
    assert mean(s, "monthly_charges") > mean(b, "monthly_charges") + 10
    assert share(s, "contract", "month-to-month") > share(b, "contract", "month-to-month") + 0.15
    assert mean(s, "tenure_months") < mean(b, "tenure_months") - 5


def test_generator_refuses_bad_flags(gen: ModuleType, tmp_path: Path) -> None:
    for flags in (["--shift", "-0.5"], ["--rows", "0"], ["--shift", "nan"]):
        with pytest.raises(SystemExit) as exc:
            gen.main([*flags, "--out", str(tmp_path / "x.csv")])
        assert exc.value.code == 2
    assert not (tmp_path / "x.csv").exists()


# --- the pipeline --------------------------------------------------------------------------------


def test_dvc_lock_is_current() -> None:
    """The committed dvc.lock records the committed inputs (a fresh clone knows the pipeline state)."""
    lock = yaml.safe_load((EXAMPLE / "dvc.lock").read_text())
    pipeline = yaml.safe_load((EXAMPLE / "dvc.yaml").read_text())
    params = yaml.safe_load((EXAMPLE / "params.yaml").read_text())
    assert set(lock["stages"]) == set(pipeline["stages"]) == {"fetch", "prepare", "train", "evaluate"}
    raw_deps = [d for d in lock["stages"]["prepare"]["deps"] if d["path"] == "data/raw/churn.csv"]
    assert raw_deps and raw_deps[0]["md5"] == md5(RAW)
    # the committed CSV is what fetch last wrote (fetch.url empty: the committed CSV is the source)
    assert [(o["path"], o["md5"]) for o in lock["stages"]["fetch"]["outs"]] == [("data/raw/churn.csv", md5(RAW))]
    assert params["fetch"] == {"url": "", "table": "churn"}
    for name, stage in lock["stages"].items():
        for dep in stage["deps"]:
            if dep["path"].startswith("src/"):
                assert dep["md5"] == md5(EXAMPLE / dep["path"]), f"{name}: {dep['path']} changed; run dvc repro"
        for key, value in stage.get("params", {}).get("params.yaml", {}).items():
            section, field = key.split(".")
            assert params[section][field] == value, f"{name}: params.yaml {key} changed; run dvc repro"


def _copy_example(dest: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skip = {n for n in names if n in ("__pycache__", ".pytest_cache")}
        if here == EXAMPLE:
            skip |= {n for n in names if n in ("models", "metrics")}
        elif here == EXAMPLE / ".dvc":
            skip |= {n for n in names if n in ("cache", "tmp", "config.local")}
        elif here == EXAMPLE / "data":
            skip |= {n for n in names if n != "raw"}
        return skip

    shutil.copytree(EXAMPLE, dest, ignore=ignore)
    return dest


def _env(request: pytest.FixtureRequest, scratch: Path) -> dict[str, str]:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1")
    # the stages run `python`: the interpreter running the tests, with its packages
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        # Without bytecode every stage recompiles pandas and scikit-learn (~3x slower); keep it beside
        # pytest's cache instead of in the environment.
        cache = getattr(request.config, "cache", None)
        prefix = cache.mkdir("example-churn-pycache") if cache is not None else scratch / "pycache"
        env["PYTHONPYCACHEPREFIX"] = str(prefix)
    return env


class Run(NamedTuple):
    repo: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Run:
    """A copy of the example (no caches, no outputs) in its own git repository, after `dvc repro`."""
    scratch = tmp_path_factory.mktemp("churn")
    repo = _copy_example(scratch / "churn")
    assert not (repo / "models").exists() and not (repo / "data" / "prepared").exists()
    env = _env(request, scratch)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Run(repo, env)


def test_repro_writes_the_metrics(reproduced: Run) -> None:
    metrics = json.loads((reproduced.repo / "metrics" / "eval.json").read_text())
    assert set(metrics) == set(METRICS)
    for name in METRICS:
        assert isinstance(metrics[name], float) and 0.0 <= metrics[name] <= 1.0, name
    assert 0.70 <= metrics["roc_auc"] <= 0.95
    assert metrics["f1"] >= 0.5  # the example passes its own gates


def test_repro_writes_one_prediction_per_test_example(reproduced: Run) -> None:
    test = read(reproduced.repo / "data" / "prepared" / "test.csv")
    train = read(reproduced.repo / "data" / "prepared" / "train.csv")
    preds = read(reproduced.repo / "metrics" / "predictions.csv")
    assert list(preds[0]) == ["customer_id", "y_true", "y_pred", "y_score", "gender"]
    assert len(test) == 1000 and len(train) == 4000  # prepare.test_size 0.2
    assert not {r["customer_id"] for r in test} & {r["customer_id"] for r in train}
    assert abs(mean(test, "churned") - mean(train, "churned")) < 0.01  # stratified
    truth = {r["customer_id"]: r for r in test}
    assert len(preds) == len(test) and {p["customer_id"] for p in preds} == set(truth)
    for p in preds:
        assert p["y_true"] == truth[p["customer_id"]]["churned"]
        assert p["gender"] == truth[p["customer_id"]]["gender"]
        score = float(p["y_score"])
        assert 0.0 <= score <= 1.0
        assert p["y_pred"] == ("1" if score >= 0.5 else "0")


def test_repro_matches_the_committed_lock(reproduced: Run) -> None:
    """The split is deterministic: the prepared data hashes equal those in the committed dvc.lock."""
    committed = yaml.safe_load((EXAMPLE / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in committed["stages"]["prepare"]["outs"]}
    for path, digest in outs.items():
        assert md5(reproduced.repo / path) == digest, path
    assert (reproduced.repo / "models" / "model.pkl").stat().st_size > 0
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=reproduced.repo,
        env=reproduced.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(status.stdout) == {}  # everything up to date after the run


# --- leanops.yml ---------------------------------------------------------------------------------


def test_leanops_yml_is_valid() -> None:
    cfg = config.load(EXAMPLE / "leanops.yml")
    assert cfg.model_name == "churn-classifier"
    assert cfg.data["model"]["path"] == "models/model.pkl"
    gates = cfg.section("gate-metrics")
    assert set(gates["gates"]) == {"roc_auc", "f1"}
    assert gates["fairness"]["sensitive-column"] == "gender"
    assert cfg.section("train-with-cache")["metrics"] == "metrics/eval.json"
    assert cfg.section("data-validate")["data"] == "data/raw/churn.csv"
    # every path the pipeline produces is one dvc.yaml declares
    pipeline = yaml.safe_load((EXAMPLE / "dvc.yaml").read_text())
    declared = set()
    for stage in pipeline["stages"].values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            declared.add(entry if isinstance(entry, str) else next(iter(entry)))
    assert {cfg.data["model"]["path"], gates["bootstrap"]["predictions"], "metrics/eval.json"} <= declared
