"""Bad values are refused at the edge with 422 naming the field, on SQLite and
PostgreSQL, and nothing invalid is written: lone surrogates and NUL in any string
(path, query, headers, JSON bodies), integers beyond the columns, numbers no pipeline
can hold exactly. Rows an older version wrote anyway do not break listings, and a
claimed job holding them is failed with a clear error instead of staying running."""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
import httpx
import pytest
from api_helpers import ADMIN, create_pipeline, launch, lua_pipeline, register_runner
from fastapi import FastAPI
from sqlalchemy import update
from test_api_limits import row_counts

from rivet.orchestrator.services import Services
from rivet.store.tables import jobs, runners

pytestmark = pytest.mark.anyio

SURROGATE = "\\ud800"  # as JSON text: how any client sends a lone surrogate
NUL = "\\u0000"


def raw(body: str) -> dict[str, Any]:
    """Request kwargs sending ``body`` as JSON text, escapes untouched."""
    return {"content": body.encode(), "headers": {"Content-Type": "application/json"}}


def invalid(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request", error
    assert [d["loc"] for d in error["details"]] == [list(loc)], error["details"]
    assert "\\u" in error["message"]  # the character is named by its escape, never echoed


@pytest.mark.parametrize("bad", [SURROGATE, NUL, "a\\udfffb"])
async def test_unstorable_text_in_json_bodies_is_refused_naming_the_field(
    client: httpx.AsyncClient, app: FastAPI, bad: str
) -> None:
    await create_pipeline(client, "p", inputs={"who": {"type": "string", "default": "x"}})
    job = await launch(client, "p")
    runner = await register_runner(client)
    claim = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert claim.json()["job_id"] == job["id"]
    before = await row_counts(app)
    cases = [
        (
            "/api/jobs",
            {},
            f'{{"pipeline": "p", "inputs": {{"who": "{bad}"}}}}',
            ("body", "inputs", "who"),
        ),
        ("/api/jobs", {}, f'{{"pipeline": "p{bad}"}}', ("body", "pipeline")),
        (
            "/api/pipelines",
            {},
            json.dumps({"source": lua_pipeline("q")})[:-1] + f', "filename": "{bad}"}}',
            ("body", "filename"),
        ),
        (
            f"/api/runner/jobs/{job['id']}/logs",
            runner,
            f'{{"lines": [{{"seq": 1, "ts": "2026-01-01T00:00:00Z", "message": "x{bad}"}}]}}',
            ("body", "lines[0]", "message"),
        ),
        (
            f"/api/runner/jobs/{job['id']}/complete",
            runner,
            f'{{"status": "succeeded", "outputs": {{"k{bad}": 1}}}}',
            ("body", "outputs", "k"),
        ),
        (
            f"/api/runner/jobs/{job['id']}/stages",
            runner,
            f'{{"name": "hello", "status": "failed", "error": "{bad}"}}',
            ("body", "error"),
        ),
        ("/api/runner-tokens", ADMIN, f'{{"description": "{bad}"}}', ("body", "description")),
    ]
    for url, headers, body, loc in cases:
        response = await client.post(
            url, **{**raw(body), "headers": {**raw(body)["headers"], **headers}}
        )
        assert response.status_code == 422, (url, response.text)
        details = response.json()["error"]["details"]
        assert len(details) == 1 and ".".join(details[0]["loc"]).startswith(".".join(loc)), (
            url,
            details,
        )
    register = await client.post(
        "/api/runners/register",
        **raw(f'{{"registration_token": "t", "name": "r", "tags": {{"os": "{bad}"}}}}'),
    )
    invalid(register, "body", "tags", "os")
    secret = await client.put(
        "/api/secrets/S",
        headers={**ADMIN, "Content-Type": "application/json"},
        content=f'{{"value": "abcdefgh{bad}"}}'.encode(),
    )
    invalid(secret, "body", "value")
    assert await row_counts(app) == before
    # The job the runner holds is untouched and every listing still answers.
    assert (await client.get("/api/jobs")).status_code == 200
    assert (await client.get(f"/api/jobs/{job['id']}")).json()["status"] == "running"


async def test_nul_in_path_query_and_headers_is_refused_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    await create_pipeline(client, "p")
    job = await launch(client, "p")
    invalid(await client.get("/api/pipelines/p%00x"), "path", "ref")
    invalid(await client.get(f"/api/jobs/{job['id'][:8]}%00"), "path", "ref")
    invalid(await client.get("/api/jobs", params={"pipeline": "p\x00"}), "query", "pipeline")
    invalid(await client.get("/api/secrets/A%00", headers=ADMIN), "path", "name")
    invalid(await client.put("/api/secrets/A/grants/p%00q", headers=ADMIN), "path", "pipeline")
    stream = await client.get(
        f"/api/jobs/{job['id']}/logs/stream", headers={"Last-Event-ID": "1\x00"}
    )
    invalid(stream, "header", "last-event-id")


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/pipelines/p", "version"),
        ("/api/jobs", "offset"),
        ("/api/jobs/{job}/logs", "after"),
        ("/api/jobs/{job}/logs/stream", "after"),
    ],
)
async def test_integers_beyond_the_columns_are_422(
    client: httpx.AsyncClient, url: str, param: str
) -> None:
    await create_pipeline(client, "p")
    job = await launch(client, "p")
    await client.post(f"/api/jobs/{job['id']}/cancel")  # finished: its stream ends
    target = url.format(job=job["id"])
    for value in (2**31, 2**63, 2**64 + 1, 10**40):
        response = await client.get(target, params={param: value})
        assert response.status_code == 422, (target, value, response.text)
        assert f"query.{param}" in response.json()["error"]["message"]
    assert (await client.get(target, params={param: 2**31 - 1})).status_code in (200, 404)
    if not target.endswith("/stream"):
        return
    # A Last-Event-ID that is not a small decimal is ignored, never a crash.
    for header in ("²", "9" * 5000, str(2**64), "-1"):
        stream = await client.get(target, headers={"Last-Event-ID": header.encode()})
        assert stream.status_code == 200 and "event: end" in stream.text, header


