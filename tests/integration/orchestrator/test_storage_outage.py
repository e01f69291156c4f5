"""A database outage answers 503 (code ``storage_unavailable``, a ``Retry-After``
header, a message naming the kind of database), never 500, and the server recovers
by itself once the database is back.

PostgreSQL: a cluster of the test's own (tests/support/pg_cluster.py) is stopped and
started again; the shared test cluster is never touched. SQLite: the database file is
made impossible to open (its directory replaced by a plain file, which even root
cannot get past) or replaced by bytes that are not a database.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from api_helpers import ADMIN, ADMIN_TOKEN, create_pipeline, register_runner
from fastapi import FastAPI
from live_rivet import rivet_settings
from pg_cluster import own_cluster

from rivet.orchestrator import create_app
from rivet.orchestrator.http_errors import RETRY_AFTER
from rivet.settings import RivetSettings

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serve(settings: RivetSettings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
            yield http, app


async def assert_unavailable(
    client: httpx.AsyncClient, runner: dict[str, str], dialect: str
) -> None:
    requests = [
        client.get("/api/pipelines"),
        client.get("/api/jobs"),
        client.post("/api/jobs", json={"pipeline": "p"}),
        client.get("/api/runners"),
        client.get("/api/secrets", headers=ADMIN),
        client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0}),
    ]
    for request in requests:
        response = await request
        assert response.status_code == 503, (response.request.url, response.text)
        error = response.json()["error"]
        assert error["code"] == "storage_unavailable"
        assert f"the {dialect} database is unavailable" in error["message"]
        assert response.headers["Retry-After"] == str(RETRY_AFTER)
    ready = await client.get("/api/ready")
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"


async def assert_serving(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/pipelines")
    assert response.status_code == 200, response.text
    assert [p["name"] for p in response.json()["pipelines"]] == ["p"]


@pytest.mark.postgres
async def test_postgresql_outage_is_503_and_the_server_recovers(tmp_path: Path) -> None:
    with own_cluster() as cluster:
        settings = rivet_settings(
            tmp_path / "home", database_url=cluster.url, admin_token=ADMIN_TOKEN
        )
        async with serve(settings) as (client, _app):
            await create_pipeline(client, "p")
            runner = await register_runner(client)
            await anyio.to_thread.run_sync(cluster.stop)
            await assert_unavailable(client, runner, "postgresql")
            await anyio.to_thread.run_sync(cluster.start)
            await assert_serving(client)


def _unreachable(db_dir: Path) -> Callable[[], None]:
    """Replace the database's directory by a plain file; returns the undo."""
    moved = db_dir.with_name("moved")
    db_dir.rename(moved)
    db_dir.write_text("not a directory")

    def undo() -> None:
        db_dir.unlink()
        moved.rename(db_dir)

    return undo


def _not_a_database(db_dir: Path) -> Callable[[], None]:
    """Overwrite the database file with bytes SQLite does not recognise."""
    saved = db_dir.with_name("saved")
    shutil.copytree(db_dir, saved)
    for extra in db_dir.glob("rivet.db-*"):
        extra.unlink()
    (db_dir / "rivet.db").write_bytes(b"this is not an SQLite database file " * 200)

    def undo() -> None:
        shutil.rmtree(db_dir)
        saved.rename(db_dir)

    return undo


@pytest.mark.parametrize("breakage", [_unreachable, _not_a_database])
async def test_sqlite_file_that_cannot_be_opened_is_503_and_the_server_recovers(
    tmp_path: Path, breakage: Callable[[Path], Callable[[], None]]
) -> None:
    db_dir = tmp_path / "db"
    settings = rivet_settings(
        tmp_path / "home",
        database_url=f"sqlite:///{db_dir / 'rivet.db'}",
        admin_token=ADMIN_TOKEN,
    )
    async with serve(settings) as (client, app):
        await create_pipeline(client, "p")
        runner = await register_runner(client)
        app.state.services.db.engine.dispose()  # no open connection keeps the old file
        undo = breakage(db_dir)
        await assert_unavailable(client, runner, "sqlite")
        app.state.services.db.engine.dispose()
        undo()
        await assert_serving(client)
