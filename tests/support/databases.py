"""The ``database_url`` fixture shared by the store and orchestrator tests: every test
using it runs on SQLite and again on PostgreSQL.

PostgreSQL runs when ``RIVET_TEST_DATABASE_URL`` is set (one fresh database per test
module); without it those variants are skipped, except under ``CI=true``, where
``postgres_test_url`` raises so the missing server is an error, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rivet.store.testing import postgres_test_url, scratch_postgres

__all__ = ["database_url"]


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db')}/rivet.db"
        return
    base = postgres_test_url()
    if base is None:
        pytest.skip("RIVET_TEST_DATABASE_URL is not set")
    with scratch_postgres(base) as url:
        yield url