async def test_a_launch_version_beyond_32_bits_is_422(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "p")
    for version in (0, 2**31, 2**70):
        response = await client.post("/api/jobs", json={"pipeline": "p", "version": version})
        assert response.status_code == 422 and "version" in response.text, response.text


NUMBER_INPUTS = {"n": {"type": "number", "default": 1}}


@pytest.mark.parametrize(
    "value",
    [1e30, -1e30, 2**53 + 1, -(2**53) - 1, 2**64, 10**30, "1e30", "9007199254740993", "inf", "nan"],
)
async def test_numbers_no_pipeline_can_hold_exactly_are_refused(
    client: httpx.AsyncClient, app: FastAPI, value: Any
) -> None:
    await create_pipeline(client, "num", inputs=NUMBER_INPUTS)
    before = await row_counts(app)
    response = await client.post("/api/jobs", json={"pipeline": "num", "inputs": {"n": value}})
    assert response.status_code == 422, response.text
    assert "inputs" in response.text and "n" in response.text
    assert "2^53" in response.text or "finite" in response.text, response.text
    assert await row_counts(app) == before


@pytest.mark.parametrize("value", [2**53, -(2**53), 0.1, 1e-300, 123456.789, "4.0"])
async def test_numbers_in_range_reach_the_runner_exactly(
    client: httpx.AsyncClient, value: Any
) -> None:
    await create_pipeline(client, "num", inputs=NUMBER_INPUTS)
    job = await launch(client, "num", {"n": value})
    runner = await register_runner(client)
    claim = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert claim.status_code == 200 and claim.json()["job_id"] == job["id"]
    expected = 4 if value == "4.0" else value
    got = claim.json()["inputs"]["n"]
    assert got == expected and type(got) is type(expected), (got, expected)


