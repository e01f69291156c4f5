"""Leases, attempts and retries over HTTP, on SQLite and PostgreSQL (issue 10).

A claim starts attempt N with a lease the heartbeats renew; a lease that runs out
ends the attempt as *lost* (the reaper, or the runner's own late request), after
which that attempt's late log lines, stage reports, heartbeats and completion are
refused with 409 ``attempt_ended`` and change nothing. The retry policy queues the
job again; every attempt is kept, with its log lines marked by attempt.

Leases here are 1 s (the smallest a definition allows); waits poll the job's state,
never sleep a fixed time past what the lease needs.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest
from api_helpers import log_lines, register_runner
from fastapi import FastAPI

from rivet.orchestrator.services import Reaper, Services

pytestmark = pytest.mark.anyio


def source(name: str, extra: str = "", lease: int = 1) -> str:
    return (
        f'return pipeline.define({{ name = "{name}", lease = {lease}, {extra}\n'
        '  stages = { { name = "hello", script = function() log.info("hi") end } } })'
    )


async def push(client: httpx.AsyncClient, name: str, extra: str = "", lease: int = 1) -> None:
    created = await client.post("/api/pipelines", json={"source": source(name, extra, lease)})
    assert created.status_code == 201, created.text


async def launch(client: httpx.AsyncClient, name: str) -> str:
    launched = await client.post("/api/jobs", json={"pipeline": name})
    assert launched.status_code == 201, launched.text
    job_id: str = launched.json()["id"]
    return job_id


async def claim(client: httpx.AsyncClient, runner: dict[str, str]) -> dict[str, Any]:
    answer = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 5})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}")).json()
    return body


async def until(client: httpx.AsyncClient, job_id: str, status: str, seconds: float = 20) -> Any:
    """The job once its status is ``status`` (the reaper runs every 0.5 s here)."""
    deadline = time.monotonic() + seconds
    while True:
        view = await job(client, job_id)
        if view["status"] == status:
            return view
        assert time.monotonic() < deadline, f"job still {view['status']}: {view}"
        await anyio.sleep(0.1)


def path(job_id: str, what: str, attempt: int) -> str:
    return f"/api/runner/jobs/{job_id}/{what}?attempt={attempt}"


async def test_a_claim_takes_a_lease_that_heartbeats_renew(client: httpx.AsyncClient) -> None:
    await push(client, "leased", lease=3)  # a 3 s gap between heartbeats, even under load
    job_id = await launch(client, "leased")
    runner = await register_runner(client)
    assignment = await claim(client, runner)
    assert (assignment["attempt"], assignment["lease_seconds"]) == (1, 3.0)
    assert assignment["timeout_seconds"] == 6 * 3600.0  # the server's default
    first = (await job(client, job_id))["lease_expires_at"]
    # Heartbeats for longer than the lease keep the job running.
    for _ in range(14):
        beat = await client.post(path(job_id, "heartbeat", 1), headers=runner)
        assert beat.status_code == 200, beat.text
        await anyio.sleep(0.3)
    view = await job(client, job_id)
    assert view["status"] == "running" and view["lease_expires_at"] > first
    assert [a["number"] for a in view["attempts"]] == [1]
    assert view["attempts"][0]["outcome"] is None and view["attempts"][0]["runner"] == "runner-1"


async def test_a_lost_runner_fails_the_job_and_its_late_reports_are_refused(
    client: httpx.AsyncClient,
) -> None:
    await push(client, "fragile")
    job_id = await launch(client, "fragile")
    runner = await register_runner(client, "gone-runner")
    await claim(client, runner)
    stored = await client.post(path(job_id, "logs", 1), headers=runner, json=log_lines(1, 2))
    assert stored.status_code == 200 and stored.json()["stored"] == 2
    view = await until(client, job_id, "failed")
    assert "runner gone-runner was lost: no heartbeat since" in view["error"]
    assert "its lease of 1 s ran out at" in view["error"]
    attempt = view["attempts"][0]
    assert attempt["outcome"] == "lost" and attempt["error"] == view["error"]
    late: list[tuple[str, Any]] = [
        ("logs", log_lines(3)),
        ("stages", {"name": "hello", "status": "succeeded"}),
        ("heartbeat", None),
        ("complete", {"status": "succeeded", "outputs": {"x": 1}}),
    ]
    for what, body in late:
        answer = await client.post(path(job_id, what, 1), headers=runner, json=body)
        assert answer.status_code == 409, (what, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "attempt_ended"
        assert f"attempt 1 of job {job_id} has ended: lost at" in error["message"]
    after = await job(client, job_id)
    assert after["status"] == "failed" and after["outputs"] == {}
    assert after["error"] == view["error"] and after["attempts"] == view["attempts"]
    logs = (await client.get(f"/api/jobs/{job_id}/logs")).json()["lines"]
    assert [(ln["seq"], ln["attempt"]) for ln in logs] == [(1, 1), (2, 1)]


async def test_a_late_request_ends_the_expired_attempt_itself(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Whether or not a reaper got there first, a request after the lease is refused."""
    services: Services = app.state.services
    services.reaper.terms = type(services.reaper.terms)(interval=3600)  # no background sweep
    await anyio.sleep(0.6)  # let a sweep already sleeping pick up the new interval
    await push(client, "late")
    job_id = await launch(client, "late")
    runner = await register_runner(client)
    await claim(client, runner)
    await anyio.sleep(1.3)  # past the 1 s lease
    beat = await client.post(path(job_id, "heartbeat", 1), headers=runner)
    assert beat.status_code == 409 and beat.json()["error"]["code"] == "attempt_ended"
    view = await job(client, job_id)
    assert view["status"] == "failed" and view["attempts"][0]["outcome"] == "lost"


