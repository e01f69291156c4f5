"""The runner side over HTTP: tokens, registration, auth, claims, logs, stages, completion."""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread
import httpx
import pytest
from api_helpers import ADMIN, create_pipeline, launch, log_lines, register_runner

from rivet.orchestrator import create_app
from rivet.settings import RivetSettings, ServerGroup
from rivet.store.testing import empty_tables

pytestmark = pytest.mark.anyio


async def claim(client: httpx.AsyncClient, runner: dict[str, str], wait: float = 0) -> str | None:
    response = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": wait})
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def test_registration_token_lifecycle(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        denied = await client.post("/api/runner-tokens", headers=headers, json={})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert (await client.get("/api/runner-tokens", headers=headers)).status_code == 401
    created = (
        await client.post("/api/runner-tokens", headers=ADMIN, json={"description": "ci"})
    ).json()
    assert created["token"].startswith("rivet_reg_") and len(created["token"]) > 40
    listed = (await client.get("/api/runner-tokens", headers=ADMIN)).json()
    assert [(t["id"], t["token"], t["used"]) for t in listed] == [(created["id"], None, False)]

    request = {"registration_token": created["token"], "name": "r1", "tags": {"os": "linux"}}
    first = await client.post("/api/runners/register", json=request)
    assert first.status_code == 200
    assert first.json()["token"].startswith("rivet_runner_")
    reuse = await client.post("/api/runners/register", json=request)
    assert reuse.status_code == 401 and "already used" in reuse.json()["error"]["message"]
    assert (await client.get("/api/runner-tokens", headers=ADMIN)).json()[0]["used"] is True

    revoked = (await client.post("/api/runner-tokens", headers=ADMIN, json={})).json()
    deleted = await client.delete(f"/api/runner-tokens/{revoked['id'][:6]}", headers=ADMIN)
    assert deleted.status_code == 204
    late = {"registration_token": revoked["token"], "name": "r2"}
    assert (await client.post("/api/runners/register", json=late)).status_code == 401
    assert (
        await client.delete(f"/api/runner-tokens/{revoked['id']}", headers=ADMIN)
    ).status_code == 404


async def test_every_runner_endpoint_rejects_missing_or_wrong_tokens(
    client: httpx.AsyncClient,
) -> None:
    await create_pipeline(client, "demo")
    job = await launch(client, "demo")
    calls = [
        ("/api/runner/claim", {"wait_seconds": 0}),
        (f"/api/runner/jobs/{job['id']}/logs", log_lines(1)),
        (f"/api/runner/jobs/{job['id']}/stages", {"name": "hello", "status": "running"}),
        (f"/api/runner/jobs/{job['id']}/heartbeat", None),
        (f"/api/runner/jobs/{job['id']}/complete", {"status": "succeeded"}),
    ]
    for headers in (
        {},
        {"Authorization": "Bearer rivet_runner_nope"},
        {"Authorization": "Basic x"},
    ):
        for url, body in calls:
            response = await client.post(url, headers=headers, json=body)
            assert response.status_code == 401, (url, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
    assert (await client.get(f"/api/jobs/{job['id']}")).json()["status"] == "queued"


async def test_only_the_claiming_runner_may_update_a_job(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "demo")
    job = await launch(client, "demo")
    owner = await register_runner(client, "owner")
    other = await register_runner(client, "other")
    assert await claim(client, owner) == job["id"]
    for url, body in [
        (f"/api/runner/jobs/{job['id']}/logs", log_lines(1)),
        (f"/api/runner/jobs/{job['id']}/stages", {"name": "hello", "status": "running"}),
        (f"/api/runner/jobs/{job['id']}/heartbeat", None),
        (f"/api/runner/jobs/{job['id']}/complete", {"status": "succeeded"}),
    ]:
        response = await client.post(url, headers=other, json=body)
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "forbidden"
    missing = await client.post("/api/runner/jobs/" + "0" * 32 + "/heartbeat", headers=owner)
    assert missing.status_code == 404


async def test_claims_respect_tags_and_plugins(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "linux-git", tags={"os": "linux"}, plugins=("git",))
    await create_pipeline(client, "mac", tags={"os": "mac"})
    await create_pipeline(client, "anywhere")
    linux_job = await launch(client, "linux-git")
    mac_job = await launch(client, "mac")
    any_job = await launch(client, "anywhere")

    plain = await register_runner(client, "plain")
    linux = await register_runner(client, "linux", tags={"os": "linux"}, plugins=["git"])
    assert await claim(client, plain) == any_job["id"]
    assert await claim(client, plain) is None  # the other two need tags it lacks
    assert await claim(client, linux) == linux_job["id"]
    assert await claim(client, linux) is None

    # Claim-time tags are ignored (see test_api_runner_tags.py for the hostile cases).
    override = await client.post(
        "/api/runner/claim", headers=plain, json={"wait_seconds": 0, "tags": {"os": "mac"}}
    )
    assert override.status_code == 204
    runners = {r["name"]: r for r in (await client.get("/api/runners")).json()}
    assert runners["plain"]["tags"] == {}  # and never stored
    assert (await client.get(f"/api/jobs/{mac_job['id']}")).json()["status"] == "queued"
    assert runners["linux"]["plugins"] == ["git"]
    assert runners["linux"]["current_jobs"] == [linux_job["id"]]
    assert runners["plain"]["last_seen"] is not None
    one = (await client.get(f"/api/runners/{runners['linux']['id'][:6]}")).json()
    assert one["name"] == "linux"


async def test_assignment_carries_source_definition_and_inputs(client: httpx.AsyncClient) -> None:
    created = await create_pipeline(
        client, "demo", inputs={"who": {"type": "string", "default": "world"}}
    )
    job = await launch(client, "demo", {"who": "you"})
    runner = await register_runner(client)
    response = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assignment = response.json()
    assert assignment["job_id"] == job["id"]
    assert assignment["source"] == created["source"]
    assert assignment["filename"] == "demo.lua"
    assert assignment["inputs"] == {"who": "you"}
    assert assignment["definition"]["name"] == "demo"
    assert assignment["next_seq"] == 1
    shown = (await client.get(f"/api/jobs/{job['id']}")).json()
    assert shown["status"] == "running" and shown["runner"] == "runner-1"


async def test_logs_are_idempotent_ordered_and_paged(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "demo")
    job = await launch(client, "demo")
    runner = await register_runner(client)
    await claim(client, runner)
    url = f"/api/runner/jobs/{job['id']}/logs"

    late = await client.post(url, headers=runner, json=log_lines(4, 5, 6))
    assert late.json()["stored"] == 3
    page = (await client.get(f"/api/jobs/{job['id']}/logs")).json()
    assert page["lines"] == [] and page["next_after"] == 0  # waits for 1-3, skips nothing
    assert (await client.post(url, headers=runner, json=log_lines(1, 2, 3))).json()["stored"] == 3
    assert (await client.post(url, headers=runner, json=log_lines(1, 2, 3))).json()["stored"] == 0
    assert (await client.post(url, headers=runner, json=log_lines(3, 4, 7))).json()["stored"] == 1

    page = (await client.get(f"/api/jobs/{job['id'][:6]}/logs", params={"limit": 4})).json()
    assert [ln["seq"] for ln in page["lines"]] == [1, 2, 3, 4]
    assert (page["next_after"], page["finished"]) == (4, False)
    assert page["lines"][0]["message"] == "line 1" and page["lines"][0]["stage"] == "hello"
    page = (await client.get(f"/api/jobs/{job['id']}/logs", params={"after": 4})).json()
    assert [ln["seq"] for ln in page["lines"]] == [5, 6, 7] and page["next_after"] == 7
    assert (await client.get(f"/api/jobs/{job['id']}/logs", params={"after": 7})).json()[
        "lines"
    ] == []


async def test_stages_heartbeat_and_idempotent_completion(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "demo", stages=("build", "test", "deploy"))
    job = await launch(client, "demo")
    runner = await register_runner(client)
    await claim(client, runner)
    base = f"/api/runner/jobs/{job['id']}"
    await client.post(f"{base}/stages", headers=runner, json={"name": "build", "status": "running"})
    await client.post(
        f"{base}/stages", headers=runner, json={"name": "build", "status": "succeeded"}
    )
    await client.post(f"{base}/stages", headers=runner, json={"name": "test", "status": "running"})
    unknown = await client.post(
        f"{base}/stages", headers=runner, json={"name": "x", "status": "running"}
    )
    assert unknown.status_code == 404
    beat = await client.post(f"{base}/heartbeat", headers=runner)
    assert beat.json() == {"ok": True, "cancel_requested": False, "stored": None}

    done = {"status": "failed", "outputs": {"answer": 42}, "error": "tests failed"}
    assert (await client.post(f"{base}/complete", headers=runner, json=done)).status_code == 200
    retry = {"status": "succeeded", "outputs": {}}
    assert (await client.post(f"{base}/complete", headers=runner, json=retry)).status_code == 200
    final = (await client.get(f"/api/jobs/{job['id']}")).json()
    assert (final["status"], final["outputs"], final["error"]) == (
        "failed",
        {"answer": 42},
        "tests failed",
    )
    stages = {s["name"]: s for s in final["stages"]}
    assert stages["build"]["status"] == "succeeded" and stages["build"]["duration"] >= 0
    assert stages["test"]["status"] == "failed"
    assert stages["deploy"]["status"] == "skipped"
    assert (await client.get("/api/runners")).json()[0]["current_jobs"] == []
    late = await client.post(
        f"{base}/stages", headers=runner, json={"name": "deploy", "status": "running"}
    )
    assert late.status_code == 200  # acknowledged, changes nothing
    assert (await client.get(f"/api/jobs/{job['id']}")).json()["stages"][2]["status"] == "skipped"


async def test_idle_runner_is_woken_by_a_launch_not_by_polling(
    settings: RivetSettings,
) -> None:
    # With a 30 s poll fallback, a claim answered within seconds can only have been
    # woken by the launch (the latency itself is measured by bench/dispatch.py).
    app = create_app(settings.replace({ServerGroup.poll_interval: 30.0}))
    async with app.router.lifespan_context(app):
        await anyio.to_thread.run_sync(empty_tables, app.state.services.db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as client:
            await create_pipeline(client, "demo")
            runner = await register_runner(client)

            async def waiting_claim() -> tuple[str | None, float]:
                job_id = await claim(client, runner, wait=20)
                return job_id, time.monotonic()

            task = asyncio.create_task(waiting_claim())
            await asyncio.sleep(0.3)  # the claim is now parked waiting
            assert not task.done()
            launched_at = time.monotonic()
            job = await launch(client, "demo")
            job_id, claimed_at = await task
    assert job_id == job["id"]
    assert claimed_at - launched_at < 10


async def test_concurrent_claims_hand_out_each_job_once(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "demo")
    expected = {(await launch(client, "demo"))["id"] for _ in range(60)}
    runners = [await register_runner(client, f"r{i}") for i in range(16)]

    async def drain(runner: dict[str, str]) -> list[str]:
        got = []
        while (job_id := await claim(client, runner)) is not None:
            got.append(job_id)
        return got

    results = await asyncio.gather(*(drain(r) for r in runners))
    claimed = [job_id for got in results for job_id in got]
    assert sorted(claimed) == sorted(expected)
