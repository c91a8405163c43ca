"""Stage ``fetch``: data/raw/churn.csv from where the rows live, a PostgreSQL table that grows over time.

params.yaml's ``fetch.url`` (``postgresql://USER@HOST:PORT/DATABASE``, no password in it: libpq reads
``PGPASSWORD`` from the environment) and ``fetch.table``. The rows are written ordered by customer_id in
generate_data.py's format, so the same rows give the same bytes and a refresh that finds no new rows is "no new
data". With ``fetch.url`` empty the committed CSV is the source: nothing is fetched and the file stays as it is
(``persist: true`` in dvc.yaml: DVC does not delete it before the stage runs).

Exit 1 with one line when the database cannot be read (down, a refused login, no such table): leanops'
refresh reports it as a source that could not be read, and nothing is trained.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from common import ID, RAW, params, rel, write_atomic

COLUMNS = ("customer_id", "tenure_months", "monthly_charges", "total_charges", "contract", "payment_method",
           "internet_service", "support_calls", "senior_citizen", "gender", "churned")


def redact(url: str) -> str:
    """The URL without a password, should one have been written into it."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def main() -> int:
    p = params("fetch")
    url, table = str(p.get("url") or ""), str(p.get("table") or "churn")
    if not url:
        if not RAW.is_file():
            print(f"fetch: params.yaml fetch.url is empty and {rel(RAW)} is missing; expected a postgresql:// URL "
                  "or the committed CSV", file=sys.stderr)
            return 2
        print(f"fetch: params.yaml fetch.url is empty: {rel(RAW)} as committed", file=sys.stderr)
        return 0
    import psycopg
    from psycopg import sql

    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS), sql.Identifier(*table.split(".")),
        sql.Identifier(ID))
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.Error as exc:
        first = " ".join(str(exc).strip().splitlines()[0].split()) if str(exc).strip() else type(exc).__name__
        print(f"fetch: table {table} at {redact(url)} could not be read: {first}", file=sys.stderr)
        return 1

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(COLUMNS)
            out.writerows([str(v) for v in row] for row in rows)  # numeric(_, 2) keeps its two decimals

    write_atomic(RAW, write)
    print(f"fetch: {rel(RAW)} {len(rows)} rows from table {table}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
