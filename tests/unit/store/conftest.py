"""Fixtures: every store/queue test runs on SQLite and again on PostgreSQL.

PostgreSQL runs when ``RIVET_TEST_DATABASE_URL`` is set (one fresh database per test
module); without it those variants are skipped, except under ``CI=true``, where the
missing URL is an error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivet.store import Database, upgrade
from rivet.store.testing import empty_tables

# Test modules import their plain helper module by name; that must also work under
# pytest's importlib import mode, which puts no test directory on sys.path.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def migrated(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    upgrade(db)
    yield db
    db.close()


@pytest.fixture
def db(migrated: Database) -> Database:
    """A migrated database with every table empty."""
    empty_tables(migrated)
    return migrated


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
