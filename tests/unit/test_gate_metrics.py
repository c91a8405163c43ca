"""gate-metrics without a tracking server: gate semantics (property tests as seeded random loops), the paired
bootstrap against scikit-learn, the CLI on files and git history, the sticky comment against the API
recorder, fork pull requests, latency and fairness gates, and exit codes 1, 2 and 3."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from leanops import cli
from leanops.errors import BadInput
from leanops.gate_metrics import bootstrap as bs
from leanops.gate_metrics import gates as gm
from leanops.gate_metrics.report import chart, fork_of

from ..conftest import free_port
from ..unit.test_gh import parse_outputs

CASES = 400  # per property; seeded, so a failure reproduces


# ---------------------------------------------------------------------------- helpers


class SlowModel:
    """A picklable "model" whose predict takes ``delay`` seconds (importable: tests.unit.test_gate_metrics)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def predict(self, rows):  # noqa: ANN001, ANN201 - any table
        if self.delay:
            time.sleep(self.delay)
        return np.zeros(len(rows))


def predictions_csv(path: Path, y_true, y_pred, y_score=None, ids=None, groups=None) -> Path:  # noqa: ANN001
    n = len(y_true)
    ids = list(ids if ids is not None else range(1, n + 1))
    header = ["customer_id", "y_true", "y_pred"] + (["y_score"] if y_score is not None else [])
    header += ["gender"] if groups is not None else []
    lines = [",".join(header)]
    for i in range(n):
        row = [str(ids[i]), str(int(y_true[i])), str(int(y_pred[i]))]
        row += [f"{y_score[i]:.6f}"] if y_score is not None else []
        row += [groups[i]] if groups is not None else []
        lines.append(",".join(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def random_predictions(rng: np.random.Generator, n: int, skill: float = 1.0):  # noqa: ANN201
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 + skill * (y - 0.5) * rng.uniform(0, 1, n) + rng.normal(0, 0.25, n), 0, 1).round(3)
    return y, (score >= 0.5).astype(int), score


CONFIG = """\
version: 1
model:
  name: churn
  path: model.pkl
gate-metrics:
  champion: {champion}
  champion-file: champion.json
  metrics-file: metrics.json
  gates:
    roc_auc:
      direction: higher
      min: 0.6
      max-regression: 0.02
    log_loss:
      max: 0.9
      max-regression: 0.05
{extra}"""


def project(root: Path, candidate: dict, champion: dict | None = None, *, source: str = "file",
            extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "leanops.yml").write_text(CONFIG.format(champion=source, extra=extra))
    (root / "metrics.json").write_text(json.dumps(candidate))
    if champion is not None:
        (root / "champion.json").write_text(json.dumps(champion))
    return root


def gate(root: Path, *argv: str) -> int:
    return cli.main(["gate-metrics", "--working-directory", str(root), "--comment", "false", *argv])


@pytest.fixture
def runner(runner_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_EVENT_PATH", "GITHUB_BASE_REF", "MLFLOW_TRACKING_URI", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("LEANOPS_"):
            monkeypatch.delenv(name)
    return runner_files


def outputs(files: dict[str, Path]) -> dict[str, str]:
    return parse_outputs(files["GITHUB_OUTPUT"].read_text())


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


# ---------------------------------------------------------------------------- gate semantics: properties


def random_gate(rnd: random.Random, metric: str, direction: str, champion: float) -> gm.Gate:
    """A gate the champion passes, with thresholds on the side a direction makes meaningful."""
    lo = champion - rnd.uniform(0, 1) if rnd.random() < 0.7 else None
    hi = champion + rnd.uniform(0, 1) if rnd.random() < 0.7 else None
    return gm.Gate(metric, direction,
                   min=lo if direction == gm.HIGHER else None, max=hi if direction == gm.LOWER else None,
                   max_regression=rnd.choice([None, 0.0, rnd.uniform(0, 0.2)]),
                   regression_mode=rnd.choice(["absolute", "relative"]), required=rnd.random() < 0.8)


def test_property_a_missing_or_nan_required_metric_never_passes() -> None:
    rnd = random.Random(1)
    for _ in range(CASES):
        names = [f"m{i}" for i in range(rnd.randint(1, 5))]
        gates = [gm.Gate(n, rnd.choice([gm.HIGHER, gm.LOWER]), min=rnd.choice([None, -1e9]),
                         max_regression=rnd.choice([None, 1e9]), required=True) for n in names]
        candidate = {n: rnd.uniform(-10, 10) for n in names}
        champion = rnd.choice([None, {n: rnd.uniform(-10, 10) for n in names}])
        broken = rnd.choice(names)
        if rnd.random() < 0.5:
            del candidate[broken]
        else:
            candidate[broken] = math.nan
        verdicts = gm.evaluate(gates, candidate, champion)
        assert not gm.passed(verdicts), (gates, candidate, champion)
        assert next(v for v in verdicts if v.gate.metric == broken).status == "fail"


def test_property_an_optional_missing_metric_is_skipped_and_said() -> None:
    rnd = random.Random(2)
    for _ in range(CASES // 4):
        value = rnd.choice([None, math.nan])
        g = gm.Gate("m", min=0.5, required=False)
        v = gm.evaluate([g], {} if value is None else {"m": value}, {"m": 0.9})[0]
        assert v.status == "skip" and v.notes and not v.failed


def test_property_a_candidate_at_least_as_good_as_the_champion_never_fails() -> None:
    rnd = random.Random(3)
    for _ in range(CASES):
        names = [f"m{i}" for i in range(rnd.randint(1, 6))]
        champion = {n: rnd.uniform(-5, 5) for n in names}
        gates = [random_gate(rnd, n, rnd.choice([gm.HIGHER, gm.LOWER]), champion[n]) for n in names]
        candidate = {}
        for g in gates:
            better = rnd.choice([0.0, rnd.uniform(0, 3)])
            candidate[g.metric] = champion[g.metric] + (better if g.direction == gm.HIGHER else -better)
        intervals = {}
        if rnd.random() < 0.5:  # a bootstrap interval that favours the candidate changes nothing
            intervals = {n: gm.Interval(0.0, -0.01, 0.01, 0.05, 100) for n in names}
        verdicts = gm.evaluate(gates, candidate, champion, intervals)
        assert gm.passed(verdicts), [(v.gate, v.candidate, v.champion, v.reasons) for v in verdicts]


def mirrored(g: gm.Gate) -> gm.Gate:
    """The same gate on the negated metric, with the direction flipped."""
    return gm.Gate(g.metric, gm.LOWER if g.direction == gm.HIGHER else gm.HIGHER,
                   min=None if g.max is None else -g.max, max=None if g.min is None else -g.min,
                   max_regression=g.max_regression, regression_mode=g.regression_mode, required=g.required)


def test_property_direction_is_honoured_for_lower_is_better_metrics() -> None:
    rnd = random.Random(4)
    for _ in range(CASES):
        h = rnd.uniform(0.1, 5)
        allowed = rnd.uniform(0, 0.5)
        g = gm.Gate("loss", gm.LOWER, max_regression=allowed)
        # lower is better: any decrease passes, an increase beyond the allowance fails
        assert gm.evaluate([g], {"loss": h - rnd.uniform(0, 3)}, {"loss": h})[0].status == "pass"
        worse = gm.evaluate([g], {"loss": h + allowed + rnd.uniform(0.01, 1)}, {"loss": h})[0]
        assert worse.failed and "regressed" in worse.reasons[0]
        # and a lower gate on x decides exactly as the higher gate on -x
        higher = random_gate(rnd, "x", gm.HIGHER, h)
        c = rnd.uniform(-6, 6)
        a = gm.evaluate([higher], {"x": c}, {"x": h})[0]
        b = gm.evaluate([mirrored(higher)], {"x": -c}, {"x": -h})[0]
        assert a.status == b.status, (higher, c, h, a.reasons, b.reasons)


def test_default_direction_from_the_name() -> None:
    assert [gm.default_direction(n) for n in ("roc_auc", "f1", "log_loss", "rmse", "latency_p95_single_ms",
                                              "equalized_odds_difference", "error_rate")] == \
        ["higher", "higher", "lower", "lower", "lower", "lower", "lower"]


def test_regression_modes_and_the_float_edge() -> None:
    rel = gm.Gate("auc", max_regression=0.05, regression_mode="relative")
    assert gm.evaluate([rel], {"auc": 0.76}, {"auc": 0.8})[0].status == "pass"  # 5% of 0.8 = 0.04
    assert gm.evaluate([rel], {"auc": 0.75}, {"auc": 0.8})[0].failed
    edge = gm.Gate("auc", max_regression=0.02)
    assert gm.evaluate([edge], {"auc": 0.78}, {"auc": 0.80})[0].status == "pass"  # 0.020000000000000018
    none = gm.evaluate([gm.Gate("auc", min=0.5, max_regression=0.0)], {"auc": 0.6}, None)[0]
    assert none.status == "pass" and "no champion" in none.notes[0]


def test_a_significant_regression_fails_and_noise_does_not() -> None:
    g = gm.Gate("auc", max_regression=0.01)
    noisy = gm.evaluate([g], {"auc": 0.78}, {"auc": 0.80}, {"auc": gm.Interval(-0.02, -0.05, 0.01, 0.05, 200)})[0]
    assert noisy.status == "pass" and "not significantly" in noisy.notes[0]
    real = gm.evaluate([g], {"auc": 0.78}, {"auc": 0.80}, {"auc": gm.Interval(-0.02, -0.03, -0.015, 0.05, 200)})[0]
    assert real.failed and "significant" in real.reasons[0]
    low = gm.Gate("loss", gm.LOWER, max_regression=0.01)  # lower is better: the interval's low end decides
    assert gm.evaluate([low], {"loss": 0.5}, {"loss": 0.4}, {"loss": gm.Interval(0.1, 0.02, 0.2, 0.05, 9)})[0].failed
    assert not gm.evaluate([low], {"loss": 0.5}, {"loss": 0.4},
                           {"loss": gm.Interval(0.1, 0.0, 0.2, 0.05, 9)})[0].failed


def test_contradictory_thresholds_are_a_configuration_error() -> None:
    with pytest.raises(BadInput, match="min 0.9 is above max 0.8"):
        gm.parse_gates({"gates": {"auc": {"min": 0.9, "max": 0.8}}})


def test_fairness_and_latency_thresholds_become_gates() -> None:
    found = {g.metric: g for g in gm.parse_gates({
        "gates": {"demographic_parity_ratio": {"required": True}},
        "fairness": {"sensitive-column": "g", "min-demographic-parity-ratio": 0.8,
                     "max-equalized-odds-difference": 0.1},
        "latency": {"max-p95-single-ms": 50, "data": "rows.csv"}})}
    assert found[gm.DP_RATIO].min == 0.8 and found[gm.DP_RATIO].required and found[gm.DP_RATIO].direction == "higher"
    assert found[gm.EO_DIFF].max == 0.1 and not found[gm.EO_DIFF].required and found[gm.EO_DIFF].direction == "lower"
    assert found[gm.LATENCY_SINGLE].max == 50 and found[gm.LATENCY_SINGLE].required  # explicit data: must measure
    assert gm.LATENCY_BATCH not in found


# ---------------------------------------------------------------------------- the paired bootstrap


def test_weighted_metrics_agree_with_scikit_learn(tmp_path: Path) -> None:
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        mean_absolute_error,
        mean_squared_error,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(5, 300))
        y, p, s = random_predictions(rng, n, skill=float(rng.uniform(0, 1)))
        s = (s * 10).round() / 10  # plenty of ties
        if len(set(y)) < 2:
            continue
        t = bs.read_predictions(predictions_csv(tmp_path / "p.csv", y, p, s))
        assert bs.point("roc_auc", t) == pytest.approx(roc_auc_score(y, s))
        assert bs.point("f1", t) == pytest.approx(f1_score(y, p, zero_division=0))
        assert bs.point("precision", t) == pytest.approx(precision_score(y, p, zero_division=0))
        assert bs.point("recall", t) == pytest.approx(recall_score(y, p, zero_division=0))
        assert bs.point("accuracy", t) == pytest.approx(accuracy_score(y, p))
        assert bs.point("mae", t) == pytest.approx(mean_absolute_error(y, p))
        assert bs.point("rmse", t) == pytest.approx(math.sqrt(mean_squared_error(y, p)))


def test_property_the_bootstrap_does_not_fail_an_identical_candidate(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for case in range(25):
        n = int(rng.integers(20, 400))
        y, p, s = random_predictions(rng, n, skill=float(rng.uniform(0, 1)))
        ids = rng.permutation(np.arange(1000, 1000 + n))
        cand = bs.read_predictions(predictions_csv(tmp_path / f"c{case}.csv", y, p, s, ids=ids))
        order = rng.permutation(n)  # the champion's file lists the same examples in another order
        champ = bs.read_predictions(predictions_csv(tmp_path / f"h{case}.csv", y[order], p[order], s[order],
                                                    ids=ids[order]))
        intervals, why = bs.intervals_for(cand, champ, ["roc_auc", "f1", "accuracy", "recall"],
                                          {"iterations": 200, "seed": case})
        assert why == "" and set(intervals) <= {"roc_auc", "f1", "accuracy", "recall"} and "f1" in intervals
        assert all(i.low == i.high == i.diff == 0 for i in intervals.values()), intervals
        # even when the metrics files disagree by more than the allowance (say, rounding), nothing fails
        gates = [gm.Gate(m, max_regression=0.0) for m in intervals]
        champion = {m: 0.9 for m in intervals}
        candidate = {m: 0.9 - float(rng.uniform(0.001, 0.05)) for m in intervals}
        assert gm.passed(gm.evaluate(gates, candidate, champion, intervals))


def test_the_bootstrap_finds_a_real_regression_and_not_a_small_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 2000
    y, p, s = random_predictions(rng, n, skill=1.0)
    good = bs.read_predictions(predictions_csv(tmp_path / "good.csv", y, p, s))
    flip = rng.random(n) < 0.25  # a quarter of the predictions wrong on purpose
    bad_p = np.where(flip, 1 - p, p)
    bad = bs.read_predictions(predictions_csv(tmp_path / "bad.csv", y, bad_p, np.where(flip, 1 - s, s)))
    found = bs.paired_bootstrap(bad, good, ["accuracy", "roc_auc"], iterations=500)
    assert found["accuracy"].high < -0.1 and found["roc_auc"].high < -0.05
    # two rows changed out of 2000: the interval straddles zero
    tweak = p.copy()
    tweak[:2] = 1 - tweak[:2]
    near = bs.read_predictions(predictions_csv(tmp_path / "near.csv", y, tweak, s))
    small = bs.paired_bootstrap(near, good, ["accuracy"], iterations=500)["accuracy"]
    assert small.low <= 0 <= small.high or abs(small.diff) <= 0.001


def test_pairing_refuses_different_evaluation_sets(tmp_path: Path) -> None:
    a = bs.read_predictions(predictions_csv(tmp_path / "a.csv", [0, 1, 1], [0, 1, 0], ids=[1, 2, 3]))
    b = bs.read_predictions(predictions_csv(tmp_path / "b.csv", [0, 1, 1], [0, 1, 0], ids=[1, 2, 4]))
    c = bs.read_predictions(predictions_csv(tmp_path / "c.csv", [1, 1, 1], [0, 1, 0], ids=[1, 2, 3]))
    assert "not the same evaluation set: 2 of 3" in bs.align(a, b)[2]
    assert "labels differ on 1 of 3" in bs.align(a, c)[2]


def test_predictions_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("customer_id,y_true\n1,0\n")
    with pytest.raises(BadInput, match="no column 'y_pred'"):
        bs.read_predictions(path)
    path.write_text("customer_id,y_true,y_pred\n1,0,1\n1,1,1\n")
    with pytest.raises(BadInput, match="repeats '1'"):
        bs.read_predictions(path)
    path.write_text("customer_id,y_true,y_pred\n1,0,1\n2,yes,1\n")
    with pytest.raises(BadInput, match="'yes' is not a number") as err:
        bs.read_predictions(path)
    assert err.value.line == 3


# ---------------------------------------------------------------------------- the report


def test_chart_is_a_mermaid_xychart_with_the_candidate_last() -> None:
    from leanops.gate_metrics.sources import Point

    text = chart(gm.Gate("auc", min=0.7), [Point("v1", {"auc": 0.8}), Point("v2", {"auc": 0.82})], 0.85)
    assert text.startswith("```mermaid\nxychart-beta\n")
    assert 'x-axis ["v1", "v2", "candidate"]' in text and "line [0.8, 0.82, 0.85]" in text
    assert "line [0.7, 0.7, 0.7]" in text  # the threshold
    assert chart(gm.Gate("auc"), [], 0.85) == ""  # one point is no chart


def test_fork_detection_from_the_event_payload() -> None:
    same = {"pull_request": {"head": {"repo": {"full_name": "o/r"}}, "base": {"repo": {"full_name": "o/r"}}}}
    fork = {"pull_request": {"head": {"repo": {"full_name": "x/r"}}, "base": {"repo": {"full_name": "o/r"}}}}
    gone = {"pull_request": {"head": {"repo": None}, "base": {"repo": {"full_name": "o/r"}}}}
    assert fork_of(same) is None and fork_of(fork) == "x/r" and fork_of(gone) == "a deleted repository"


# ---------------------------------------------------------------------------- the command


def test_passing_candidate_writes_outputs_summary_and_report(tmp_path: Path, runner) -> None:
    root = project(tmp_path / "p", {"roc_auc": 0.81, "log_loss": 0.41}, {"roc_auc": 0.80, "log_loss": 0.42})
    assert gate(root) == 0
    out = outputs(runner)
    assert out["passed"] == "true" and out["candidate-version"] == "" and out["champion-version"] == ""
    report = json.loads(Path(out["report-file"]).read_text())
    assert report["passed"] and [g["verdict"] for g in report["gates"]] == ["pass", "pass"]
    summary = runner["GITHUB_STEP_SUMMARY"].read_text()
    assert "## gate-metrics: ✅ passed" in summary
    assert "| metric | candidate | champion | delta | threshold | verdict |" in summary
    assert "| roc_auc ↑ | 0.81 | 0.8 | +0.01 | ≥ 0.6, regression ≤ 0.02 | ✅ pass |" in summary
    assert "| log_loss ↓ | 0.41 | 0.42 | -0.01 | ≤ 0.9, regression ≤ 0.05 | ✅ pass |" in summary
    assert (root / ".leanops/gate-metrics/report.md").read_text().startswith("## gate-metrics: ✅ passed")


def test_regressing_candidate_fails_with_annotations_on_the_gate_lines(tmp_path: Path, runner, capsys,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))  # annotations name files relative to the workspace
    root = project(tmp_path / "p", {"roc_auc": 0.70, "log_loss": 0.60}, {"roc_auc": 0.80, "log_loss": 0.42})
    assert gate(root) == 1
    assert outputs(runner)["passed"] == "false"
    summary = runner["GITHUB_STEP_SUMMARY"].read_text()
    assert "❌ failed (2 of 2 gates)" in summary and "❌ fail: regressed by 0.1 (allowed 0.02)" in summary
    out = capsys.readouterr()
    cfg = root / "leanops.yml"
    assert f"::error file=p/leanops.yml,line={line_of(cfg, 'roc_auc:')},title=leanops gate-metrics::roc_auc" in out.out
    assert f"line={line_of(cfg, 'log_loss:')}" in out.out
    assert "leanops gate-metrics: error: 2 of 2 gates failed: roc_auc (regressed by 0.1" in out.err


def test_missing_and_nan_required_metrics_fail(tmp_path: Path, runner) -> None:
    root = project(tmp_path / "p", {"roc_auc": float("nan")}, {"roc_auc": 0.8, "log_loss": 0.4})
    (root / "metrics.json").write_text('{"roc_auc": NaN}')
    assert gate(root) == 1
    summary = runner["GITHUB_STEP_SUMMARY"].read_text()
    assert "| roc_auc ↑ | NaN |" in summary and "not a number (nan); required" in summary
    assert "| log_loss ↓ | — | 0.4 |" in summary and "❌ fail: missing; required" in summary


def test_no_champion_yet_applies_absolute_gates_only_and_says_so(tmp_path: Path, runner) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "README.md").write_text("a repository before its first model\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    commit(root, "init")
    subprocess.run(["git", "checkout", "-q", "-b", "first-model"], cwd=root, check=True)
    project(root, {"roc_auc": 0.65, "log_loss": 0.5}, source="base-branch")
    commit(root, "the first model")
    assert gate(root, "--base-ref", "main") == 0
    summary = runner["GITHUB_STEP_SUMMARY"].read_text()
    assert "none yet" in summary and "only the absolute gates (min/max) apply" in summary
    assert "no champion: regression not checked" in summary


GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.com"}


def commit(root: Path, message: str) -> None:
    env = dict(os.environ, **GIT)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", message], cwd=root, check=True, env=env)


def test_base_branch_champion_with_history_and_bootstrap(tmp_path: Path, runner, monkeypatch) -> None:
    rng = np.random.default_rng(8)
    y, p, s = random_predictions(rng, 300, skill=1.0)
    extra = ("  bootstrap:\n    predictions: preds.csv\n    iterations: 300\n"
             "  fairness:\n    sensitive-column: gender\n    min-demographic-parity-ratio: 0.01\n")
    groups = [rng.choice(["f", "m"]) for _ in range(300)]
    root = project(tmp_path / "p", {"roc_auc": 0.78, "log_loss": 0.45}, source="base-branch", extra=extra)
    predictions_csv(root / "preds.csv", y, p, s, groups=groups)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    commit(root, "v1")
    (root / "metrics.json").write_text(json.dumps({"roc_auc": 0.80, "log_loss": 0.44}))
    commit(root, "v2")
    subprocess.run(["git", "checkout", "-q", "-b", "feature"], cwd=root, check=True)
    # the candidate: a quarter of its predictions flipped, and it says so in its metrics
    flip = rng.random(300) < 0.25
    predictions_csv(root / "preds.csv", y, np.where(flip, 1 - p, p), np.where(flip, 1 - s, s), groups=groups)
    (root / "metrics.json").write_text(json.dumps({"roc_auc": 0.70, "log_loss": 0.47}))
    commit(root, "candidate")
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    assert gate(root) == 1
    report = json.loads((root / ".leanops/gate-metrics/report.json").read_text())
    auc = report["gates"][0]
    assert auc["metric"] == "roc_auc" and auc["verdict"] == "fail" and "significant" in auc["reasons"][0]
    assert auc["interval"]["high"] < 0
    assert report["champion"]["metrics"]["roc_auc"] == 0.8 and "base branch main" in report["champion"]["label"]
    assert [h["metrics"]["roc_auc"] for h in report["history"]] == [0.78, 0.8]
    assert {g["metric"] for g in report["gates"]} == {"roc_auc", "log_loss", "demographic_parity_ratio"}
    summary = runner["GITHUB_STEP_SUMMARY"].read_text()
    assert "paired bootstrap: 300 resamples of the 300 examples" in summary and "paired by customer_id" in summary
    assert "xychart-beta" in summary and 'x-axis ["' in summary


def test_unknown_metric_is_a_configuration_error_with_a_hint(tmp_path: Path, runner, capsys) -> None:
    root = project(tmp_path / "p", {"roc_auc": 0.8, "logloss": 0.4}, {"roc_auc": 0.8, "logloss": 0.4})
    assert gate(root) == 2
    err = capsys.readouterr().err
    assert "gates.log_loss: unknown metric 'log_loss'; did you mean 'logloss'?" in err
    assert f"leanops.yml:{line_of(root / 'leanops.yml', 'log_loss:')}" in err and "Traceback" not in err


def test_min_above_max_is_a_configuration_error(tmp_path: Path, runner, capsys) -> None:
    root = project(tmp_path / "p", {"roc_auc": 0.8, "log_loss": 0.4}, {"roc_auc": 0.8, "log_loss": 0.4},
                   extra="")
    text = (root / "leanops.yml").read_text().replace("      max: 0.9\n", "      max: 0.9\n      min: 1.5\n")
    (root / "leanops.yml").write_text(text)
    assert gate(root) == 2
    assert "min 1.5 is above max 0.9; expected min <= max" in capsys.readouterr().err


def test_unreachable_tracking_server_is_exit_3(tmp_path: Path, runner, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LEANOPS_TRACKING_RETRIES", "2")
    monkeypatch.setenv("LEANOPS_TRACKING_BACKOFF", "0")
    root = project(tmp_path / "p", {"roc_auc": 0.8, "log_loss": 0.4}, source="mlflow")
    assert gate(root, "--tracking-uri", f"http://u:secret@127.0.0.1:{free_port()}") == 3
    err = capsys.readouterr().err
    assert "unreachable after 2 attempts" in err and "secret" not in err


def test_latency_gate_measures_the_model_in_process(tmp_path: Path, runner) -> None:
    import pickle

    extra = ("  latency:\n    data: rows.csv\n    max-p95-single-ms: {single}\n    batch-size: 8\n"
             "    samples: 20\n")
    root = project(tmp_path / "fast", {"roc_auc": 0.8, "log_loss": 0.4}, {"roc_auc": 0.8, "log_loss": 0.4},
                   extra=extra.format(single=1000))
    (root / "rows.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    (root / "model.pkl").write_bytes(pickle.dumps(SlowModel()))
    assert gate(root) == 0
    report = json.loads((root / ".leanops/gate-metrics/report.json").read_text())
    single = next(g for g in report["gates"] if g["metric"] == "latency_p95_single_ms")
    assert single["verdict"] == "pass" and 0 < single["candidate"] < 1000
    slow = project(tmp_path / "slow", {"roc_auc": 0.8, "log_loss": 0.4}, {"roc_auc": 0.8, "log_loss": 0.4},
                   extra=extra.format(single=5))
    (slow / "rows.csv").write_text("a,b\n1,2\n")
    (slow / "model.pkl").write_bytes(pickle.dumps(SlowModel(0.02)))
    assert gate(slow) == 1
    report = json.loads((slow / ".leanops/gate-metrics/report.json").read_text())
    single = next(g for g in report["gates"] if g["metric"] == "latency_p95_single_ms")
    assert single["verdict"] == "fail" and single["candidate"] >= 20 and "above max 5" in single["reasons"][0]


def test_latency_without_evaluation_rows_is_said_not_silently_passed(tmp_path: Path, runner, capsys) -> None:
    root = project(tmp_path / "p", {"roc_auc": 0.8, "log_loss": 0.4}, {"roc_auc": 0.8, "log_loss": 0.4},
                   extra="  latency:\n    max-p95-single-ms: 50\n")
    assert gate(root) == 0
    summary = runner["GITHUB_STEP_SUMMARY"].read_text()
    assert "latency not measured: no evaluation rows" in summary
    assert "➖ skipped: missing; optional, not gated" in summary
    assert "::warning" in capsys.readouterr().out


def test_the_subcommand_is_registered_without_heavy_imports() -> None:
    code = ("import sys; from leanops import cli; cli.build_parser(); "
            "print(sorted(m for m in ('mlflow', 'numpy', 'pandas', 'fairlearn', 'sklearn') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- the sticky comment


def pr_event(path: Path, number: int, head: str = "example/caller", base: str = "example/caller") -> Path:
    path.write_text(json.dumps({"number": number, "pull_request": {
        "number": number, "head": {"ref": "f", "repo": {"full_name": head}},
        "base": {"ref": "main", "repo": {"full_name": base}}}}))
    return path


def comment_gate(root: Path) -> int:
    return cli.main(["gate-metrics", "--working-directory", str(root)])


def test_two_runs_leave_one_comment_updated_in_place(tmp_path: Path, runner, api_recorder, monkeypatch) -> None:
    number = api_recorder.fake.add_pull_request(7)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(pr_event(tmp_path / "event.json", number)))
    root = project(tmp_path / "p", {"roc_auc": 0.81, "log_loss": 0.41}, {"roc_auc": 0.80, "log_loss": 0.42})
    assert comment_gate(root) == 0
    (root / "metrics.json").write_text(json.dumps({"roc_auc": 0.70, "log_loss": 0.41}))
    assert comment_gate(root) == 1
    comments = api_recorder.fake.comments_on(number)
    assert len(comments) == 1 and comments[0]["edits"] == 1
    body = comments[0]["body"]
    assert body.startswith("<!-- leanops:gate-metrics -->") and "❌ failed (1 of 2 gates)" in body
    assert "| roc_auc ↑ | 0.7 | 0.8 | -0.1 |" in body
    posts = [r for r in api_recorder.fake.requests if r.method in ("POST", "PATCH")]
    assert [r.method for r in posts] == ["POST", "PATCH"]
    assert all(r.headers["Authorization"] == "Bearer ghs_testtoken" for r in posts)


def test_two_model_folders_keep_a_comment_each(tmp_path: Path, runner, runner_files, api_recorder,
                                              monkeypatch) -> None:
    """Issue 16: two model folders gated on one pull request: each keeps its own sticky comment (the marker names
    the folder, and travels in report.md to the comment job), the root's stays as it was, the heading names the
    folder; its report artifact carries the folder too (the step output artifact-suffix)."""
    number = api_recorder.fake.add_pull_request(9)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(pr_event(tmp_path / "event.json", number)))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    roots = {name: project(tmp_path / name, {"roc_auc": 0.81, "log_loss": 0.41}, {"roc_auc": 0.80, "log_loss": 0.42})
             for name in ("models/churn", "models/fraud")}
    assert comment_gate(roots["models/churn"]) == 0
    assert "artifact-suffix=-models-churn" in runner_files["GITHUB_OUTPUT"].read_text()
    assert comment_gate(roots["models/fraud"]) == 0
    (roots["models/churn"] / "metrics.json").write_text(json.dumps({"roc_auc": 0.70, "log_loss": 0.41}))
    assert comment_gate(roots["models/churn"]) == 1
    # the comment job: no checkout, only the report file the gate wrote
    report = roots["models/fraud"] / ".leanops/gate-metrics/report.md"
    assert cli.main(["gate-metrics", "comment", "--report-file", str(report)]) == 0
    comments = {c["body"].split("\n", 1)[0]: c for c in api_recorder.fake.comments_on(number)}
    assert set(comments) == {"<!-- leanops:gate-metrics-models-churn -->", "<!-- leanops:gate-metrics-models-fraud -->"}
    churn, fraud = comments["<!-- leanops:gate-metrics-models-churn -->"], comments[
        "<!-- leanops:gate-metrics-models-fraud -->"]
    assert "## gate-metrics: ❌ failed (1 of 2 gates) · `models/churn`" in churn["body"] and churn["edits"] == 1
    assert "## gate-metrics: ✅ passed · `models/fraud`" in fraud["body"] and fraud["edits"] == 1


def test_fork_pull_request_gets_no_comment_and_a_notice(tmp_path: Path, runner, api_recorder, monkeypatch,
                                                        capsys) -> None:
    number = api_recorder.fake.add_pull_request(8)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(pr_event(tmp_path / "e.json", number, head="someone/caller")))
    root = project(tmp_path / "p", {"roc_auc": 0.81, "log_loss": 0.41}, {"roc_auc": 0.80, "log_loss": 0.42})
    assert comment_gate(root) == 0
    assert api_recorder.fake.requests == []
    out = capsys.readouterr().out
    assert "::notice title=leanops gate-metrics::no pull-request comment: the pull request comes from the fork " \
           "someone/caller" in out
    assert "✅ passed" in runner["GITHUB_STEP_SUMMARY"].read_text()


def test_a_403_is_a_notice_not_a_failure(tmp_path: Path, runner, api_recorder, monkeypatch, capsys) -> None:
    number = api_recorder.fake.add_pull_request(9)
    api_recorder.fake.forbid_comments = True
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(pr_event(tmp_path / "e.json", number)))
    root = project(tmp_path / "p", {"roc_auc": 0.81, "log_loss": 0.41}, {"roc_auc": 0.80, "log_loss": 0.42})
    assert comment_gate(root) == 0
    assert "no pull-request comment: the token may not comment on #9 (HTTP 403" in capsys.readouterr().out


def test_github_api_unreachable_is_exit_3_when_the_gate_passed(tmp_path: Path, runner, api_recorder, monkeypatch,
                                                               capsys) -> None:
    number = api_recorder.fake.add_pull_request(10)
    api_recorder.fake.fail_next = [502, 502, 502]
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(pr_event(tmp_path / "e.json", number)))
    root = project(tmp_path / "p", {"roc_auc": 0.81, "log_loss": 0.41}, {"roc_auc": 0.80, "log_loss": 0.42})
    assert comment_gate(root) == 3
    assert "unreachable after 3 tries" in capsys.readouterr().err
    assert "✅ passed" in runner["GITHUB_STEP_SUMMARY"].read_text()  # the summary still has the report
