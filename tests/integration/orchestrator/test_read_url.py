"""``server.database_read_url`` (``RIVET_DATABASE_READ_URL``): listings and views read
the read database; writes, claims, authentication, the launch check and live log
streams the writer.

The proof uses two real databases that hold different rows: the "reader" is a second
database (on PostgreSQL a second database of the test cluster, on SQLite a second file)
in which a pipeline named ``only-in-reader`` was created through the API of a server of
its own. A server over writer + reader then lists ``only-in-reader`` — a row that
exists only in the reader — and does not find a pipeline it has just written, while
launching it, registering a runner, claiming the job (all on the writer) and following
its log stream (live streams read the writer) work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from api_helpers import ADMIN_TOKEN, create_pipeline, log_lines, read_sse, register_runner
from fastapi import FastAPI
from live_rivet import rivet_settings

from rivet.orchestrator import create_app
from rivet.settings import RivetSettings
from rivet.store.testing import postgres_test_url, scratch_postgres

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serve(settings: RivetSettings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
            yield http


@pytest.fixture(scope="module")
def reader_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path_factory.mktemp('reader')}/reader.db"
        return
    base = postgres_test_url()
    assert base is not None  # database_url is PostgreSQL, so the variable is set
    with scratch_postgres(base) as url:
        yield url


def settings_for(home: Path, url: str, read_url: str | None = None) -> RivetSettings:
    return rivet_settings(
        home, database_url=url, database_read_url=read_url, admin_token=ADMIN_TOKEN
    )


async def test_reads_go_to_the_read_database_and_the_rest_to_the_writer(
    database_url: str, reader_url: str, tmp_path: Path
) -> None:
    async with serve(settings_for(tmp_path / "r", reader_url)) as reader_only:
        await create_pipeline(reader_only, "only-in-reader")

    async with serve(settings_for(tmp_path / "w", database_url, reader_url)) as client:
        await create_pipeline(client, "written")  # a write: on the writer

        listed = (await client.get("/api/pipelines")).json()["pipelines"]
        assert [p["name"] for p in listed] == ["only-in-reader"]
        missing = await client.get("/api/pipelines/written")
        assert missing.status_code == 404, "the view read the read database"

        # The launch checks its inputs against the writer's version: it must work.
        launched = await client.post("/api/jobs", json={"pipeline": "written", "inputs": {}})
        assert launched.status_code == 201, launched.text
        job_id = launched.json()["id"]
        assert (await client.get("/api/jobs")).json()["jobs"] == []
        assert (await client.get(f"/api/jobs/{job_id}")).status_code == 404

        # A runner registered just now authenticates (on the writer) and claims.
        runner = await register_runner(client)
        assert (await client.get("/api/runners")).json() == []
        claimed = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["job_id"] == job_id
        logs = f"/api/runner/jobs/{job_id}/logs"
        assert (await client.post(logs, headers=runner, json=log_lines(1, 2))).status_code == 200
        done = {"status": "succeeded"}
        completed = await client.post(
            f"/api/runner/jobs/{job_id}/complete", headers=runner, json=done
        )
        assert completed.status_code == 200, completed.text

        # A log page is a view (the read database); a live stream reads the writer, so
        # following a job launched a moment ago works however far a replica lags.
        assert (await client.get(f"/api/jobs/{job_id}/logs")).status_code == 404
        streamed = await client.get(f"/api/jobs/{job_id}/logs/stream")
        assert streamed.status_code == 200, streamed.text
        events = list(read_sse(iter(streamed.text.splitlines())))
        assert [e["id"] for e in events if e["event"] == "message"] == ["1", "2"]
        assert events[-1]["event"] == "end"

    # Without a read URL the same server reads what it wrote.
    async with serve(settings_for(tmp_path / "w", database_url)) as plain:
        assert [p["name"] for p in (await plain.get("/api/pipelines")).json()["pipelines"]] == [
            "written"
        ]
        job = (await plain.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "succeeded"


@pytest.mark.postgres
async def test_an_unreachable_read_database_makes_the_server_not_ready(
    tmp_path: Path,
) -> None:
    base = postgres_test_url()
    if base is None:
        pytest.skip("RIVET_TEST_DATABASE_URL is not set")
    with scratch_postgres(base) as url:
        nowhere = "postgresql+psycopg://postgres@127.0.0.1:1/rivet"
        async with serve(settings_for(tmp_path, url, nowhere)) as client:
            ready = await client.get("/api/ready")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "not_ready"
            assert ready.json()["error"]["message"].startswith("read database unavailable")
            listed = await client.get("/api/jobs")
            assert listed.status_code == 503
            assert listed.json()["error"]["code"] == "storage_unavailable"
            created = await client.post(
                "/api/runner-tokens", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json={}
            )
            assert created.status_code == 201, "writes do not need the read database"
