"""``GET /metrics`` on SQLite and PostgreSQL: job, stage, claim, queue, HTTP and pool
metrics from real requests, bounded labels, and who may read them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_helpers import ADMIN_TOKEN, create_pipeline, launch, register_runner
from fastapi import FastAPI
from live_rivet import rivet_settings
from prometheus_client.parser import text_string_to_metric_families

from rivet.orchestrator import create_app

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_jobs_stages_claims_queue_and_http_are_measured(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "measured", stages=("build", "test"))
    first = await launch(client, "measured")
    second = await launch(client, "measured")
    text = await scrape(client)
    assert value(text, "rivet_queue_depth") == 2
    assert value(text, "rivet_queue_oldest_age_seconds") >= 0

    runner = await register_runner(client)
    claimed = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert claimed.json()["job_id"] == first["id"]
    base = f"/api/runner/jobs/{first['id']}"
    for stage, status in (("build", "running"), ("build", "succeeded"), ("test", "running")):
        update = await client.post(
            f"{base}/stages", headers=runner, json={"name": stage, "status": status}
        )
        assert update.status_code == 200
    done = await client.post(f"{base}/complete", headers=runner, json={"status": "failed"})
    assert done.status_code == 200
    # A retried completion changes nothing, and is not counted twice.
    await client.post(f"{base}/complete", headers=runner, json={"status": "failed"})
    assert (await client.post(f"/api/jobs/{second['id']}/cancel")).status_code == 200
    assert (await client.get("/no/such/path/" + first["id"])).status_code == 404

    text = await scrape(client)
    assert value(text, "rivet_jobs_finished_total", pipeline="measured", status="failed") == 1
    assert value(text, "rivet_jobs_finished_total", pipeline="measured", status="cancelled") == 1
    assert (
        value(text, "rivet_job_duration_seconds_count", pipeline="measured", status="failed") == 1
    )
    assert (
        value(
            text,
            "rivet_stage_duration_seconds_count",
            pipeline="measured",
            stage="build",
            status="succeeded",
        )
        == 1
    )
    # "test" was running when the job failed: it ends failed with the job.
    assert (
        value(
            text,
            "rivet_stage_duration_seconds_count",
            pipeline="measured",
            stage="test",
            status="failed",
        )
        == 1
    )
    assert value(text, "rivet_job_claim_latency_seconds_count") == 1
    assert value(text, "rivet_queue_depth") == 0
    assert value(text, "rivet_queue_oldest_age_seconds") == 0
    assert value(text, "rivet_sse_streams_active") == 0
    route = "/api/runner/jobs/{job_id}/stages"
    assert value(text, "rivet_http_requests_total", method="POST", route=route, status="200") == 3
    assert (
        value(text, "rivet_http_requests_total", method="other", route="<unmatched>", status="404")
        == 1
    )
    assert value(text, "rivet_db_pool_connections", state="in_use") >= 0
    assert value(text, "rivet_db_pool_connections", state="overflow") >= 0
    assert "_created" not in text
    # Bounded labels: no job id (raw path) ever becomes a label value.
    assert first["id"] not in text and second["id"] not in text


@pytest.fixture
async def guarded(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = rivet_settings(
        tmp_path / "home",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        metrics_token="metrics-token-for-tests",
        metrics_allow="10.1.0.0/16,2001:db8::1",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def get_metrics(app: FastAPI, host: str, token: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
        return await http.get("/metrics", headers=headers)


async def test_metrics_are_open_to_the_allow_list_and_the_token_only(guarded: FastAPI) -> None:
    assert (await get_metrics(guarded, "10.1.2.3")).status_code == 200
    assert (await get_metrics(guarded, "2001:db8::1")).status_code == 200
    assert (await get_metrics(guarded, "::ffff:10.1.2.3")).status_code == 200  # v4-mapped
    refused = await get_metrics(guarded, "127.0.0.1")  # loopback is no longer listed
    assert refused.status_code == 403
    assert "RIVET_METRICS_TOKEN" in refused.json()["error"]["message"]
    assert (await get_metrics(guarded, "10.2.0.1")).status_code == 403
    assert (await get_metrics(guarded, "not-an-address")).status_code == 403
    assert (await get_metrics(guarded, "203.0.113.9", "metrics-token-for-tests")).status_code == 200
    # A wrong token is refused even from an allowed address; so is the admin token.
    assert (await get_metrics(guarded, "10.1.2.3", "wrong-token")).status_code == 401
    assert (await get_metrics(guarded, "203.0.113.9", ADMIN_TOKEN)).status_code == 401


async def test_default_is_loopback_only(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await client.get("/metrics")).status_code == 200  # httpx's ASGI client: 127.0.0.1
    assert (await get_metrics(app, "192.0.2.7")).status_code == 403
    # No token is configured: none is accepted.
    assert (await get_metrics(app, "192.0.2.7", "anything-at-all")).status_code == 401


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/health")
    assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["x-request-id"])
    mine = await client.get("/api/health", headers={"X-Request-ID": "build-42.a_b"})
    assert mine.headers["x-request-id"] == "build-42.a_b"
    hostile = await client.get("/api/health", headers={"X-Request-ID": "x\tinjected=1 " + "y" * 80})
    assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["x-request-id"])
