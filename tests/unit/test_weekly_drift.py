"""weekly-drift without Evidently: the statistics against scipy, column types, the JSON-lines shapes, settings,
the summary chart, and the wiring of the action, the reusable workflow and the template."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from scipy import stats as sps

from leanops import cli
from leanops.errors import BadInput
from leanops.weekly_drift import alert as wd_alert
from leanops.weekly_drift import data, stats
from leanops.weekly_drift import detect as wd_detect
from leanops.weekly_drift import report as wd_report
from leanops.weekly_drift import settings as wd_settings

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(("n", "m"), [(1000, 1000), (1000, 777), (31, 1000), (5, 3)])
def test_wasserstein_equals_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    u = rng.normal(0, 1, n)
    v = rng.gamma(2, 1, m)
    ours = stats.wasserstein_sorted(np.sort(u), np.sort(v))
    assert ours == pytest.approx(sps.wasserstein_distance(u, v), rel=1e-12)


def test_wasserstein_with_ties_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    u = rng.integers(0, 20, 5000).astype(float)
    v = rng.integers(2, 25, 3001).astype(float)
    assert stats.wasserstein_sorted(np.sort(u), np.sort(v)) == pytest.approx(sps.wasserstein_distance(u, v),
                                                                              rel=1e-12)


def test_numerical_column_uses_normed_wasserstein_above_1000_rows() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 2, 3000)
    cur = rng.normal(0.5, 2, 2000)
    cur[:10] = np.nan
    result = stats.column_drift("x", stats.NUMERICAL, pa.chunked_array([ref]), pa.chunked_array([cur]))
    expected = sps.wasserstein_distance(ref, cur[10:]) / np.std(ref)
    assert result.test == "wasserstein" and result.score == pytest.approx(expected, rel=1e-12)
    assert result.drifted is bool(expected >= 0.1) and result.current_rows == 1990


@pytest.mark.parametrize(("kind", "rows", "distinct", "test"), [
    (stats.NUMERICAL, 1001, 6, "wasserstein"), (stats.NUMERICAL, 1001, 5, "jensenshannon"),
    (stats.CATEGORICAL, 1001, 50, "jensenshannon"), (stats.NUMERICAL, 1000, 6, "ks"),
    (stats.NUMERICAL, 1000, 5, "chisquare"), (stats.NUMERICAL, 1000, 2, "z"), (stats.CATEGORICAL, 10, 3, "chisquare"),
    (stats.CATEGORICAL, 10, 2, "z"),
])
def test_test_choice_follows_evidentlys_defaults(kind: str, rows: int, distinct: int, test: str) -> None:
    assert stats.choose_test(kind, rows, distinct).name == test


def test_small_samples_use_ks_with_scipys_p_value() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(0, 1, 300), rng.normal(0.4, 1, 200)
    result = stats.column_drift("x", stats.NUMERICAL, pa.chunked_array([ref]), pa.chunked_array([cur]))
    assert result.test == "ks" and result.score == pytest.approx(sps.ks_2samp(ref, cur).pvalue)
    assert result.drifted and result.strength > 1


def test_jensen_shannon_of_categories() -> None:
    ref = pa.chunked_array([["a"] * 700 + ["b"] * 300 + [None] * 50 + ["c"] * 10])
    cur = pa.chunked_array([["a"] * 300 + ["b"] * 600 + ["d"] * 100])
    result = stats.column_drift("c", stats.CATEGORICAL, ref, cur)
    keys = ["a", "b", "c", "d"]
    p = np.array([700, 300, 10, 0]) / 1010
    q = np.array([300, 600, 0, 100]) / 1000
    from scipy.spatial import distance

    assert keys and result.score == pytest.approx(distance.jensenshannon(p, q))
    assert result.reference_rows == 1010 and result.drifted


def test_z_test_of_one_identical_value_is_1() -> None:
    assert stats.z_test({"x": 5}, {"x": 9}) == 1.0
    assert stats.z_test({"x": 50, "y": 50}, {"x": 90, "y": 10}) < 0.05


def test_an_empty_column_has_no_score_and_does_not_count() -> None:
    empty = stats.column_drift("e", stats.NUMERICAL, pa.chunked_array([[1.0, 2.0]]),
                               pa.chunked_array([[None, None]], type=pa.float64()))
    assert math.isnan(empty.score) and not empty.drifted
    full = stats.ColumnDrift("f", stats.NUMERICAL, "wasserstein", 0.2, 0.1, True, 10, 10)
    assert stats.dataset_drift([empty, full], 0.5) == (1, 1.0, True)
    assert stats.dataset_drift([empty], 0.5) == (0, 0.0, False)


@pytest.mark.parametrize(("values", "kind"), [
    (pa.array([1.5, 2.5]), stats.NUMERICAL),
    (pa.array(list(range(11))), stats.NUMERICAL),
    (pa.array([1, 2, 3] * 5), stats.CATEGORICAL),
    (pa.array([1, None, 3]), stats.NUMERICAL),  # pandas makes it float64
    (pa.array(["a", "b", "a", "a"]), stats.CATEGORICAL),
    (pa.array(["a", "b", "c", "a"]), stats.TEXT),  # more than half distinct
    (pa.array([True, False]), stats.CATEGORICAL),
    (pa.array([True, None]), stats.UNSUPPORTED),
    (pa.array(["x", "y", "x"]).dictionary_encode(), stats.CATEGORICAL),
    (pa.array([None, None], type=pa.string()), stats.UNSUPPORTED),
    (pa.array([0, 1], type=pa.timestamp("s")), stats.UNSUPPORTED),
])
def test_column_types_follow_evidentlys_inference(values: pa.Array, kind: str) -> None:
    assert stats.infer_kind(pa.chunked_array([values])) == kind


def test_value_counts_drop_nan_infinity_and_nulls() -> None:
    column = pa.chunked_array([[1.0, float("nan"), float("inf"), None, 1.0, 2.0]])
    assert stats.value_counts(column) == {1.0: 2, 2.0: 1}


# ---------------------------------------------------------------------------- reading


def _jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_three_json_lines_shapes(tmp_path: Path) -> None:
    serve = _jsonl(tmp_path / "serve.jsonl", [
        {"ts": 1.0, "model_name": "m", "model_version": "1", "inputs": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
         "predictions": [0, 1]},
        {"ts": 2.0, "model_name": "m", "model_version": "1", "inputs": [{"a": 3, "b": "x"}], "predictions": [1]}])
    table = data.read_file(serve)
    assert table.column_names == ["a", "b", "prediction"] and table.num_rows == 3
    assert table["prediction"].to_pylist() == [0, 1, 1]
    single = _jsonl(tmp_path / "single.jsonl", [{"inputs": {"a": 1.5, "b": "x"}, "prediction": 0.2}])
    assert data.read_file(single).to_pylist() == [{"a": 1.5, "b": "x", "prediction": 0.2}]
    mixed = _jsonl(tmp_path / "mixed.jsonl", [{"inputs": {"a": 1, "b": "x"}, "prediction": 1},
                                               {"a": 2, "b": "y", "prediction": 0}, {"a": 3, "b": "z"}])
    assert sorted(map(tuple, (r.values() for r in data.read_file(mixed).to_pylist()))) == [
        (1, "x", 1), (2, "y", 0), (3, "z", None)]
    flat = _jsonl(tmp_path / "flat.jsonl", [{"a": 1, "score": 0.5}, {"a": 2.5, "score": 0.7}])
    assert data.read_file(flat, prediction_column="score").column_names == ["a", "score"]


def test_bad_json_lines_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": 2\n')
    with pytest.raises(BadInput) as err:
        data.read_file(bad)
    assert err.value.line == 2 and "not a JSON object per line" in err.value.message
    uneven = _jsonl(tmp_path / "uneven.jsonl", [{"inputs": [{"a": 1}, {"a": 2}], "predictions": [1]}])
    with pytest.raises(BadInput, match="different number of inputs and predictions"):
        data.read_file(uneven)


def test_unknown_suffix_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(BadInput, match="unknown file type '.xlsx'"):
        data.read_file(tmp_path / "x.xlsx")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(BadInput, match="empty file"):
        data.read_file(tmp_path / "e.csv")


def test_a_folder_reads_every_data_file_inside(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.csv").write_text("x\n1\n")
    (tmp_path / "logs" / "b.csv").write_text("x\n2\n")
    (tmp_path / "logs" / "notes.md").write_text("#")
    assert [p.name for p in data.resolve_files([str(tmp_path / "logs")], "current")] == ["a.csv", "b.csv"]
    loaded = data.load([str(tmp_path / "logs")], "current")
    assert loaded.rows == 2


# ---------------------------------------------------------------------------- settings and columns


@pytest.fixture(autouse=True)
def _no_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("THRESHOLD", "MIN_ROWS", "CURRENT", "REFERENCE", "COLUMNS", "REPORT_DIR", "RETRAIN_WORKFLOW"):
        monkeypatch.delenv(f"LEANOPS_{key}", raising=False)


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str | None, *argv: str) -> wd_settings.Settings:
    monkeypatch.chdir(tmp_path)
    if config is not None:
        (tmp_path / "leanops.yml").write_text(config)
    parser = cli.build_parser()
    args = parser.parse_args(["weekly-drift", *argv])
    return wd_settings.settings(args)


def test_flags_override_leanops_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ("version: 1\nweekly-drift:\n  current: logs/*.jsonl\n  reference: data/train.csv\n  threshold: 0.3\n"
           "  min-rows: 200\n  columns: [a, b]\n  retrain-workflow: train.yml\n")
    s = _settings(tmp_path, monkeypatch, cfg)
    assert (s.threshold, s.min_rows, s.columns, s.retrain_workflow) == (0.3, 200, ["a", "b"], "train.yml")
    assert s.current == [str(tmp_path / "logs/*.jsonl")] and s.reference == [str(tmp_path / "data/train.csv")]
    assert s.report_dir == tmp_path / "weekly-drift-report"
    monkeypatch.setenv("LEANOPS_THRESHOLD", "0.6")  # as the action passes its input
    s = _settings(tmp_path, monkeypatch, None, "--min-rows", "5", "--current", "x.csv")
    assert (s.threshold, s.min_rows, s.current) == (0.6, 5, ["x.csv"])


def test_defaults_and_bad_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(tmp_path, monkeypatch, None, "--current", "c.csv")
    assert (s.threshold, s.min_rows, s.prediction_column, s.open_issue, s.dispatch) == (0.5, 100, "prediction",
                                                                                         True, True)
    with pytest.raises(BadInput, match="threshold: expected a share between 0 and 1, got 1.5"):
        _settings(tmp_path, monkeypatch, None, "--current", "c.csv", "--threshold", "1.5")
    with pytest.raises(BadInput, match="no current data: pass --current"):
        _settings(tmp_path, monkeypatch, None)


def test_leanops_yml_section_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput, match=r"weekly-drift.threshold: expected a number <= 1, got 3"):
        _settings(tmp_path, monkeypatch, "version: 1\nweekly-drift:\n  threshold: 3\n")
    with pytest.raises(BadInput, match="unknown key 'window'"):
        _settings(tmp_path, monkeypatch, "version: 1\nweekly-drift:\n  window: 7\n")


def _s(**kw: object) -> wd_settings.Settings:
    base = dict(reference=[], current=["c"], threshold=0.5, min_rows=1, columns=[], ignore_columns=[],
                target_column="", prediction_column="prediction", retrain_workflow="", retrain_ref="main",
                dispatch=True, open_issue=True, fail_on_insufficient_data=False, report_dir=Path("r"),
                sample_rows=1000)
    base.update(kw)
    return wd_settings.Settings(**base)  # type: ignore[arg-type]


def test_compared_columns() -> None:
    ref = ["id", "a", "b", "label"]
    cur = ["a", "b", "prediction"]
    assert wd_detect.compared_columns(_s(target_column="label", ignore_columns=["id"]), ref, cur) == ["a", "b"]
    with pytest.raises(BadInput) as err:
        wd_detect.compared_columns(_s(), ref, cur)
    assert err.value.message.startswith("reference and current data have different columns: only in the "
                                        "reference: id, label (set")
    with pytest.raises(BadInput, match="missing from the reference: z; missing from the current data: id, z"):
        wd_detect.compared_columns(_s(columns=["a", "id", "z"]), ref, cur)


# ---------------------------------------------------------------------------- what a person reads


def test_chart_and_table() -> None:
    results = [
        stats.ColumnDrift('say "hi"', stats.CATEGORICAL, "jensenshannon", 0.9, 0.1, True, 10, 10),
        stats.ColumnDrift("b", stats.NUMERICAL, "ks", 0.5, 0.05, False, 10, 10),
        stats.ColumnDrift("p", stats.NUMERICAL, "ks", 0.0, 0.05, True, 10, 10, role="prediction"),
    ]
    chart = wd_report.chart(results)
    assert chart.startswith("```mermaid\nxychart-beta\n") and chart.endswith("```\n")
    assert "x-axis [\"say 'hi'\", \"b\", \"p\"]" in chart and "bar [5.000, 0.100, 5.000]" in chart
    assert "y-axis \"score / threshold\" 0 --> 5" in chart and "line [1, 1, 1]" in chart
    table = wd_report.table(results)
    assert table.splitlines()[0] == "| column | type | statistic | score | threshold | drifted |"
    assert "| `p` (prediction) | numerical | K-S p_value | 0 | 0.05 | **yes** |" in table


def test_workflow_file_comes_from_the_workflow_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WORKFLOW_REF", "acme/app/.github/workflows/drift.yml@refs/heads/main")
    assert wd_alert.workflow_file() == "drift.yml"
    monkeypatch.setenv("GITHUB_WORKFLOW_REF", "")
    assert wd_alert.workflow_file() == "weekly-drift.yml"


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["weekly-drift", "--help"]) == 0
    out = capsys.readouterr().out
    assert "stale-check" in out and "dispatch" in out and "--fail-on-insufficient-data" in out


# ---------------------------------------------------------------------------- wiring


def _kit_ref() -> str:
    """The one commit every self-reference of the kit names (release.find_self_refs; a full SHA)."""
    from leanops.tools import release

    (ref,) = {r.ref for r in release.find_self_refs(ROOT)}
    assert len(ref) == 40, ref
    return ref


KIT_REF = _kit_ref()


def _flags() -> set[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {opt for a in sub.choices["weekly-drift"]._actions for opt in a.option_strings}


def test_action_passes_every_input_as_a_flag_variable() -> None:
    action = yaml.safe_load((ROOT / "actions/weekly-drift/action.yml").read_text())
    steps = action["runs"]["steps"]
    # the kit's own setup at its pinned commit, with no cache (the job holds the issues token)
    assert steps[0] == {"uses": f"leanops/leanops@{KIT_REF}", "with": {"extras": "weekly-drift",
                                                                       "python": "${{ inputs.python }}",
                                                                       "cache": "false"}}
    run = steps[1]
    assert run["id"] == "run" and run["run"] == "leanops weekly-drift" and run["shell"] == "bash"
    flags = _flags()
    for name in action["inputs"]:
        if name in ("token", "python"):
            continue
        assert run["env"][f"LEANOPS_{name.upper().replace('-', '_')}"] == f"${{{{ inputs.{name} }}}}", name
        assert f"--{name}" in flags, name
        assert "Default" in action["inputs"][name]["description"], name
    assert run["env"]["GITHUB_TOKEN"] == "${{ inputs.token }}"
    assert action["inputs"]["token"]["default"] == "${{ github.token }}"
    assert {"drift-detected", "drift-share", "issue-number", "retrain-dispatched"} <= set(action["outputs"])


def test_reusable_workflow_gives_each_job_the_least_permissions() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/weekly-drift.yml").read_text())
    call = wf[True]["workflow_call"]
    assert {"reference", "current", "threshold", "retrain-workflow", "fail-on-insufficient-data", "runs-on",
            "python-version", "working-directory"} <= set(call["inputs"])
    assert call["inputs"]["python-version"]["default"] == "3.12"
    assert call["inputs"]["fail-on-insufficient-data"]["type"] == "boolean"
    assert wf["permissions"] == {}
    jobs = wf["jobs"]
    assert jobs["drift"]["permissions"] == {"contents": "read", "issues": "write"}
    assert jobs["retrain"]["permissions"] == {"actions": "write"}
    assert jobs["stale-check"]["permissions"] == {"contents": "read", "issues": "write", "actions": "read"}
    drift_uses = [s.get("uses", "") for s in jobs["drift"]["steps"]]
    assert f"leanops/leanops/actions/weekly-drift@{KIT_REF}" in drift_uses
    assert any(u.startswith("actions/upload-artifact@") for u in drift_uses)
    for job in jobs.values():
        assert job["runs-on"] == "${{ startsWith(inputs.runs-on, '[') && fromJSON(inputs.runs-on) || inputs.runs-on }}"
    assert [s["run"] for s in jobs["retrain"]["steps"] if "run" in s] == ["leanops weekly-drift dispatch"]
    assert [s["run"] for s in jobs["stale-check"]["steps"] if "run" in s] == ["leanops weekly-drift stale-check"]


def test_template_is_a_weekly_caller() -> None:
    tpl = yaml.safe_load((ROOT / "templates/workflows/weekly-drift.yml").read_text())
    on = tpl[True]
    assert on["schedule"][0]["cron"].split()[4] in ("1", "MON") and "workflow_dispatch" in on
    job = tpl["jobs"]["drift"]
    assert job["uses"] == f"leanops/leanops/.github/workflows/weekly-drift.yml@{KIT_REF}"
    assert tpl["permissions"] == {} and job["permissions"]["issues"] == "write"