@pytest.mark.parametrize(
    ("source_tail", "field"),
    [
        (
            'name = "' + "n" * 201 + '", stages = { { name = "s", script = function() end } }',
            "name",
        ),
        (
            'name = "x", description = "a\\0b", stages = { { name = "s", script = function() end } }',
            "description",
        ),
        (
            'name = "x", inputs = { n = { type = "number", default = 1e30 } }, stages = { { name = "s", script = function() end } }',
            "inputs.n.default",
        ),
        (
            'name = "x", inputs = { n = { type = "number", default = math.huge } }, stages = { { name = "s", script = function() end } }',
            "inputs.n.default",
        ),
        (
            'name = "x", inputs = { n = { type = "number", options = { 1, 2^60 } } }, stages = { { name = "s", script = function() end } }',
            "inputs.n.options[2]",
        ),
        (
            'name = "x", stages = { { name = "' + "s" * 201 + '", script = function() end } }',
            "stages[1].name",
        ),
        (
            'name = "x", runner = { { key = "os", value = "l\\0x" } }, stages = { { name = "s", script = function() end } }',
            "runner[1].value",  # a NUL is a control character: the name rule
        ),
    ],
)
async def test_definitions_the_store_cannot_hold_are_refused_like_rivet_check(
    client: httpx.AsyncClient, app: FastAPI, source_tail: str, field: str
) -> None:
    source = "return pipeline.define({ " + source_tail + " })"
    response = await client.post("/api/pipelines", json={"source": source})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_definition"
    assert any(p["path"] == field for p in error["details"]["problems"]), error["details"]
    assert (await row_counts(app))["pipelines"] == 0


# --- rows written by an older version --------------------------------------------------


async def _store(app: FastAPI, table: Any, row_id: str, **values: Any) -> None:
    services: Services = app.state.services

    def write() -> None:
        with services.db.write() as tx:
            tx.conn.execute(update(table).where(table.c.id == row_id).values(**values))

    await anyio.to_thread.run_sync(write)


async def test_legacy_rows_with_bad_values_do_not_break_listings_or_claims(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Inputs an older version stored unchecked: on SQLite a lone surrogate (its JSON
    column kept the escape), on both a number Lua cannot hold. Listings show them
    scrubbed; the claim fails those jobs with an error saying why and hands out the
    next good one; nothing stays running without a runner."""
    services: Services = app.state.services
    await create_pipeline(
        client,
        "p",
        inputs={"who": {"type": "string", "default": "x"}, "n": {"type": "number", "default": 1}},
    )
    broken = [await launch(client, "p") for _ in range(2)]
    good = await launch(client, "p")
    if services.db.dialect == "sqlite":
        await _store(app, jobs, broken[0]["id"], inputs={"who": "bad\ud800", "n": 1})
    else:
        await _store(app, jobs, broken[0]["id"], inputs={"who": "x", "n": 10**30})
    await _store(app, jobs, broken[1]["id"], inputs={"who": "x", "n": 2**64})
    runner = await register_runner(client)
    if services.db.dialect == "sqlite":
        await _store(app, runners, runner["X-Test-Id"], tags={"os": "l\udfffx"})

    listing = await client.get("/api/jobs")
    assert listing.status_code == 200, listing.text
    shown = {j["id"]: j["inputs"] for j in listing.json()["jobs"]}
    if services.db.dialect == "sqlite":
        assert shown[broken[0]["id"]]["who"] == "bad\ufffd"
        assert (await client.get("/api/runners")).json()[0]["tags"] == {"os": "l\ufffdx"}
    assert (await client.get(f"/api/jobs/{broken[0]['id']}")).status_code == 200

    claim = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert claim.status_code == 200, claim.text
    assert claim.json()["job_id"] == good["id"]
    for job in broken:
        failed = (await client.get(f"/api/jobs/{job['id']}")).json()
        assert failed["status"] == "failed", failed
        assert "older Rivet" in failed["error"] and "inputs" in failed["error"], failed["error"]
        assert failed["runner_id"] == runner["X-Test-Id"]
    again = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert again.status_code == 204
