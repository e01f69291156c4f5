"""Helpers for tests and benchmarks: throw-away PostgreSQL databases, emptying tables.

Not used by the server. Tests read the PostgreSQL server from ``RIVET_TEST_DATABASE_URL``
(a database URL whose server lets us ``CREATE DATABASE``) and get a fresh database per
module, so tests never see each other's rows or leftovers from an earlier run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from rivet.store.database import Database
from rivet.store.tables import metadata

__all__ = ["TEST_URL_ENV", "empty_tables", "postgres_test_url", "scratch_postgres"]

TEST_URL_ENV = "RIVET_TEST_DATABASE_URL"


def postgres_test_url() -> str | None:
    """The PostgreSQL server for tests, or None to skip them.

    Raises ``RuntimeError`` under CI (``CI=true``), where skipping would hide that the
    PostgreSQL half of the suite never ran.
    """
    url = os.environ.get(TEST_URL_ENV)
    if url:
        return url
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"CI=true but {TEST_URL_ENV} is not set: PostgreSQL tests cannot run")
    return None


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_postgres(base_url: str) -> Iterator[str]:
    """Create an empty database next to ``base_url``'s, yield its URL, drop it after."""
    base = make_url(base_url)
    name = f"rivet_t_{uuid.uuid4().hex[:12]}"
    admin = _libpq(base_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_tables(db: Database) -> None:
    """Delete every row (children first), keeping the schema."""
    with db.write() as tx:
        for table in reversed(metadata.sorted_tables):
            tx.conn.execute(delete(table))
