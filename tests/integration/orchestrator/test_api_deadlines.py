"""The server backs timeouts up, on SQLite and PostgreSQL: an attempt past its deadline
plus ``jobs.timeout_grace_seconds`` is ended ``timed_out`` by the reaper even though
its runner keeps heart-beating (it cannot enforce it: gone, wedged, too old); a job no
runner claims within ``jobs.queue_timeout_seconds`` fails naming the tags and plugins
nobody offered. A runner's own ``timed_out`` completion is recorded as such."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from api_helpers import ADMIN_TOKEN, register_runner
from fastapi import FastAPI

from rivet.orchestrator import create_app
from rivet.orchestrator.services import Services
from rivet.settings import CoreGroup, JobsGroup, RivetSettings, ServerGroup, load_settings
from rivet.store.testing import empty_tables

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> RivetSettings:
    flags: dict[Any, object] = {
        CoreGroup.home: tmp_path / "home",
        ServerGroup.database_url: database_url,
        ServerGroup.admin_token: ADMIN_TOKEN,
        ServerGroup.poll_interval: 0.3,
        JobsGroup.timeout_grace_seconds: 0.5,
        JobsGroup.queue_timeout_seconds: 1.0,
    }
    return load_settings(flags, env={})


@pytest.fixture
async def client(settings: RivetSettings) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)
    async with application.router.lifespan_context(application):
        services: Services = application.state.services
        await anyio.to_thread.run_sync(empty_tables, services.db)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
            yield http


async def push(client: httpx.AsyncClient, name: str, extra: str) -> str:
    source = (
        f'return pipeline.define({{ name = "{name}", {extra}\n'
        '  stages = { { name = "s", script = function() end } } })'
    )
    assert (await client.post("/api/pipelines", json={"source": source})).status_code == 201
    launched = await client.post("/api/jobs", json={"pipeline": name})
    job_id: str = launched.json()["id"]
    return job_id


async def until(client: httpx.AsyncClient, job_id: str, status: str) -> Any:
    deadline = time.monotonic() + 20
    while True:
        view = (await client.get(f"/api/jobs/{job_id}")).json()
        if view["status"] == status:
            return view
        assert time.monotonic() < deadline, view
        await anyio.sleep(0.1)


async def test_the_reaper_ends_an_attempt_past_its_deadline(client: httpx.AsyncClient) -> None:
    job_id = await push(client, "slow", "timeout = 1, lease = 30,")
    runner = await register_runner(client, "stubborn")
    claimed = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 5})
    assert claimed.json()["timeout_seconds"] == 1.0

    async def beat() -> None:  # a runner alive but not ending the job
        while True:
            await client.post(f"/api/runner/jobs/{job_id}/heartbeat?attempt=1", headers=runner)
            await anyio.sleep(0.2)

    async with anyio.create_task_group() as group:
        group.start_soon(beat)
        view = await until(client, job_id, "timed_out")
        group.cancel_scope.cancel()
    assert view["error"].startswith("timed out: attempt 1 passed its deadline at ")
    assert "runner stubborn did not end it within 0.5 s" in view["error"]
    assert [a["outcome"] for a in view["attempts"]] == ["timed_out"]
    assert [s["status"] for s in view["stages"]] == ["skipped"]
    late = await client.post(
        f"/api/runner/jobs/{job_id}/complete?attempt=1",
        headers=runner,
        json={"status": "succeeded"},
    )
    assert late.status_code == 409


async def test_a_job_nobody_claims_fails_naming_what_no_runner_offered(
    client: httpx.AsyncClient,
) -> None:
    extra = 'runner = { { key = "os", value = "plan9" } }, plugins = { "git" },'
    job_id = await push(client, "picky", extra)
    view = await until(client, job_id, "failed")
    assert view["error"].startswith("no runner matched tags os=plan9 and plugins git within 1 s")
    assert view["attempts"] == []


async def test_a_runner_reported_timeout_is_kept_as_timed_out(client: httpx.AsyncClient) -> None:
    job_id = await push(client, "told", "")
    runner = await register_runner(client)
    await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 5})
    body = {"status": "timed_out", "error": "timed out: stage 's' ran past its timeout of 2 s"}
    done = await client.post(
        f"/api/runner/jobs/{job_id}/complete?attempt=1", headers=runner, json=body
    )
    assert done.status_code == 200
    view = (await client.get(f"/api/jobs/{job_id}")).json()
    assert view["status"] == "timed_out" and view["error"] == body["error"]
    listed = (await client.get("/api/jobs", params={"status": "timed_out"})).json()
    assert [j["id"] for j in listed["jobs"]] == [job_id]
