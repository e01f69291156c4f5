"""Size limits of the API, on SQLite and PostgreSQL: every cap passes at the limit and
refuses limit + 1 with 413/422 naming the field and the limit, and a refused request
writes nothing (the tables are counted afterwards)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from api_helpers import ADMIN, create_pipeline, launch, lua_pipeline, register_runner
from fastapi import FastAPI
from sqlalchemy import func, select

from rivet import limits
from rivet.errors import ConfigError
from rivet.orchestrator import create_app
from rivet.orchestrator.services import Services
from rivet.settings import RivetSettings, ServerGroup, load_settings
from rivet.store import tables
from rivet.store.testing import empty_tables

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC).isoformat()


async def row_counts(app: FastAPI) -> dict[str, int]:
    services: Services = app.state.services

    def count() -> dict[str, int]:
        with services.db.read() as conn:
            return {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in tables.metadata.sorted_tables
            }

    return await anyio.to_thread.run_sync(count)


def refused(response: httpx.Response, status: int, field: str, limit: int) -> dict[str, Any]:
    """The answer is ``status`` with the envelope, naming ``field`` and ``limit``."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert field in error["message"], error["message"]
    assert str(limit) in error["message"], error["message"]
    return error


# --- the body as a whole --------------------------------------------------------------


@pytest.fixture
async def small_client(
    settings: RivetSettings,
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The app with the smallest body limit the setting allows."""
    limit = limits.MAX_SOURCE_BYTES + 64 * 1024
    application = create_app(settings.replace({ServerGroup.max_body_bytes: limit}))
    async with application.router.lifespan_context(application):
        await anyio.to_thread.run_sync(empty_tables, application.state.services.db)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
            yield http, application


def padded_body(size: int) -> bytes:
    """A valid pipeline create of exactly ``size`` bytes (JSON padded with spaces)."""
    body = json.dumps({"source": lua_pipeline("sized")}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def test_body_at_the_limit_passes_and_one_byte_more_is_413(
    small_client: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, app = small_client
    limit = limits.MAX_SOURCE_BYTES + 64 * 1024
    headers = {"Content-Type": "application/json"}
    ok = await client.post("/api/pipelines", content=padded_body(limit), headers=headers)
    assert ok.status_code == 201, ok.text
    before = await row_counts(app)
    too_big = await client.post("/api/pipelines", content=padded_body(limit + 1), headers=headers)
    error = refused(too_big, 413, "RIVET_MAX_BODY_BYTES", limit)
    assert error["code"] == "request_too_large"
    assert error["details"] == {"limit": limit, "setting": "RIVET_MAX_BODY_BYTES"}
    assert await row_counts(app) == before


async def test_a_streamed_body_is_cut_off_at_the_limit(
    small_client: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    """No Content-Length (chunked upload): the bytes are counted as they arrive and the
    request is refused once they pass the limit, not after reading everything."""
    client, app = small_client
    limit = limits.MAX_SOURCE_BYTES + 64 * 1024
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"source": "'
        for _ in range(1000):  # up to 64 MiB if nobody stopped reading
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/api/pipelines", content=chunks(), headers={"Content-Type": "application/json"}
    )
    refused(response, 413, "RIVET_MAX_BODY_BYTES", limit)
    assert sent < 4 * limit, "the server read far past its limit"
    assert (await row_counts(app))["pipelines"] == 0


async def test_a_declared_length_over_the_limit_is_refused_unread(
    small_client: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, _ = small_client
    received: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        received.append(1)
        yield b"{}"

    limit = limits.MAX_SOURCE_BYTES + 64 * 1024
    response = await client.post(
        "/api/jobs",
        content=chunks(),
        headers={"Content-Type": "application/json", "Content-Length": str(50 * 1024 * 1024)},
    )
    refused(response, 413, "RIVET_MAX_BODY_BYTES", limit)


def test_the_body_limit_setting_is_read_from_the_environment(tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path), "RIVET_MAX_BODY_BYTES": str(8 * 1024 * 1024)}
    assert load_settings(env=env).server.max_body_bytes == 8 * 1024 * 1024
    assert ServerGroup.max_body_bytes.default == limits.DEFAULT_MAX_BODY_BYTES
    too_small = {**env, "RIVET_MAX_BODY_BYTES": str(limits.MAX_SOURCE_BYTES)}
    with pytest.raises(ConfigError, match=r"^RIVET_MAX_BODY_BYTES: must be at least"):
        _ = load_settings(env=too_small).server


# --- the fields -----------------------------------------------------------------------


def source_of_size(size: int) -> str:
    """A valid pipeline source of exactly ``size`` UTF-8 bytes (a trailing comment)."""
    base = lua_pipeline("big") + "\n-- "
    return base + "é" * ((size - len(base.encode())) // 2) + "x" * ((size - len(base.encode())) % 2)


async def test_pipeline_source_and_filename_caps(client: httpx.AsyncClient, app: FastAPI) -> None:
    at_limit = source_of_size(limits.MAX_SOURCE_BYTES)
    assert len(at_limit.encode()) == limits.MAX_SOURCE_BYTES
    ok = await client.post(
        "/api/pipelines", json={"source": at_limit, "filename": "f" * limits.MAX_FILENAME}
    )
    assert ok.status_code == 201, ok.text[:300]
    before = await row_counts(app)
    over = await client.post(
        "/api/pipelines", json={"source": source_of_size(limits.MAX_SOURCE_BYTES + 1)}
    )
    refused(over, 422, "source", limits.MAX_SOURCE_BYTES)
    long_name = await client.post(
        "/api/pipelines",
        json={"source": lua_pipeline("big"), "filename": "f" * (limits.MAX_FILENAME + 1)},
    )
    refused(long_name, 422, "filename", limits.MAX_FILENAME)
    assert await row_counts(app) == before


async def test_listing_pipelines_never_reads_their_sources(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """GET /api/pipelines with megabyte sources stays cheap: the query does not select
    the source column (seen in the SQL actually sent)."""
    from sqlalchemy import event

    await create_pipeline(client, "listed")
    statements: list[str] = []
    engine = app.state.services.db.engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        listed = await client.get("/api/pipelines")
        versions = await client.get("/api/pipelines/listed/versions")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert listed.status_code == 200 and listed.json()["pipelines"][0]["source"] is None
    assert versions.status_code == 200 and versions.json()[0]["source"] is None
    selects = [s for s in statements if "pipeline_versions" in s]
    assert selects and not any("source" in s.split("FROM")[0] for s in selects), selects
    shown = await client.get("/api/pipelines/listed")
    assert shown.json()["source"].startswith("return pipeline.define")


def _inputs_pipeline(count: int) -> str:
    return lua_pipeline(
        "wide", inputs={f"i{n}": {"type": "string", "default": ""} for n in range(count)}
    )


async def test_launch_caps_inputs_count_names_and_values(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await create_pipeline(client, "wide", inputs={"s": {"type": "string", "default": ""}})
    value = "v" * limits.MAX_VALUE
    ok = await client.post("/api/jobs", json={"pipeline": "wide", "inputs": {"s": value}})
    assert ok.status_code == 201, ok.text[:300]
    before = await row_counts(app)
    cases: list[tuple[dict[str, Any], str, int]] = [
        ({"s": value + "v"}, "inputs.s", limits.MAX_VALUE),
        ({f"k{n}": 1 for n in range(limits.MAX_INPUTS + 1)}, "inputs", limits.MAX_INPUTS),
        ({"n" * (limits.MAX_NAME + 1): 1}, "inputs", limits.MAX_NAME),
    ]
    for inputs, field, limit in cases:
        response = await client.post("/api/jobs", json={"pipeline": "wide", "inputs": inputs})
        refused(response, 422, field, limit)
    long_ref = await client.post("/api/jobs", json={"pipeline": "p" * (limits.MAX_NAME + 1)})
    refused(long_ref, 422, "pipeline", limits.MAX_NAME)
    assert await row_counts(app) == before


async def test_a_pipeline_may_declare_at_most_max_inputs(client: httpx.AsyncClient) -> None:
    ok = await client.post("/api/pipelines", json={"source": _inputs_pipeline(limits.MAX_INPUTS)})
    assert ok.status_code == 201, ok.text[:300]
    over = await client.post(
        "/api/pipelines", json={"source": _inputs_pipeline(limits.MAX_INPUTS + 1)}
    )
    refused(over, 422, "inputs", limits.MAX_INPUTS)


async def claimed(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    await create_pipeline(client, "work")
    job = await launch(client, "work")
    runner = await register_runner(client)
    response = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert response.status_code == 200 and response.json()["job_id"] == job["id"]
    return runner, job["id"]


def lines(count: int, message: str = "m", first: int = 1) -> dict[str, Any]:
    return {
        "lines": [
            {"seq": s, "ts": NOW, "stage": "hello", "message": message}
            for s in range(first, first + count)
        ]
    }


async def test_log_batch_caps_lines_and_message_size(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    runner, job_id = await claimed(client)
    url = f"/api/runner/jobs/{job_id}/logs"
    ok = await client.post(url, headers=runner, json=lines(limits.MAX_LOG_LINES))
    assert ok.status_code == 200 and ok.json()["stored"] == limits.MAX_LOG_LINES
    big = "x" * limits.MAX_LOG_MESSAGE
    first = limits.MAX_LOG_LINES + 1
    ok = await client.post(url, headers=runner, json=lines(1, big, first=first))
    assert ok.status_code == 200 and ok.json()["stored"] == 1
    before = await row_counts(app)
    batch = lines(limits.MAX_LOG_LINES + 1, first=first + 1)
    refused(await client.post(url, headers=runner, json=batch), 422, "lines", limits.MAX_LOG_LINES)
    over = lines(1, big + "x", first=first + 1)
    error = refused(
        await client.post(url, headers=runner, json=over), 422, "message", limits.MAX_LOG_MESSAGE
    )
    assert "lines.0" in error["message"]
    seq = lines(1, first=limits.MAX_INT32 + 1)
    refused(await client.post(url, headers=runner, json=seq), 422, "seq", limits.MAX_INT32)
    assert await row_counts(app) == before


async def test_completion_caps_outputs(client: httpx.AsyncClient, app: FastAPI) -> None:
    """The caps output.set enforces on the runner (the same numbers, rivet.limits)."""
    runner, job_id = await claimed(client)
    url = f"/api/runner/jobs/{job_id}/complete"
    cases: list[tuple[dict[str, Any], str, int]] = [
        ({f"o{n}": 1 for n in range(limits.MAX_OUTPUTS + 1)}, "outputs", limits.MAX_OUTPUTS),
        ({"k" * (limits.MAX_OUTPUT_NAME + 1): 1}, "outputs", limits.MAX_OUTPUT_NAME),
        ({"v": "x" * limits.MAX_OUTPUTS_BYTES}, "outputs", limits.MAX_OUTPUTS_BYTES),
        ({"n": 2**53 + 1}, "outputs.n", 2**53),
    ]
    for outputs, field, limit in cases:
        response = await client.post(
            url, headers=runner, json={"status": "succeeded", "outputs": outputs}
        )
        refused(response, 422, field, limit)
    long_error = {"status": "failed", "error": "e" * (limits.MAX_ERROR + 1)}
    refused(await client.post(url, headers=runner, json=long_error), 422, "error", limits.MAX_ERROR)
    assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "running"
    at_limit: dict[str, Any] = {f"o{n}": n for n in range(limits.MAX_OUTPUTS - 2)}
    at_limit["k" * limits.MAX_OUTPUT_NAME] = 2**53
    room = limits.MAX_OUTPUTS_BYTES - limits.outputs_size(at_limit) - 1
    at_limit["v"] = "x" * room
    assert limits.outputs_size(at_limit) == limits.MAX_OUTPUTS_BYTES
    done = await client.post(url, headers=runner, json={"status": "succeeded", "outputs": at_limit})
    assert done.status_code == 200, done.text[:300]
    job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert job["status"] == "succeeded" and job["outputs"]["k" * limits.MAX_OUTPUT_NAME] == 2**53


async def test_runner_registration_and_token_caps(client: httpx.AsyncClient, app: FastAPI) -> None:
    ok = await client.post(
        "/api/runner-tokens", headers=ADMIN, json={"description": "d" * limits.MAX_DESCRIPTION}
    )
    assert ok.status_code == 201
    token = ok.json()["token"]
    before = await row_counts(app)
    over = {"description": "d" * (limits.MAX_DESCRIPTION + 1)}
    refused(
        await client.post("/api/runner-tokens", headers=ADMIN, json=over),
        422,
        "description",
        limits.MAX_DESCRIPTION,
    )
    bad: list[tuple[dict[str, Any], str, int]] = [
        ({"name": "n" * (limits.MAX_NAME + 1)}, "name", limits.MAX_NAME),
        (
            {"name": "r", "tags": {f"t{n}": "v" for n in range(limits.MAX_TAGS + 1)}},
            "tags",
            limits.MAX_TAGS,
        ),
        ({"name": "r", "tags": {"t": "v" * (limits.MAX_NAME + 1)}}, "tags", limits.MAX_NAME),
        (
            {"name": "r", "plugins": [f"p{n}" for n in range(limits.MAX_PLUGINS + 1)]},
            "plugins",
            limits.MAX_PLUGINS,
        ),
    ]
    for body, field, limit in bad:
        response = await client.post(
            "/api/runners/register", json={"registration_token": token, **body}
        )
        refused(response, 422, field, limit)
    assert await row_counts(app) == before  # the token was not consumed either
    full = {
        "registration_token": token,
        "name": "n" * limits.MAX_NAME,
        "tags": {f"t{n}": "v" * limits.MAX_NAME for n in range(limits.MAX_TAGS)},
        "plugins": [f"p{n}" for n in range(limits.MAX_PLUGINS)],
    }
    registered = await client.post("/api/runners/register", json=full)
    assert registered.status_code == 200, registered.text[:300]


async def test_secret_value_and_grant_caps(client: httpx.AsyncClient, app: FastAPI) -> None:
    from rivet.domain.secret_rules import MAX_VALUE_BYTES

    grants = [f"p{n}" for n in range(limits.MAX_GRANTS)]
    ok = await client.put(
        "/api/secrets/BIG", headers=ADMIN, json={"value": "s" * MAX_VALUE_BYTES, "grants": grants}
    )
    assert ok.status_code == 201, ok.text[:300]
    before = await row_counts(app)
    too_many = {"value": "abcdefgh", "grants": [*grants, "one-more"]}
    response = await client.put("/api/secrets/OTHER", headers=ADMIN, json=too_many)
    error = refused(response, 422, "body.grants", limits.MAX_GRANTS)
    assert error["code"] == "invalid_request" and error["details"][0]["loc"] == ["body", "grants"]
    long_name = "p" * (limits.MAX_NAME + 1)
    for url, body, loc in (
        (
            "/api/secrets/OTHER",
            {"value": "abcdefgh", "grants": [long_name]},
            ["body", "grants", "0"],
        ),
        (f"/api/secrets/BIG/grants/{long_name}", None, ["path", "pipeline"]),
    ):
        response = await client.put(url, headers=ADMIN, json=body)
        assert response.status_code == 422 and str(limits.MAX_NAME) in response.text, url
        assert response.json()["error"]["details"][0]["loc"] == loc, response.text
    assert await row_counts(app) == before
    granted = await client.put(f"/api/secrets/BIG/grants/{'p' * limits.MAX_NAME}", headers=ADMIN)
    assert granted.status_code == 200, granted.text
    before = await row_counts(app)
    too_big = await client.put(
        "/api/secrets/OTHER", headers=ADMIN, json={"value": "s" * (MAX_VALUE_BYTES + 1)}
    )
    assert too_big.status_code == 422 and "larger than 64 KiB" in too_big.text
    assert too_big.json()["error"]["details"][0]["loc"] == ["body", "value"]
    assert await row_counts(app) == before
