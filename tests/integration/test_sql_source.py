"""Data in PostgreSQL: `leanops data-validate` on a table or a query (GX's SQL datasource, the checks run in the
database) and `leanops weekly-drift` reading its current window from a query, against a real PostgreSQL on
loopback (tests.services: initdb + postgres), as a user types the commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from leanops import cli

from ..conftest import ROOT
from ..services import free_port
from .test_data_validate import SUITE  # id unique, amount not null and in 0..20, kind in {a, b}, 10..100 rows

pytestmark = pytest.mark.usefixtures("runner_files")

ROWS = [(i, 10 + i % 7 + 0.5, "ab"[i % 2]) for i in range(1, 41)]


@pytest.fixture
def db(postgres_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh database with a good table and a bad one; the password only in PGPASSWORD; cwd tmp_path."""
    name = postgres_server.create_database("dv")
    with postgres_server.connect(name) as conn:
        for table, rows in (("customers", ROWS),
                            ("customers_bad", [(3, 99.5, "b") if r[0] == 3 else (6, r[1], "zzz") if r[0] == 6 else r
                                               for r in ROWS])):
            conn.execute(f"CREATE TABLE {table} (id integer, amount double precision, kind text)".encode())
            with conn.cursor().copy(f"COPY {table} (id, amount, kind) FROM STDIN".encode()) as copy:
                for row in rows:
                    copy.write_row(row)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    for var in ("DATA", "SUITE", "DVC_PULL", "RESULT_FORMAT", "RESULT_FILE", "DATA_DOCS", "CURRENT", "REFERENCE"):
        monkeypatch.delenv(f"LEANOPS_{var}", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "expectations").mkdir()
    (tmp_path / "expectations/small.json").write_text(json.dumps(SUITE, indent=2) + "\n")
    url = f"postgresql://{postgres_server.user}@127.0.0.1:{postgres_server.port}/{name}"
    return {"url": url, "name": name, "pg": postgres_server}


def project(tmp_path: Path, url: str, **keys: str) -> Path:
    lines = ["version: 1", "data-validate:", f"  data: {url}", "  suite: expectations/small.json",
             "  result-file: out/result.json", "  data-docs: out/docs"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in keys.items()]
    path = tmp_path / "leanops.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def outputs(files: dict[str, Path]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if "=" in line)


def test_a_table_is_validated_in_the_database(db, tmp_path: Path, runner_files, capsys) -> None:  # type: ignore[no-untyped-def]
    config = project(tmp_path, db["url"], table="customers")
    assert cli.main(["--config", str(config), "data-validate"]) == 0
    out = outputs(runner_files)
    assert (out["success"], out["evaluated"], out["failed"]) == ("true", "5", "0")
    result = json.loads((tmp_path / "out/result.json").read_text())
    (dataset,) = result["datasets"]
    assert dataset["path"] == f"postgresql://leanops@127.0.0.1:{db['pg'].port}/{db['name']} table customers"
    assert dataset["rows"] == 40 and dataset["passed"] == 5
    assert (tmp_path / "out/docs/index.html").is_file()
    assert "in the database" in capsys.readouterr().out


def test_a_failing_table_exits_1_naming_the_table_and_column(db, tmp_path: Path, runner_files, capsys) -> None:  # type: ignore[no-untyped-def]
    config = project(tmp_path, db["url"], table="customers_bad")
    assert cli.main(["--config", str(config), "data-validate"]) == 1
    out = outputs(runner_files)
    assert (out["success"], out["failed"]) == ("false", "2")
    captured = capsys.readouterr()
    errors = [ln for ln in captured.out.splitlines() if ln.startswith("::error file=")]
    assert len(errors) == 2, captured.out[-3000:]
    between = next(ln for ln in errors if "expect_column_values_to_be_between" in ln)
    assert "file=expectations/small.json,line=" in between
    assert "table customers_bad: expect_column_values_to_be_between on column amount failed" in between
    assert "99.5" in between  # the unexpected value, from the database
    in_set = next(ln for ln in errors if "expect_column_values_to_be_in_set" in ln)
    assert "on column kind" in in_set and "zzz" in in_set
    result = json.loads((tmp_path / "out/result.json").read_text())
    assert result["datasets"][0]["failed"] == 2
    assert "Traceback" not in captured.err


