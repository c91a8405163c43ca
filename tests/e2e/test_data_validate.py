"""Under act: a throwaway caller repository calls the reusable data-validate workflow of the kit.

One act run, two caller jobs: good data passes, corrupted data fails the check; both upload the artifact
with the GX Data Docs and the JSON result.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pytest

from leanops.tools.harness import ActRun

from ..conftest import make_repo

pytestmark = pytest.mark.e2e

HEADER = "id,amount,kind\n"
GOOD = HEADER + "".join(f"{i},{10 + i % 7}.5,{'ab'[i % 2]}\n" for i in range(1, 41))
BAD = GOOD.replace("3,13.5,b\n", "3,99.5,b\n").replace("6,16.5,a\n", "6,16.5,zzz\n")
SUITE = {
    "name": "small",
    "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 20}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "kind", "value_set": ["a", "b"]}},
    ],
}

JOB = """\
  {job}:
{needs}    uses: leanops/leanops/.github/workflows/data-validate.yml@main
    permissions:
      contents: read
    with:
      data: data/{job}.csv
      suite: expectations/small.json
      dvc-pull: false
      artifact-name: {artifact}-{job}
"""


def caller(artifact: str) -> str:
    # "bad" waits for "good": act cancels the jobs still running when one fails, and two sibling jobs race
    # (on a busy runner the failing one could end first and take the passing one's outputs with it)
    head = "name: dv-caller\non: [push]\npermissions: {}\njobs:\n"
    needs = {"good": "", "bad": "    needs: [good]\n"}
    return head + "".join(JOB.format(job=job, needs=needs[job], artifact=artifact) for job in ("good", "bad"))


def test_good_data_passes_corrupted_data_fails_and_docs_are_uploaded(harness, tmp_path: Path) -> None:
    artifact = f"dv-{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "caller", {
        ".github/workflows/ci.yml": caller(artifact),
        "data/good.csv": GOOD,
        "data/bad.csv": BAD,
        "expectations/small.json": json.dumps(SUITE, indent=2) + "\n",
    })
    store = harness.store / "artifacts"
    try:
        res = harness.run(ActRun(repo=repo), log=tmp_path / "act.log")
        out = res.stdout + res.stderr
        assert res.returncode != 0, "the job on corrupted data must fail"
        # act stops after a failed job, so no later caller job can print needs.*.outputs: read the outputs
        # the reusable workflow's job set (job "validate", named data-validate, in each caller job)
        for job, want in (("good", {"success": "true", "evaluated": "3", "failed": "0"}),
                          ("bad", {"success": "false", "evaluated": "3", "failed": "2"})):
            got = dict(re.findall(rf"\[{job}/data-validate/data-validate\]\s+⚙\s+::set-output:: ([\w-]+)=(\S*)", out))
            assert want.items() <= got.items(), (job, got)
        # corrupted data: exit 1 with one error line naming the suite
        assert "2 expectation(s) of expectations/small.json failed on 1 of 1 dataset(s)" in out, out[-6000:]
        assert "Traceback" not in out
        # both artifacts hold the Data Docs and the result, whatever the verdict (one directory uploaded: its
        # contents at the artifact's root, as GitHub's upload-artifact does)
        good = store / f"{artifact}-good"
        bad = store / f"{artifact}-bad"
        assert (good / "data-docs" / "index.html").is_file(), sorted(store.glob(f"{artifact}*/**/*"))
        assert list((good / "data-docs" / "validations").rglob("*.html"))
        assert json.loads((good / "result.json").read_text())["success"] is True
        result = json.loads((bad / "result.json").read_text())
        assert result["success"] is False and result["failed"] == 2
        assert (bad / "data-docs" / "index.html").is_file()
    finally:
        for path in store.glob(f"{artifact}-*"):
            shutil.rmtree(path, ignore_errors=True)


SQL_JOB = """\
  {job}:
    uses: leanops/leanops/.github/workflows/data-validate.yml@main
    permissions:
      contents: read
    with:
      working-directory: {job}
      artifact-name: {artifact}-{job}
    secrets:
      PGPASSWORD: ${{{{ secrets.{secret} }}}}
"""


def test_a_postgresql_table_is_validated_in_the_database_under_act(harness, postgres_server, tmp_path: Path) -> None:
    """data: postgresql://... with table: in leanops.yml; the password only as the caller's secret. A failing table
    exits 1 with the table and column in the annotation; a refused login exits 3 in one line, no password shown."""
    db = postgres_server.create_database("dv")
    with postgres_server.connect(db) as conn:
        conn.execute(b"CREATE TABLE customers (id integer, amount double precision, kind text)")
        with conn.cursor().copy(b"COPY customers FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write(BAD.encode())
    url = f"postgresql://{postgres_server.user}@127.0.0.1:{postgres_server.port}/{db}"
    config = (f"version: 1\ndata-validate:\n  data: {url}\n  table: customers\n"
              "  suite: expectations/small.json\n")
    artifact = f"dvsql-{uuid.uuid4().hex[:8]}"
    wrong = "wrong-" + uuid.uuid4().hex[:10]
    store = harness.store / "artifacts"

    def run(job: str, secret: str) -> str:
        # one act run per job: act ends the whole run at the first failed job, whatever `if: always()` says
        workflow = "name: dv-sql\non: [push]\npermissions: {}\njobs:\n" + SQL_JOB.format(
            job=job, artifact=artifact, secret=secret)
        repo = make_repo(tmp_path / job, {".github/workflows/ci.yml": workflow, f"{job}/leanops.yml": config,
                                          f"{job}/expectations/small.json": json.dumps(SUITE, indent=2) + "\n"})
        res = harness.run(ActRun(repo=repo, secrets={"PGPASSWORD": postgres_server.password,
                                                     "WRONG_PASSWORD": wrong}), log=tmp_path / f"{job}.log")
        assert res.returncode != 0, job
        return res.stdout + res.stderr

    try:
        out = run("bad", "PGPASSWORD")
        got = dict(re.findall(r"\[bad/data-validate/data-validate\]\s+⚙\s+::set-output:: ([\w-]+)=(\S*)", out))
        assert {"success": "false", "evaluated": "3", "failed": "2"}.items() <= got.items(), got
        annotation = [ln for ln in out.splitlines() if "expect_column_values_to_be_between on column amount" in ln]
        assert annotation and f"{db} table customers: expect_column_values_to_be_between on column amount failed" \
            in annotation[0] and "file=expectations/small.json" in annotation[0], out[-4000:]
        assert "exitcode '1'" in out
        result = json.loads((store / f"{artifact}-bad" / "result.json").read_text())
        assert result["datasets"][0]["path"].endswith(f"/{db} table customers") and result["failed"] == 2
        # the refused login: exit 3, one line naming the server and database, neither password in the log
        out = run("locked", "WRONG_PASSWORD")
        locked = [ln for ln in out.splitlines() if ln.startswith("[locked/") and "password authentication failed"
                  in ln and "leanops data-validate: error:" in ln]
        assert len(locked) == 1 and f"PostgreSQL at 127.0.0.1:{postgres_server.port} (database {db})" in locked[0], \
            out[-4000:]
        assert "exitcode '3'" in out, out[-4000:]
        assert wrong not in out and postgres_server.password not in out
        assert "Traceback" not in out
    finally:
        for path in store.glob(f"{artifact}-*"):
            shutil.rmtree(path, ignore_errors=True)
