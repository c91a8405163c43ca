"""A PostgreSQL table or query as a data source (data-validate's ``data``, weekly-drift's ``current``).

    data: postgresql://USER@HOST:PORT/DATABASE     # in leanops.yml, with ``table: NAME`` or ``query: SELECT ...``

The password never sits in the URL (leanops.yml is committed): libpq reads it from the environment
(``PGPASSWORD``, or ``PGPASSFILE``; also ``PGSSLMODE`` and the other ``PG*`` variables), so a job passes it
as a secret in ``env:``. A URL that holds one is refused (exit 2). The driver is psycopg 3 (``postgresql://``,
``postgres://`` and ``postgresql+psycopg://`` are the same; ``postgresql+psycopg2://`` too, with psycopg 3).

Errors: the server unreachable, a refused login, a missing database: exit 3 with one line naming the server
and database (the password is never printed: it is not in the URL). A missing table or a query the database
rejects: exit 2 naming the table or the query's first words.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import BadInput, InfraError

SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
DRIVER = "postgresql+psycopg"
CONNECT_TIMEOUT = 10  # seconds; a server that does not answer is an infrastructure failure, not a hang


def is_sql(value: object) -> bool:
    """Whether a ``data`` entry is a database URL rather than a path or glob."""
    return isinstance(value, str) and value.split("://", 1)[0].lower() in SCHEMES and "://" in value


def first_line(exc: BaseException) -> str:
    """A driver error (SQLAlchemy wraps it in ``orig``) as its first line, whitespace collapsed."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return " ".join(text[0].split()) if text else type(orig).__name__


@dataclass(frozen=True)
class SqlSource:
    """One table or one query in one PostgreSQL database."""

    url: str  # as written, without a password
    table: str = ""
    query: str = ""

    @classmethod
    def parse(cls, url: str, *, table: object = "", query: object = "", where: str = "leanops.yml",
              keys: tuple[str, str] = ("table", "query")) -> SqlSource:
        """A URL from ``where`` with its table or query (the section's ``keys``); BadInput when malformed."""
        parts = urllib.parse.urlsplit(url)
        if parts.password is not None:
            raise BadInput(f"{url.split('@')[-1]}: a password in the database URL (committed with the file); "
                           "expected postgresql://USER@HOST:PORT/DATABASE with the password in PGPASSWORD",
                           file=where)
        if not parts.hostname or not parts.path.strip("/"):
            raise BadInput(f"{url!r}: expected postgresql://USER@HOST:PORT/DATABASE", file=where)
        table_s = str(table or "").strip()
        query_s = str(query or "").strip().rstrip(";").strip()
        if bool(table_s) == bool(query_s):
            raise BadInput(f"a database as data ({cls(url).display()}): set exactly one of {keys[0]} (a table, "
                           f"optionally schema.table) and {keys[1]} (a SELECT); got "
                           f"{'both' if table_s else 'neither'}", file=where)
        if query_s and query_s.split(None, 1)[0].lower() not in ("select", "with"):
            raise BadInput(f"{keys[1]}: expected one SELECT (or WITH ... SELECT) statement, got "
                           f"{query_s.split(None, 1)[0]!r}", file=where)
        return cls(url=url, table=table_s, query=query_s)

    # ------------------------------------------------------------------ naming

    @property
    def server(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 5432}"

    @property
    def database(self) -> str:
        return urllib.parse.urlsplit(self.url).path.strip("/")

    @property
    def what(self) -> str:
        if self.table:
            return f"table {self.table}"
        head = " ".join(self.query.split())
        return f"query {head[:60]!r}" + ("..." if len(head) > 60 else "")

    def display(self) -> str:
        """``postgresql://USER@HOST:PORT/DATABASE table NAME`` (what reports and annotations name)."""
        parts = urllib.parse.urlsplit(self.url)
        user = f"{parts.username}@" if parts.username else ""
        base = f"postgresql://{user}{self.server}/{self.database}"
        return f"{base} {self.what}" if (self.table or self.query) else base

    def sqlalchemy_url(self) -> str:
        """The URL for SQLAlchemy (and GX's SQL datasource): psycopg 3, a connect timeout."""
        scheme, rest = self.url.split("://", 1)
        query = urllib.parse.urlsplit(self.url).query
        extra = "" if "connect_timeout" in query else ("&" if query else "?") + f"connect_timeout={CONNECT_TIMEOUT}"
        return f"{DRIVER}://{rest}{extra}"

    def selectable(self) -> str:
        """SQL that yields the rows: the quoted table or the query as a subquery."""
        if self.query:
            return f"({self.query}) AS leanops_source"
        return ".".join('"' + p.replace('"', '""') + '"' for p in self.table.split(".", 1))

    # ------------------------------------------------------------------ access

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A SQLAlchemy connection; InfraError in one line when the server or the login fails."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.sqlalchemy_url(), poolclass=sa.pool.NullPool)
        try:
            try:
                conn = engine.connect()
            except sa.exc.SQLAlchemyError as exc:
                raise InfraError(f"PostgreSQL at {self.server} (database {self.database}): {first_line(exc)}") \
                    from None
            with conn:
                yield conn
        finally:
            engine.dispose()

    def _execute(self, conn: Any, sql: str) -> Any:
        import sqlalchemy as sa

        try:
            return conn.execute(sa.text(sql))
        except sa.exc.OperationalError as exc:
            raise InfraError(f"PostgreSQL at {self.server} (database {self.database}): {first_line(exc)}") \
                from None
        except sa.exc.SQLAlchemyError as exc:
            if self.table and "does not exist" in first_line(exc):
                raise BadInput(f"{self.display()}: the table does not exist in database {self.database}") from None
            raise BadInput(f"{self.display()}: the database refused it: {first_line(exc)}") from None

    # The SQL below is built from leanops.yml: the table name quoted as an identifier, or the adopter's own query
    # (their SQL by design, run with the role PGPASSWORD belongs to: docs ask for one that may only SELECT).

    def describe(self) -> tuple[list[str], int]:
        """The columns and the number of rows (one round trip each, nothing else read)."""
        source = self.selectable()
        with self.connect() as conn:
            columns = [str(c) for c in self._execute(conn, f"SELECT * FROM {source} LIMIT 0").keys()]  # noqa: S608
            rows = int(self._execute(conn, f"SELECT count(*) FROM {source}").scalar_one())  # noqa: S608
        return columns, rows

    def read(self) -> Any:
        """All rows as a pyarrow Table (weekly-drift's current window: what the query selects)."""
        import pyarrow as pa

        with self.connect() as conn:
            result = self._execute(conn, f"SELECT * FROM {self.selectable()}")  # noqa: S608 - see describe
            names = [str(c) for c in result.keys()]
            rows = result.fetchall()
        if not rows:
            raise BadInput(f"{self.display()}: no rows; expected at least one")
        columns = list(zip(*rows, strict=True))
        return pa.table({name: pa.array([_plain(v) for v in col]) for name, col in zip(names, columns, strict=True)})


def _plain(value: Any) -> Any:
    """Decimal (numeric columns) as float: Evidently and pandas compare numbers, not decimals."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value
