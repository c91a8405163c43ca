"""`leanops data-validate` with real Great Expectations on small data: main(argv) -> exit code, runner files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from leanops import cli

from ..conftest import ROOT

EXAMPLE = ROOT / "examples" / "churn"
HEADER = "id,amount,kind\n"
GOOD_ROWS = "".join(f"{i},{10 + i % 7}.5,{'ab'[i % 2]}\n" for i in range(1, 41))

SUITE = {
    "name": "small",
    "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 20}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "kind", "value_set": ["a", "b"]}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10, "max_value": 100}},
    ],
    "meta": {},
}


@pytest.fixture(autouse=True)
def _quiet_gx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    for name in ("DATA", "SUITE", "DVC_PULL", "RESULT_FORMAT", "RESULT_FILE", "DATA_DOCS"):
        monkeypatch.delenv(f"LEANOPS_{name}", raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def suite_file(tmp_path: Path, suite: dict | None = None) -> Path:
    return write(tmp_path / "expectations" / "small.json", json.dumps(suite or SUITE, indent=2) + "\n")


def outputs(files: dict[str, Path]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if "=" in line)


def validate(tmp_path: Path, data: str, suite: Path, *extra: str) -> int:
    return cli.main(["data-validate", "--data", data, "--suite", str(suite), "--dvc-pull", "false",
                     "--result-file", str(tmp_path / "out" / "result.json"),
                     "--data-docs", str(tmp_path / "out" / "docs"), *extra])


def test_passing_dataset(tmp_path: Path, runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "data.csv", HEADER + GOOD_ROWS)
    assert validate(tmp_path, "data.csv", suite_file(tmp_path)) == 0
    out = outputs(runner_files)
    assert out["success"] == "true" and out["evaluated"] == "5" and out["failed"] == "0"
    result = json.loads(Path(out["result-file"]).read_text())
    assert result["success"] is True and result["datasets"][0]["rows"] == 40
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert "| `data.csv` | 40 | 5 | 5 | 0 | 0 | ✅ passed |" in summary
    assert '"passed" : 5' in summary and "```mermaid" in summary
    docs = Path(out["data-docs"])
    assert (docs / "index.html").is_file() and list(docs.glob("validations/**/*.html"))
    assert "::error" not in capsys.readouterr().out


def test_failing_dataset_exit_1_annotations_and_summary(tmp_path: Path, runner_files: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = GOOD_ROWS.replace("3,13.5,b\n", "3,99.5,b\n").replace("4,14.5,a\n", "4,,c\n")
    write(tmp_path / "data.csv", HEADER + bad)
    suite = suite_file(tmp_path)
    assert validate(tmp_path, "data.csv", suite) == 1
    captured = capsys.readouterr()
    out = outputs(runner_files)
    assert out["success"] == "false" and out["evaluated"] == "5" and out["failed"] == "3"
    # one annotation per failed expectation, on the suite file at the expectation's line
    text = suite.read_text().splitlines()
    line_of = {t: i + 1 for i, ln in enumerate(text) for t in re.findall(r'"type": "(\w+)"', ln)}
    notes = [ln for ln in captured.out.splitlines() if ln.startswith("::error file=expectations/small.json")]
    assert len(notes) == 3, captured.out
    for kind in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
                 "expect_column_values_to_be_in_set"):
        assert any(f"line={line_of[kind]}," in n and kind in n for n in notes), (kind, notes)
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert "| `data.csv` | 40 | 5 | 2 | 3 | 0 | ❌ failed |" in summary
    assert re.search(r"\| critical \| amount \| `expect_column_values_to_be_between` \| 1 unexpected \(2\.\d+%\) "
                     r"\| 99\.5 \|", summary), summary
    assert re.search(r"\| critical \| kind \| `expect_column_values_to_be_in_set` \| .* \| c \|", summary)
    assert "| critical | amount | `expect_column_values_to_not_be_null` |" in summary
    # the one-line error names the suite and the count
    err = [ln for ln in captured.err.splitlines() if ln.startswith("leanops data-validate: error:")]
    assert len(err) == 1 and "3 expectation(s) of expectations/small.json failed" in err[0]
    assert "Traceback" not in captured.err
    detail = json.loads((tmp_path / "out" / "result.json").read_text())["datasets"][0]["results"]
    between = next(r for r in detail if r["type"] == "expect_column_values_to_be_between")
    assert between["unexpected_values"] == [99.5] and between["unexpected_count"] == 1


def test_warning_only_failure_exits_0(tmp_path: Path, runner_files: dict[str, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    suite = json.loads(json.dumps(SUITE))
    suite["expectations"][2]["meta"] = {"severity": "warning"}
    write(tmp_path / "data.csv", HEADER + GOOD_ROWS.replace("5,15.5,b\n", "5,25.5,b\n"))
    assert validate(tmp_path, "data.csv", suite_file(tmp_path, suite)) == 0
    out = outputs(runner_files)
    assert out["success"] == "true" and out["failed"] == "0" and out["warnings"] == "1"
    captured = capsys.readouterr().out
    assert "::warning file=expectations/small.json" in captured and "::error" not in captured
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert "⚠️ passed with warnings" in summary and "| warning | amount |" in summary and "25.5" in summary


def test_gx_severity_field_is_honoured(tmp_path: Path, runner_files: dict[str, Path]) -> None:
    suite = json.loads(json.dumps(SUITE))
    suite["expectations"][3]["severity"] = "warning"  # GX 1.x's own field
    write(tmp_path / "data.csv", HEADER + GOOD_ROWS.replace("6,16.5,a\n", "6,16.5,z\n"))
    assert validate(tmp_path, "data.csv", suite_file(tmp_path, suite)) == 0
    assert outputs(runner_files)["warnings"] == "1"


def test_parquet_and_glob_config_from_leanops_yml(tmp_path: Path, runner_files: dict[str, Path]) -> None:
    import pandas as pd

    df = pd.read_csv(write(tmp_path / "src.csv", HEADER + GOOD_ROWS))
    (tmp_path / "proj" / "data").mkdir(parents=True)
    df.to_parquet(tmp_path / "proj/data/part-1.parquet")
    df.assign(kind="x").to_parquet(tmp_path / "proj/data/part-2.parquet")
    write(tmp_path / "proj/expectations/small.json", json.dumps(SUITE))
    write(tmp_path / "proj/leanops.yml",
          "version: 1\ndata-validate:\n  data: data/*.parquet\n  suite: expectations/small.json\n"
          "  dvc-pull: false\n  result-file: out/result.json\n  data-docs: false\n")
    # paths in leanops.yml are relative to its folder, wherever the command runs
    assert cli.main(["--config", str(tmp_path / "proj/leanops.yml"), "data-validate"]) == 1
    out = outputs(runner_files)
    assert out["evaluated"] == "10" and out["failed"] == "1" and out["data-docs"] == ""
    result = json.loads((tmp_path / "proj/out/result.json").read_text())
    assert [(d["path"].split("/")[-1], d["failed"]) for d in result["datasets"]] == [
        ("part-1.parquet", 0), ("part-2.parquet", 1)]
    # a flag overrides the file
    runner_files["GITHUB_OUTPUT"].write_text("")
    assert cli.main(["--config", str(tmp_path / "proj/leanops.yml"), "data-validate",
                     "--data", str(tmp_path / "proj/data/part-1.parquet")]) == 0
    assert outputs(runner_files)["evaluated"] == "5"


def test_example_passes_its_committed_suite(tmp_path: Path, runner_files: dict[str, Path]) -> None:
    assert cli.main(["--config", str(EXAMPLE / "leanops.yml"), "data-validate", "--dvc-pull", "false",
                     "--result-file", str(tmp_path / "r.json"), "--data-docs", "false"]) == 0
    out = outputs(runner_files)
    assert out["success"] == "true" and int(out["evaluated"]) >= 30


def test_init_suite_passes_the_dataset_and_fails_a_corrupted_copy(
        tmp_path: Path, runner_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd
    from great_expectations.core import ExpectationSuite

    data = shutil.copy(EXAMPLE / "data/raw/churn.csv", tmp_path / "churn.csv")
    suite = tmp_path / "expectations" / "churn.json"
    assert cli.main(["data-validate", "init", str(data), "--suite", str(suite)]) == 0
    doc = json.loads(suite.read_text())
    ExpectationSuite(**doc)  # GX's own format
    kinds = {(e["type"], e["kwargs"].get("column")) for e in doc["expectations"]}
    assert ("expect_column_values_to_be_unique", "customer_id") in kinds
    assert ("expect_column_values_to_be_in_set", "contract") in kinds
    assert ("expect_column_values_to_be_between", "monthly_charges") in kinds
    assert ("expect_column_values_to_not_be_null", "tenure_months") in kinds
    assert ("expect_table_row_count_to_be_between", None) in kinds
    # the committed example suite is what init writes, with one edit of the example's: its money ranges hold for
    # "mostly" 0.999 of the rows (the table grows and prices move: a new customer past the range is no corruption)
    committed = json.loads((EXAMPLE / "expectations/churn.json").read_text())["expectations"]
    edited = [e for e in committed if e["kwargs"].pop("mostly", None) == 0.999]
    assert sorted(e["kwargs"]["column"] for e in edited) == ["monthly_charges", "total_charges"]
    for e in edited:
        e["meta"]["note"] = e["meta"]["note"].split("; mostly 0.999")[0]
    assert doc["expectations"] == committed

    assert validate(tmp_path, str(data), suite) == 0

    df = pd.read_csv(data)
    df.loc[[3, 17, 40], "tenure_months"] = None      # nulls injected
    df.loc[5, "monthly_charges"] = 10_000.0          # out of range
    df.loc[9, "contract"] = "weekly"                 # a new category
    df.to_csv(tmp_path / "corrupted.csv", index=False)
    runner_files["GITHUB_OUTPUT"].write_text("")
    capsys.readouterr()
    assert validate(tmp_path, "corrupted.csv", suite) == 1
    results = json.loads((tmp_path / "out/result.json").read_text())["datasets"][0]["results"]
    failed = {(r["type"], r["column"]) for r in results if not r["success"]}
    assert ("expect_column_values_to_not_be_null", "tenure_months") in failed
    assert ("expect_column_values_to_be_between", "monthly_charges") in failed
    assert ("expect_column_values_to_be_in_set", "contract") in failed
    contract = next(r for r in results if r["type"] == "expect_column_values_to_be_in_set"
                    and r["column"] == "contract")
    assert contract["unexpected_values"] == ["weekly"]


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, no_runner: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path / "data.csv", HEADER + GOOD_ROWS)
    suite = write(tmp_path / "s.json", "{}")
    assert cli.main(["data-validate", "init", str(data), "--suite", str(suite)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["leanops data-validate: error: s.json: suite exists; refusing to overwrite it "
                   "(pass --force to replace it)"]
    assert suite.read_text() == "{}"
    assert cli.main(["data-validate", "init", str(data), "--suite", str(suite), "--force"]) == 0
    assert len(json.loads(suite.read_text())["expectations"]) > 5


BAD_INPUTS = {
    "missing data file": ("nope.csv", None, SUITE, "nope.csv: data file not found"),
    "empty data file": ("empty.csv", b"", SUITE, "empty.csv: empty file"),
    "ragged rows": ("ragged.csv", (HEADER + "1,2.5,a\n2,3.5,b,extra\n").encode(), SUITE,
                    "ragged.csv:3: ragged row: 4 fields; expected 3"),
    "undecodable bytes": ("latin.csv", (HEADER + "1,2.5,a\n").encode() + b"2,3.5,caf\xe9\n", SUITE,
                          "latin.csv:3: undecodable bytes"),
    "column the data lacks": ("data.csv", (HEADER + GOOD_ROWS).encode(),
                              {"name": "s", "expectations": [
                                  {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
                                  {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "price"}}]},
                              "expectations/small.json:11: expectations[1] (expect_column_values_to_not_be_null) "
                              "names column 'price', which data.csv lacks"),
    "unknown expectation type": ("data.csv", (HEADER + GOOD_ROWS).encode(),
                                 {"name": "s", "expectations": [
                                     {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                                     {"type": "expect_column_to_be_lovely", "kwargs": {"column": "id"}}]},
                                 "expectations/small.json:11: expectations[1]: unknown expectation type "
                                 "'expect_column_to_be_lovely'"),
    "malformed suite JSON": ("data.csv", (HEADER + GOOD_ROWS).encode(), '{"name": "s",\n "expectations": [\n}\n',
                             "expectations/small.json:3: malformed JSON"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exit_2_one_line(case: str, tmp_path: Path, runner_files: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    name, content, suite, expected = BAD_INPUTS[case]
    if content is not None:
        write(tmp_path / name, content)
    if isinstance(suite, str):
        path = write(tmp_path / "expectations" / "small.json", suite)
    else:
        path = suite_file(tmp_path, suite)
    assert validate(tmp_path, name, path) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith(f"leanops data-validate: error: {expected}"), err[0]
    assert "Traceback" not in captured.err + captured.out
    assert "::error file=" in captured.out  # the same line as an annotation on the file


def test_dvc_tracked_data_is_pulled_from_the_remote_first(tmp_path: Path, runner_files: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    from dvc.repo import Repo

    proj = tmp_path / "proj"
    proj.mkdir()
    Repo.init(str(proj), no_scm=True).close()
    (proj / ".dvc" / "config").write_text(f"[core]\n    no_scm = True\n    remote = local\n"
                                          f"['remote \"local\"']\n    url = {tmp_path / 'remote'}\n")
    write(proj / "data" / "good.csv", HEADER + GOOD_ROWS)
    with Repo(str(proj)) as repo:
        repo.add(str(proj / "data" / "good.csv"))
        assert repo.push() == 1
    (proj / "data" / "good.csv").unlink()  # a fresh checkout: only data/good.csv.dvc is there
    monkeypatch.chdir(proj)
    assert validate(tmp_path, "data/good.csv", suite_file(tmp_path), "--dvc-pull", "true") == 0
    assert (proj / "data" / "good.csv").read_text() == HEADER + GOOD_ROWS
    assert outputs(runner_files)["evaluated"] == "5"
    # without the pull the file is missing: bad input, exit 2
    (proj / "data" / "good.csv").unlink()
    assert validate(tmp_path, "data/good.csv", suite_file(tmp_path), "--dvc-pull", "false") == 2


def test_init_handles_bools_dates_nulls_and_parquet(tmp_path: Path, runner_files: dict[str, Path]) -> None:
    import pandas as pd

    n = 60
    df = pd.DataFrame({
        "key": [f"k{i:03d}" for i in range(n)],
        "id": list(range(1001, 1001 + n)),
        "active": [i % 3 == 0 for i in range(n)],
        "day": pd.date_range("2026-01-01", periods=n, freq="D"),
        "score": [None if i % 10 == 0 else i / 7 for i in range(n)],
        "level": [i % 4 for i in range(n)],
    })
    df.to_parquet(tmp_path / "d.parquet")
    suite = tmp_path / "s.json"
    assert cli.main(["data-validate", "init", str(tmp_path / "d.parquet"), "--suite", str(suite)]) == 0
    exps = json.loads(suite.read_text())["expectations"]
    by = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in exps}
    assert by[("expect_column_values_to_be_in_set", "active")]["value_set"] == [False, True]
    assert ("expect_column_values_to_be_in_set", "day") not in by  # dates get a type, not a set
    assert 0.8 <= by[("expect_column_values_to_not_be_null", "score")]["mostly"] < 0.9
    assert ("expect_column_values_to_be_unique", "key") in by
    # an integer key: unique, and no range (new rows bring new keys: a table that grows)
    assert ("expect_column_values_to_be_unique", "id") in by and ("expect_column_values_to_be_between", "id") not in by
    assert by[("expect_column_values_to_be_between", "level")] == {"column": "level", "min_value": 0, "max_value": 4}
    # the data it profiled passes it
    assert validate(tmp_path, str(tmp_path / "d.parquet"), suite) == 0
    assert outputs(runner_files)["failed"] == "0"


@pytest.mark.parametrize("fmt", ["BASIC", "COMPLETE"])
def test_result_format_changes_the_first_pass_not_the_verdict(fmt: str, tmp_path: Path,
                                                              runner_files: dict[str, Path]) -> None:
    write(tmp_path / "data.csv", HEADER + GOOD_ROWS.replace("3,13.5,b\n", "3,99.5,b\n"))
    assert validate(tmp_path, "data.csv", suite_file(tmp_path), "--result-format", fmt) == 1
    result = json.loads((tmp_path / "out/result.json").read_text())
    assert result["result_format"] == fmt and result["failed"] == 1
    between = next(r for r in result["datasets"][0]["results"] if not r["success"])
    assert between["unexpected_values"] == [99.5] and between["observed"].startswith("1 unexpected")