def test_a_query_is_validated_on_the_rows_it_selects(db, tmp_path: Path, runner_files) -> None:  # type: ignore[no-untyped-def]
    # the bad rows are 3 and 6: a query that leaves them out passes; the row count is the query's
    config = project(tmp_path, db["url"], query="SELECT id, amount, kind FROM customers_bad WHERE id > 6;")
    assert cli.main(["--config", str(config), "data-validate"]) == 0
    result = json.loads((tmp_path / "out/result.json").read_text())
    assert result["datasets"][0]["rows"] == 34 and result["datasets"][0]["path"].endswith(
        "query 'SELECT id, amount, kind FROM customers_bad WHERE id > 6'")


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_refused_login_and_a_server_down_exit_3_in_one_line(db, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    config = project(tmp_path, db["url"], table="customers")
    wrong = "not-the-password-" + "x7q"
    monkeypatch.setenv("PGPASSWORD", wrong)
    assert cli.main(["--config", str(config), "data-validate"]) == 3
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert f"PostgreSQL at 127.0.0.1:{db['pg'].port} (database {db['name']})" in line
    assert "password authentication failed" in line
    assert wrong not in captured.out + captured.err and db["pg"].password not in captured.out + captured.err
    # nothing listens there
    port = free_port()
    config = project(tmp_path, f"postgresql://leanops@127.0.0.1:{port}/{db['name']}", table="customers")
    assert cli.main(["--config", str(config), "data-validate"]) == 3
    line = one_line(capsys.readouterr().err)
    assert f"PostgreSQL at 127.0.0.1:{port}" in line and re.search(r"refused|could not connect", line), line
    assert not (tmp_path / "out/result.json").exists()


@pytest.mark.parametrize(("url_of", "keys", "expected"), [
    (lambda d: d["url"].replace("leanops@", "leanops:hunter2@"), {"table": "customers"},
     "a password in the database URL"),
    (lambda d: d["url"], {"table": "customers", "query": "SELECT 1"}, "set exactly one of data-validate.table"),
    (lambda d: d["url"], {}, "got neither"),
    (lambda d: d["url"], {"query": "DELETE FROM customers"}, "expected one SELECT"),
    (lambda d: d["url"], {"table": "no_such_table"}, "table no_such_table: the table does not exist"),
    (lambda d: d["url"], {"query": "SELECT id, kind FROM customers"}, "names column 'amount', which"),
])
def test_bad_configuration_exits_2_in_one_line(db, tmp_path: Path, capsys, url_of, keys, expected) -> None:  # type: ignore[no-untyped-def]
    config = project(tmp_path, url_of(db), **keys)
    assert cli.main(["--config", str(config), "data-validate"]) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert expected in line, line
    assert "hunter2" not in line and "Traceback" not in captured.err
    with db["pg"].connect(db["name"]) as conn:  # the DELETE never ran
        assert conn.execute(b"SELECT count(*) FROM customers").fetchone()[0] == 40


def test_weekly_drift_reads_its_current_window_from_a_query(db, tmp_path: Path, runner_files, api_recorder) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd
    import sqlalchemy as sa

    reference = ROOT / "examples/churn/data/raw/churn.csv"
    frame = pd.read_csv(reference)
    shifted = frame.assign(monthly_charges=frame["monthly_charges"] * 1.8, tenure_months=frame["tenure_months"] + 30)
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    engine = sa.create_engine(db["url"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        frame.assign(week=1).to_sql("scored", conn, index=False)
        shifted.assign(week=2).to_sql("scored", conn, index=False, if_exists="append")
    engine.dispose()
    columns = ", ".join(frame.columns)
    (tmp_path / "leanops.yml").write_text(
        f"version: 1\nweekly-drift:\n  current: {db['url']}\n"
        f"  current-query: SELECT {columns} FROM scored WHERE week = 2\n  threshold: 0.1\n"
        "  ignore-columns: [customer_id]\n")
    assert cli.main(["--config", "leanops.yml", "weekly-drift", "--reference", str(reference)]) == 0
    from_db = outputs(runner_files)
    assert from_db["drift-detected"] == "true", from_db
    summary = runner_files["GITHUB_STEP_SUMMARY"].read_text()
    assert f"postgresql://leanops@127.0.0.1:{db['pg'].port}/{db['name']} query" in summary
    # the same rows from a file give the same verdict and the same share
    runner_files["GITHUB_OUTPUT"].write_text("")
    assert cli.main(["weekly-drift", "--reference", str(reference), "--current", str(tmp_path / "shifted.csv"),
                     "--threshold", "0.1", "--ignore-columns", "customer_id"]) == 0
    from_file = outputs(runner_files)
    assert (from_db["drift-share"], from_db["drift-detected"]) == (from_file["drift-share"], "true")