async def test_retry_policy_requeues_lost_and_failed_attempts_up_to_max(
    client: httpx.AsyncClient,
) -> None:
    # 3 s: long enough that attempts 2 and 3 are not lost under load before they end.
    retry = 'retry = { max = 2, on = { "lost", "failed" }, backoff = 0 },'
    await push(client, "retried", retry, lease=3)
    job_id = await launch(client, "retried")
    runner = await register_runner(client, "r1")
    first = await claim(client, runner)
    assert first["attempt"] == 1 and first["next_seq"] == 1
    ok = await client.post(path(job_id, "logs", 1), headers=runner, json=log_lines(1, 2))
    assert ok.status_code == 200
    queued = await until(client, job_id, "queued")  # lost: queued again
    assert queued["attempts"][0]["outcome"] == "lost"
    assert "attempt 1 lost: runner r1 was lost" in queued["error"]
    assert "retry 1 of 2 in" in queued["error"]
    second = await claim(client, runner)
    assert second["attempt"] == 2 and second["next_seq"] == 3
    await client.post(path(job_id, "logs", 2), headers=runner, json=log_lines(3))
    # Attempt 1's late lines are refused even though the same runner runs attempt 2.
    stale = await client.post(path(job_id, "logs", 1), headers=runner, json=log_lines(4))
    assert stale.status_code == 409
    failed = {"status": "failed", "error": "stage 'hello' failed: boom"}
    done = await client.post(path(job_id, "complete", 2), headers=runner, json=failed)
    assert done.status_code == 200
    assert (await job(client, job_id))["status"] == "queued"  # failed: retried too
    third = await claim(client, runner)
    assert third["attempt"] == 3
    done = await client.post(path(job_id, "complete", 3), headers=runner, json=failed)
    again = await client.post(path(job_id, "complete", 3), headers=runner, json=failed)
    assert done.status_code == again.status_code == 200  # a resent completion is harmless
    view = await job(client, job_id)
    assert view["status"] == "failed" and view["error"] == "stage 'hello' failed: boom"
    outcomes = [(a["number"], a["outcome"], a["runner"]) for a in view["attempts"]]
    assert outcomes == [(1, "lost", "r1"), (2, "failed", "r1"), (3, "failed", "r1")]
    logs = (await client.get(f"/api/jobs/{job_id}/logs")).json()["lines"]
    assert [(ln["seq"], ln["attempt"]) for ln in logs] == [(1, 1), (2, 1), (3, 2)]
    only = (await client.get(f"/api/jobs/{job_id}/logs?attempt=2")).json()["lines"]
    assert [ln["seq"] for ln in only] == [3]


