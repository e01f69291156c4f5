"""The app under test, on SQLite and (with ``RIVET_TEST_DATABASE_URL``) PostgreSQL.

Each module gets a fresh database (PostgreSQL: ``CREATE DATABASE rivet_t_<random>``);
each test gets a freshly started app over it with every table emptied. Requests go
through httpx's ASGI transport, in-process; streaming tests use a real uvicorn.
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

from rivet.orchestrator import create_app
from rivet.orchestrator.services import Services
from rivet.settings import RivetSettings
from rivet.store.testing import empty_tables

# Test modules import their plain helper module by name; that must also work under
# pytest's importlib import mode, which puts no test directory on sys.path.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> RivetSettings:
    from api_helpers import ADMIN_TOKEN

    return rivet_settings(
        tmp_path / "home", database_url=database_url, admin_token=ADMIN_TOKEN, poll_interval=0.5
    )


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
