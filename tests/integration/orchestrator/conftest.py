"""The app under test, on SQLite and (with ``RIVET_TEST_DATABASE_URL``) PostgreSQL.

Each module gets a fresh database (PostgreSQL: ``CREATE DATABASE rivet_t_<random>``);
each test gets a freshly started app over it with every table emptied. Requests go
through httpx's ASGI transport, in-process; streaming tests use a real uvicorn. With
``RIVET_TEST_THROUGH_PGBOUNCER=1`` the PostgreSQL variant goes through pgbouncer in
transaction mode (scripts/dev.sh test runs the API modules once that way).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from live_rivet import rivet_settings
from pgbouncer import PgBouncer, pgbouncer_in_front
from pgbouncer import through as through_pgbouncer

from rivet.orchestrator import create_app
from rivet.orchestrator.services import Services
from rivet.settings import RivetSettings
from rivet.store.testing import empty_tables, postgres_test_url

# Test modules import their plain helper module by name; that must also work under
# pytest's importlib import mode, which puts no test directory on sys.path.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pgbouncer_front() -> Iterator[PgBouncer | None]:
    """With ``RIVET_TEST_THROUGH_PGBOUNCER=1``: a pgbouncer in transaction mode in front
    of the PostgreSQL test server (tests/support/pgbouncer.py); otherwise None."""
    if not through_pgbouncer():
        yield None
        return
    base = postgres_test_url()
    if base is None:
        pytest.fail("RIVET_TEST_THROUGH_PGBOUNCER=1 needs RIVET_TEST_DATABASE_URL")
    with pgbouncer_in_front(base) as bouncer:
        yield bouncer
        # The tests' connections really went through it.
        assert "login attempt: db=rivet_t_" in bouncer.log(), bouncer.log()[-2000:]


@pytest.fixture
def settings(database_url: str, tmp_path: Path, pgbouncer_front: PgBouncer | None) -> RivetSettings:
    """The app's settings. Through pgbouncer (see ``pgbouncer_front``) the PostgreSQL
    variant is configured as docs/reliability.md says: the database URL through the
    pooler, ``database_pooler = transaction``, the notify URL direct."""
    from api_helpers import ADMIN_TOKEN

    database: dict[str, object] = {"database_url": database_url}
    if pgbouncer_front is not None and database_url.startswith("postgresql"):
        database = {
            "database_url": pgbouncer_front.url_for(database_url),
            "database_pooler": "transaction",
            "database_notify_url": database_url,
        }
    return rivet_settings(tmp_path / "home", admin_token=ADMIN_TOKEN, poll_interval=0.5, **database)


@pytest.fixture
async def app(settings: RivetSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        services: Services = application.state.services
        await anyio.to_thread.run_sync(empty_tables, services.db)
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
        yield http


@pytest.fixture
def live_url(settings: RivetSettings) -> Iterator[str]:
    """Base URL of a real server over the test database (emptied first)."""
    application = create_app(settings)
    from api_helpers import serving

    with serving(application) as url:
        services: Services = application.state.services
        empty_tables(services.db)
        yield url