async def test_backoff_keeps_a_retried_job_from_being_claimed_early(
    client: httpx.AsyncClient,
) -> None:
    await push(client, "patient", 'retry = { max = 1, on = { "failed" }, backoff = 30 },', lease=30)
    job_id = await launch(client, "patient")
    runner = await register_runner(client)
    await claim(client, runner)
    failed = {"status": "failed", "error": "boom"}
    assert (await client.post(path(job_id, "complete", 1), headers=runner, json=failed)).is_success
    view = await job(client, job_id)
    assert view["status"] == "queued" and view["not_before"] is not None
    nothing = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert nothing.status_code == 204  # 30 s ± 25 % away


async def test_cancel_of_a_job_whose_runner_is_gone_ends_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    await push(client, "orphan", 'retry = { max = 3, on = { "lost" }, backoff = 0 },')
    runner = await register_runner(client)
    # Lease still running: cancel is requested; the reaper ends it once the lease runs out,
    # as cancelled (never retried).
    waiting = await launch(client, "orphan")
    await claim(client, runner)
    requested = (await client.post(f"/api/jobs/{waiting}/cancel")).json()
    assert requested["status"] == "running" and requested["cancel_requested"]
    assert requested["lease_expires_at"] is not None
    ended = await until(client, waiting, "cancelled")
    assert "cancelled; runner runner-1 was lost" in ended["error"]
    assert [a["outcome"] for a in ended["attempts"]] == ["lost"]
    # Lease already run out (no reaper passed yet): the cancel ends it at once.
    services.reaper.terms = type(services.reaper.terms)(interval=3600)
    await anyio.sleep(0.6)
    gone = await launch(client, "orphan")
    await claim(client, runner)
    await anyio.sleep(1.3)
    at_once = (await client.post(f"/api/jobs/{gone}/cancel")).json()
    assert at_once["status"] == "cancelled" and "was lost" in at_once["error"]


async def test_manual_retry_is_a_new_attempt_of_the_same_job(client: httpx.AsyncClient) -> None:
    await push(client, "again", lease=30)
    job_id = await launch(client, "again")
    runner = await register_runner(client)
    refused = await client.post(f"/api/jobs/{job_id}/retry")
    assert (
        refused.status_code == 409 and "only a finished job" in refused.json()["error"]["message"]
    )
    await claim(client, runner)
    await client.post(path(job_id, "logs", 1), headers=runner, json=log_lines(1))
    ok = {"status": "succeeded", "outputs": {"n": 1}}
    assert (await client.post(path(job_id, "complete", 1), headers=runner, json=ok)).is_success
    retried = await client.post(f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 200
    view = retried.json()
    assert view["id"] == job_id and view["status"] == "queued" and view["outputs"] == {}
    assert [s["status"] for s in view["stages"]] == ["pending"]
    second = await claim(client, runner)
    assert second["job_id"] == job_id and second["attempt"] == 2 and second["next_seq"] == 2
    shown = await job(client, job_id)
    assert [a["outcome"] for a in shown["attempts"]] == ["succeeded", None]


async def test_reapers_running_at_once_end_each_lost_attempt_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Several orchestrators reap the same database: SKIP LOCKED (PostgreSQL) or the
    writer lock (SQLite) hands each expired job to exactly one of them."""
    services: Services = app.state.services
    terms = type(services.reaper.terms)(interval=3600)
    services.reaper.terms = terms
    await anyio.sleep(0.6)
    await push(client, "many", 'retry = { max = 1, on = { "lost" }, backoff = 0 },')
    runner = await register_runner(client)
    ids = [await launch(client, "many") for _ in range(20)]
    for _ in ids:
        await claim(client, runner)
    await anyio.sleep(1.3)
    reapers = [Reaper(services.db, services.queue, terms) for _ in range(4)]
    ended: list[int] = []

    async def sweep(reaper: Reaper) -> None:
        ended.append(await anyio.to_thread.run_sync(reaper.sweep))

    async with anyio.create_task_group() as group:
        for reaper in reapers:
            group.start_soon(sweep, reaper)
    assert sum(ended) == 20, ended
    for job_id in ids:
        view = await job(client, job_id)
        assert view["status"] == "queued"  # retried once, so queued again
        assert [a["outcome"] for a in view["attempts"]] == ["lost"]
