"""Jobs over HTTP: launch and input checks, listing, id prefixes, cancel."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_helpers import create_pipeline, launch, register_runner
from fastapi import FastAPI
from sqlalchemy import insert, select

from rivet.orchestrator.services import Services
from rivet.store.portable import utcnow
from rivet.store.tables import jobs

pytestmark = pytest.mark.anyio

INPUTS: dict[str, dict[str, Any]] = {
    "who": {"type": "string", "default": "world"},
    "count": {"type": "number", "options": [1, 2, 4], "default": 1},
    "verbose": {"type": "bool", "default": False},
    "image": {"type": "string", "required": True},
}


async def test_launch_resolves_inputs_and_pins_version(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "demo", inputs=INPUTS)
    job = await launch(client, "demo", {"image": "alpine", "count": "2", "verbose": "yes"})
    assert job["status"] == "queued" and job["version"] == 1 and job["pipeline"] == "demo"
    assert job["inputs"] == {"who": "world", "count": 2, "verbose": True, "image": "alpine"}
    assert [s["status"] for s in job["stages"]] == ["pending"]
    await create_pipeline(client, "demo", inputs=INPUTS, stages=("one", "two"))
    shown = (await client.get(f"/api/jobs/{job['id']}")).json()
    assert shown["version"] == 1 and [s["name"] for s in shown["stages"]] == ["hello"]
    newer = await launch(client, "demo", {"image": "x"})
    assert newer["version"] == 2
    pinned = await client.post(
        "/api/jobs", json={"pipeline": "demo", "version": 1, "inputs": {"image": "x"}}
    )
    assert pinned.json()["version"] == 1


async def test_bad_inputs_name_every_problem_and_create_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create_pipeline(client, "demo", inputs=INPUTS)
    response = await client.post(
        "/api/jobs",
        json={"pipeline": "demo", "inputs": {"count": 3, "verbose": "maybe", "typo": "x"}},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_inputs"
    assert set(error["details"]["problems"]) == {"count", "verbose", "typo", "image"}
    for name in ("count", "verbose", "typo", "image"):
        assert name in error["message"]
    assert (await client.get("/api/jobs")).json()["total"] == 0


async def test_launch_unknown_pipeline_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/jobs", json={"pipeline": "ghost"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_list_filters_and_paging(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "a")
    await create_pipeline(client, "b")
    a_jobs = [(await launch(client, "a"))["id"] for _ in range(5)]
    b_jobs = [(await launch(client, "b"))["id"] for _ in range(3)]
    await client.post(f"/api/jobs/{a_jobs[0]}/cancel")

    page = (await client.get("/api/jobs", params={"limit": 3})).json()
    assert (page["total"], page["limit"], page["offset"]) == (8, 3, 0)
    assert [j["id"] for j in page["jobs"]] == list(reversed(b_jobs))
    tail = (await client.get("/api/jobs", params={"limit": 3, "offset": 6})).json()
    assert [j["id"] for j in tail["jobs"]] == [a_jobs[1], a_jobs[0]]

    only_a = (await client.get("/api/jobs", params={"pipeline": "a"})).json()
    assert only_a["total"] == 5
    cancelled = (await client.get("/api/jobs", params={"status": "cancelled"})).json()
    assert [j["id"] for j in cancelled["jobs"]] == [a_jobs[0]]
    both = await client.get("/api/jobs", params=[("status", "queued"), ("status", "cancelled")])
    assert both.json()["total"] == 8
    queued_a = await client.get("/api/jobs", params={"status": "queued", "pipeline": "a"})
    assert queued_a.json()["total"] == 4

    bad = await client.get("/api/jobs", params={"status": "sleeping"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert (await client.get("/api/jobs", params={"limit": 501})).status_code == 422


async def test_id_prefixes_unique_ambiguous_unknown(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await create_pipeline(client, "demo")
    job = await launch(client, "demo")
    services: Services = app.state.services
    with services.db.write() as tx:  # two more jobs that share a 5-char prefix
        row = tx.conn.execute(select(jobs).where(jobs.c.id == job["id"])).mappings().one()
        for suffix in ("0" * 27, "1" * 27):
            tx.conn.execute(
                insert(jobs).values({**row, "id": "fedcb" + suffix, "created_at": utcnow()})
            )

    shown = await client.get(f"/api/jobs/{job['id'][:8].upper()}")
    assert shown.status_code == 200 and shown.json()["id"] == job["id"]
    assert (await client.get("/api/jobs/fedcb1")).json()["id"] == "fedcb" + "1" * 27

    ambiguous = await client.get("/api/jobs/fedc")
    assert ambiguous.status_code == 409
    error = ambiguous.json()["error"]
    assert error["code"] == "ambiguous_id" and error["details"]["matches"] == 2
    assert "2 jobs" in error["message"]

    for ref in ("abab", "fedcb2", "zzzz", "abc"):
        missing = await client.get(f"/api/jobs/{ref}")
        assert missing.status_code == 404, ref
        assert missing.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/jobs/fedc/logs")).status_code == 409
    assert (await client.post("/api/jobs/fedc/cancel")).status_code == 409


async def test_cancel_queued_running_finished(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "demo", stages=("one", "two"))
    queued = await launch(client, "demo")
    cancelled = (await client.post(f"/api/jobs/{queued['id'][:6]}/cancel")).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    assert [s["status"] for s in cancelled["stages"]] == ["cancelled", "cancelled"]
    again = await client.post(f"/api/jobs/{queued['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    running = await launch(client, "demo")
    runner = await register_runner(client)
    claim = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert claim.json()["job_id"] == running["id"]
    flagged = (await client.post(f"/api/jobs/{running['id']}/cancel")).json()
    assert flagged["status"] == "running" and flagged["cancel_requested"] is True
    beat = await client.post(f"/api/runner/jobs/{running['id']}/heartbeat", headers=runner)
    assert beat.json()["cancel_requested"] is True
    logs = await client.post(
        f"/api/runner/jobs/{running['id']}/logs", headers=runner, json={"lines": []}
    )
    assert logs.json()["cancel_requested"] is True
    done = await client.post(
        f"/api/runner/jobs/{running['id']}/complete",
        headers=runner,
        json={"status": "failed", "error": "stopped by cancel"},
    )
    assert done.status_code == 200
    final = (await client.get(f"/api/jobs/{running['id']}")).json()
    assert final["status"] == "cancelled" and final["error"] == "stopped by cancel"
    finished = await client.post(f"/api/jobs/{running['id']}/cancel")
    assert finished.status_code == 409
