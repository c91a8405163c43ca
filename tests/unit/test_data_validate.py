"""Pieces of data-validate that need no Great Expectations: suite lines, severity, files, DVC, the summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leanops import datasets
from leanops.data_validate import report as dv_report
from leanops.data_validate import suite as dv_suite
from leanops.data_validate import validate as dv_validate
from leanops.errors import BadInput


def test_expectation_lines_follow_the_file_in_order() -> None:
    suite = {"name": "s", "meta": {"type": "x"}, "expectations": [
        {"type": "expect_a", "kwargs": {}}, {"type": "expect_b"}, {"type": "expect_a"}, {"kwargs": {}}]}
    text = json.dumps(suite, indent=2)
    lines = text.splitlines()
    got = dv_suite._expectation_lines(text, suite["expectations"])
    assert [lines[n - 1].strip() if n else None for n in got] == [
        '"type": "expect_a",', '"type": "expect_b"', '"type": "expect_a"', None]
    assert got[0] < got[1] < got[2]


@pytest.mark.parametrize(("exp", "want"), [
    ({"type": "t"}, "critical"),
    ({"type": "t", "meta": {"severity": "warning"}}, "warning"),
    ({"type": "t", "meta": {"severity": "Info"}}, "warning"),
    ({"type": "t", "severity": "warning"}, "warning"),
    ({"type": "t", "severity": "critical", "meta": {"severity": "critical"}}, "critical"),
])
def test_severity(exp: dict, want: str) -> None:
    assert dv_suite.severity(exp) == want


def test_columns_named() -> None:
    assert dv_suite.columns_named({"kwargs": {"column": "a"}}) == ["a"]
    assert dv_suite.columns_named({"kwargs": {"column_A": "a", "column_B": "b"}}) == ["a", "b"]
    assert dv_suite.columns_named({"kwargs": {"column_list": ["x", "y"]}}) == ["x", "y"]
    assert dv_suite.columns_named({"kwargs": {"column_set": ["x"]}}) == []  # the subject of a table check


def test_expand_globs_and_keeps_order(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "c.parquet"):
        (tmp_path / name).write_text("x\n1\n")
    got = datasets.expand([str(tmp_path / "*.csv"), str(tmp_path / "c.parquet"), str(tmp_path / "a.csv")])
    assert [p.name for p in got] == ["a.csv", "b.csv", "c.parquet"]
    with pytest.raises(BadInput, match="no file matches the glob"):
        datasets.expand([str(tmp_path / "*.tsv")])


@pytest.mark.parametrize(("content", "line", "words"), [
    (b"a,b\n1,2\n3,4,5\n", 3, "ragged row: 3 fields; expected 2"),
    (b"a,b\n1,2\n3,4\n5\n", 4, "ragged row: 1 fields; expected 2"),
    (b"a,b\n1,2\n3,\xff\n", 3, "undecodable bytes"),
])
def test_read_table_names_the_bad_line(tmp_path: Path, content: bytes, line: int, words: str) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(BadInput) as info:
        datasets.read_table(path)
    assert info.value.line == line and words in info.value.message


def test_read_table_rejects_header_only_and_unknown_types(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(BadInput, match="no data rows"):
        datasets.read_table(tmp_path / "h.csv")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(BadInput, match="unknown file type"):
        datasets.read_table(tmp_path / "d.xlsx")
    (tmp_path / "p.parquet").write_text("not parquet")
    with pytest.raises(BadInput, match="not readable as Parquet"):
        datasets.read_table(tmp_path / "p.parquet")


def test_read_table_reads_csv_with_pyarrow(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,x,s\n1,2.5,a\n2,,b\n")
    df = datasets.read_table(tmp_path / "d.csv")
    assert list(df.columns) == ["id", "x", "s"] and len(df) == 2
    assert str(df["id"].dtype) == "int64" and df["x"].isna().sum() == 1


def test_dvc_targets_find_tracked_files(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / ".dvc").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw.dvc").write_text("outs:\n- path: raw\n")
    (root / "dvc.lock").write_text("stages:\n  prep:\n    outs:\n    - path: data/prepared/train.csv\n")
    got_root, targets = datasets.dvc_targets([str(root / "data/raw/*.csv"), str(root / "data/prepared/train.csv"),
                                        str(root / "data/other.csv")])
    assert got_root == root and targets == ["data/prepared/train.csv", "data/raw"]
    assert datasets.dvc_targets([str(tmp_path / "elsewhere.csv")]) == (None, [])


def test_summary_tables_and_pie(tmp_path: Path) -> None:
    suite = dv_suite.Suite(path=tmp_path / "s.json", name="s", raw={}, expectations=[], lines=[])
    ok = dv_validate.Outcome(index=0, type="expect_x", column="a", severity="critical", success=True, line=3)
    bad = dv_validate.Outcome(index=1, type="expect_column_values_to_be_in_set", column="kind", severity="critical",
                     success=False, line=9, observed="2 unexpected (5.00%)", unexpected=["c|d", None, 3])
    warn = dv_validate.Outcome(index=2, type="expect_y", column="(table)", severity="warning", success=False, line=None,
                      observed="12")
    res = dv_validate.DatasetResult(path="data.csv", rows=1234, outcomes=[ok, bad, warn])
    text = dv_report.summary(suite, [res], None)
    assert "| `data.csv` | 1,234 | 3 | 1 | 1 | 1 | ❌ failed |" in text
    assert '"passed" : 1' in text and '"failed" : 1' in text and '"warnings" : 1' in text
    assert ("| critical | kind | `expect_column_values_to_be_in_set` | 2 unexpected (5.00%) | c\\|d, null, 3 | 9 |"
            in text)
    assert "| warning | (table) | `expect_y` | 12 |  |  |" in text


def test_module_keeps_heavy_imports_out_of_the_cli_start() -> None:
    code = ("import argparse, sys, leanops.data_validate as m; m.register(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('great_expectations', 'pandas', 'pyarrow') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_domains_group_expectations_by_the_columns_they_read() -> None:
    exps = [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "b", "min_value": 0}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"}},
        {"type": "expect_column_pair_values_a_to_be_greater_than_b", "kwargs": {"column_A": "a", "column_B": "b"}},
        {"type": "expect_column_to_exist", "kwargs": {"column": "c"}},
        {"type": "expect_column_values_to_not_be_null",
         "kwargs": {"column": "a", "row_condition": 'b > 0', "condition_parser": "pandas"}},
    ]
    assert dv_validate.domains(exps) == {(): [0, 5, 6], ("a",): [1, 3], ("b",): [2], ("a", "b"): [4]}
