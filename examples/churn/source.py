"""The example's data source: put the rows of a CSV into its PostgreSQL table (created when missing).

    python source.py postgresql://USER@HOST:PORT/DATABASE data/raw/churn.csv          # the table as committed
    python generate_data.py --rows 1500 --shift 1 --seed 9 --first-id 200001 --out /tmp/new.csv
    python source.py postgresql://USER@HOST:PORT/DATABASE /tmp/new.csv                # new customers arrive

The password comes from ``PGPASSWORD`` (libpq). Rows whose customer_id is already in the table are left as
they are. The stage ``fetch`` (src/fetch.py) reads the table back into data/raw/churn.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys

COLUMNS = {"customer_id": "integer PRIMARY KEY", "tenure_months": "integer NOT NULL",
           "monthly_charges": "numeric(10, 2) NOT NULL", "total_charges": "numeric(12, 2) NOT NULL",
           "contract": "text NOT NULL", "payment_method": "text NOT NULL", "internet_service": "text NOT NULL",
           "support_calls": "integer NOT NULL", "senior_citizen": "integer NOT NULL", "gender": "text NOT NULL",
           "churned": "integer NOT NULL"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="postgresql://USER@HOST:PORT/DATABASE (password: PGPASSWORD)")
    ap.add_argument("csv", help="rows to add, in generate_data.py's columns")
    ap.add_argument("--table", default="churn", help="the table (default churn)")
    a = ap.parse_args(argv)
    import psycopg
    from psycopg import sql

    with open(a.csv, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header != list(COLUMNS):
            print(f"source: {a.csv}: columns {header}; expected {list(COLUMNS)}", file=sys.stderr)
            return 2
        rows = list(reader)
    name = sql.Identifier(a.table)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    try:
        with psycopg.connect(a.url, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(name, sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in COLUMNS.items())))
            before = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
            with conn.cursor() as cur:
                cur.executemany(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                    name, columns, sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))), rows)
            after = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
    except psycopg.Error as exc:
        print(f"source: table {a.table}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 3
    added = (after[0] if after else 0) - (before[0] if before else 0)
    print(f"source: table {a.table}: {added} rows added, {after[0] if after else 0} in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
