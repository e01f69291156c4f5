"""Helpers for the API tests: real Lua pipeline sources, runner registration, SSE parsing."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

ADMIN_TOKEN = "rivet_admin_test-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _lua(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "{ " + ", ".join(_lua(v) for v in value) + " }"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"[{json.dumps(k)}] = {_lua(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def lua_pipeline(
    name: str,
    *,
    inputs: dict[str, dict[str, Any]] | None = None,
    tags: dict[str, str] | None = None,
    plugins: tuple[str, ...] = (),
    stages: tuple[str, ...] = ("hello",),
) -> str:
    stage_src = ", ".join(
        f'{{ name = {_lua(s)}, script = function() log.info("in {s}") end }}' for s in stages
    )
    body = [f"  name = {_lua(name)},", f"  stages = {{ {stage_src} }},"]
    if inputs:
        body.append(f"  inputs = {_lua(inputs)},")
    if tags:
        body.append(f"  runner = {_lua([{'key': k, 'value': v} for k, v in tags.items()])},")
    if plugins:
        body.append(f"  plugins = {_lua(list(plugins))},")
    return "\n".join(["return pipeline.define({", *body, "})"])


def invalid_lua() -> str:
    """A definition the validator rejects twice: no name, and a stage without a script."""
    return 'return pipeline.define({\n  stages = { { name = "x" } },\n})\n'


async def create_pipeline(
    client: httpx.AsyncClient, name: str, *, admin: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """A new version of ``name``, pushed anonymously or (``admin``) with the admin token."""
    response = await client.post(
        "/api/pipelines",
        json={"source": lua_pipeline(name, **kwargs), "filename": f"{name}.lua"},
        headers=ADMIN if admin else None,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def launch(
    client: httpx.AsyncClient,
    pipeline: str,
    inputs: dict[str, Any] | None = None,
    *,
    admin: bool = False,
) -> dict[str, Any]:
    """Launch anonymously or (``admin``: needed when the pipeline has secrets granted
    to it) with the admin token."""
    response = await client.post(
        "/api/jobs",
        json={"pipeline": pipeline, "inputs": inputs or {}},
        headers=ADMIN if admin else None,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def register_runner(
    client: httpx.AsyncClient,
    name: str = "runner-1",
    tags: dict[str, str] | None = None,
    plugins: list[str] | None = None,
) -> dict[str, str]:
    """Register a runner; the bearer headers to act as it (``id`` under ``X-Test-Id``)."""
    token = await client.post("/api/runner-tokens", headers=ADMIN, json={"description": name})
    assert token.status_code == 201, token.text
    registered = await client.post(
        "/api/runners/register",
        json={
            "registration_token": token.json()["token"],
            "name": name,
            "tags": tags or {},
            "plugins": plugins or [],
        },
    )
    assert registered.status_code == 200, registered.text
    body = registered.json()
    return {"Authorization": f"Bearer {body['token']}", "X-Test-Id": body["runner_id"]}


def log_lines(*seqs: int, stage: str | None = "hello") -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {"lines": [{"seq": s, "ts": now, "stage": stage, "message": f"line {s}"} for s in seqs]}


def read_sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Parse ``text/event-stream`` lines into events ``{"event", "id", "data"}``."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                event.setdefault("event", "message")
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data" and "data" in event:
                event["data"] += "\n" + value
            elif field in ("event", "id", "data"):
                event[field] = value


@contextmanager
def serving(application: FastAPI) -> Iterator[str]:
    """Run ``application`` under a real uvicorn on a free loopback port (in a thread)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application, ws="none", lifespan="on", log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
