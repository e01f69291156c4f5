"""Pipelines over HTTP: create (versions), list, show, versions, invalid definitions."""

from __future__ import annotations

import anyio
import httpx
import pytest
from api_helpers import create_pipeline, invalid_lua, lua_pipeline

pytestmark = pytest.mark.anyio


async def test_health_ready_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/health")).json()["status"] == "ok"
    # Ready once the database answers and (PostgreSQL) the LISTEN connection for
    # wake-ups is up: a thread that may connect after startup on a loaded machine.
    # Until then the answer is a clean 503 not_ready; it must turn 200.
    deadline = anyio.current_time() + 60
    while (ready := await client.get("/api/ready")).status_code == 503:
        assert ready.json()["error"]["code"] == "not_ready", ready.text
        assert anyio.current_time() < deadline, ready.text
        await anyio.sleep(0.1)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    spec = (await client.get("/api/openapi.json")).json()
    for path in ("/api/pipelines", "/api/jobs/{ref}/logs/stream", "/api/runner/claim"):
        assert path in spec["paths"]
    assert (await client.get("/api/docs")).status_code == 200


async def test_create_list_show_versions(client: httpx.AsyncClient) -> None:
    first = await create_pipeline(
        client, "demo", inputs={"who": {"type": "string", "default": "w"}}
    )
    assert (first["name"], first["version"], first["versions"]) == ("demo", 1, 1)
    assert first["definition"]["inputs"][0]["name"] == "who"
    assert "pipeline.define" in first["source"]
    second = await create_pipeline(client, "demo", stages=("a", "b"))
    assert (second["id"], second["version"]) == (first["id"], 2)
    await create_pipeline(client, "other")

    listed = (await client.get("/api/pipelines")).json()["pipelines"]
    assert [(p["name"], p["version"], p["versions"]) for p in listed] == [
        ("demo", 2, 2),
        ("other", 1, 1),
    ]
    assert all(p["source"] is None for p in listed)

    latest = (await client.get("/api/pipelines/demo")).json()
    assert latest["version"] == 2
    assert [s["name"] for s in latest["definition"]["stages"]] == ["a", "b"]
    old = (await client.get("/api/pipelines/demo", params={"version": 1})).json()
    assert old["version"] == 1 and old["source"] == first["source"]
    by_prefix = (await client.get(f"/api/pipelines/{first['id'][:5]}")).json()
    assert by_prefix["name"] == "demo"

    versions = (await client.get("/api/pipelines/demo/versions")).json()
    assert [v["version"] for v in versions] == [1, 2]


async def test_unknown_pipeline_and_version(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "demo")
    for url in ("/api/pipelines/nope", "/api/pipelines/demo?version=7", "/api/pipelines/0000"):
        response = await client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found"


async def test_invalid_definition_is_422_with_every_message(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/pipelines", json={"source": invalid_lua(), "filename": "broken.lua"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_definition"
    details = error["details"]
    assert details["file"] == "broken.lua"
    assert len(details["messages"]) >= 1 and len(details["problems"]) == len(details["messages"])
    paths = {problem["path"] for problem in details["problems"]}
    assert {"name", "stages[1].script"} <= paths
    for message in details["messages"]:
        assert message.startswith("broken.lua:")  # file:line: field: message
        assert message in error["message"]
    assert (await client.get("/api/pipelines")).json()["pipelines"] == []


async def test_malformed_request_is_422_error_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/pipelines", json={"filename": "x.lua"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "source" in response.json()["error"]["message"]


async def test_lua_source_round_trips(client: httpx.AsyncClient) -> None:
    source = lua_pipeline("round", tags={"os": "linux"}, plugins=("git",))
    created = await client.post("/api/pipelines", json={"source": source})
    assert created.status_code == 201
    shown = (await client.get("/api/pipelines/round")).json()
    assert shown["source"] == source
    assert shown["definition"]["tags"] == [{"key": "os", "value": "linux"}]
    assert shown["definition"]["plugins"] == ["git"]


DEMO = """return pipeline.define({ name = "demo",
  inputs = { who = { type = "string", default = "world" } },
  stages = { { name = "hello", script = function() log.info("hi " .. input.get("who")) end } } })
"""


async def test_declarative_demo_pipeline(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/pipelines", json={"source": DEMO, "filename": "demo.lua"})
    assert created.status_code == 201, created.text
    definition = created.json()["definition"]
    assert definition["name"] == "demo"
    assert definition["inputs"][0]["default"] == "world"
    assert [s["name"] for s in definition["stages"]] == ["hello"]
