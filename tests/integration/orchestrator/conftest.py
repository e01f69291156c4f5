"""The app under test, on SQLite and (with ``RIVET_TEST_DATABASE_URL``) PostgreSQL.

Each module gets a fresh database (PostgreSQL: ``CREATE DATABASE rivet_t_<random>``);
each test gets a freshly started app over it with every table emptied. Requests go
through httpx's ASGI transport, in-process; streaming tests use a real uvicorn.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
import uvicorn
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


@contextmanager
def serving(application: FastAPI) -> Iterator[str]:
    """Run ``application`` under a real uvicorn on a free loopback port (in a thread)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, ws="none", lifespan="on", log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture
def live_url(settings: RivetSettings) -> Iterator[str]:
    """Base URL of a real server over the test database (emptied first)."""
    application = create_app(settings)
    with serving(application) as url:
        services: Services = application.state.services
        empty_tables(services.db)
        yield url
