"""Runner tags are fixed at registration and changed only by an admin, on SQLite and
PostgreSQL: whatever a runner asserts when it claims, it is matched against its stored
tags, so it never receives jobs (nor their secrets) meant for other runners."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_helpers import ADMIN, create_pipeline, launch, register_runner

pytestmark = pytest.mark.anyio

VALUE = "prod-deploy-key-0123456789"


async def claim(
    client: httpx.AsyncClient, runner: dict[str, str], **body: Any
) -> dict[str, Any] | None:
    response = await client.post(
        "/api/runner/claim", headers=runner, json={"wait_seconds": 0, **body}
    )
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def stored(client: httpx.AsyncClient, runner: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/api/runners/{runner['X-Test-Id']}")
    result: dict[str, Any] = response.json()
    return result


async def test_a_runner_claiming_with_other_tags_never_gets_their_jobs_or_secrets(
    client: httpx.AsyncClient,
) -> None:
    granted = await client.put(
        "/api/secrets/PROD_KEY", headers=ADMIN, json={"value": VALUE, "grants": ["deploy"]}
    )
    assert granted.status_code == 201
    await create_pipeline(client, "deploy", tags={"env": "prod"}, admin=True)
    job = await launch(client, "deploy", admin=True)
    intruder = await register_runner(client, "b", tags={"os": "linux"})

    # Hostile: every way of asserting the prod runner's tags at claim time.
    for body in (
        {"tags": {"env": "prod"}},
        {"tags": {"env": "prod", "os": "linux"}},
        {"tags": {"env": "prod"}, "plugins": ["git"]},
        {"tags": {}},
        {},
    ):
        assert await claim(client, intruder, **body) is None, body
    view = await stored(client, intruder)
    assert view["tags"] == {"os": "linux"}  # the claims changed nothing
    assert (await client.get(f"/api/jobs/{job['id']}")).json()["status"] == "queued"

    prod = await register_runner(client, "a", tags={"env": "prod"})
    assignment = await claim(client, prod)
    assert assignment is not None and assignment["job_id"] == job["id"]
    assert assignment["secrets"] == {"PROD_KEY": VALUE}


async def test_claimed_plugins_can_narrow_but_never_widen(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "needs-git", plugins=("git",))
    job = await launch(client, "needs-git")
    without = await register_runner(client, "no-git")
    assert await claim(client, without, plugins=["git"]) is None  # not recorded: not offered
    with_git = await register_runner(client, "git", plugins=["git"])
    assert await claim(client, with_git, plugins=[]) is None  # its runtime lacks it now
    assignment = await claim(client, with_git)  # plugins omitted: the recorded ones
    assert assignment is not None and assignment["job_id"] == job["id"]


async def test_only_the_admin_changes_a_runners_tags(client: httpx.AsyncClient) -> None:
    await create_pipeline(client, "prod-only", tags={"env": "prod"})
    job = await launch(client, "prod-only")
    runner = await register_runner(client, "b", tags={"os": "linux"})
    url = f"/api/runners/{runner['X-Test-Id'][:8]}"
    body = {"tags": {"env": "prod"}}
    for headers in ({}, {"Authorization": runner["Authorization"]}, {"Authorization": "Bearer x"}):
        refused = await client.patch(url, headers=headers, json=body)
        assert refused.status_code == 401, headers
    assert (await stored(client, runner))["tags"] == {"os": "linux"}
    assert await claim(client, runner) is None

    changed = await client.patch(url, headers=ADMIN, json=body)
    assert changed.status_code == 200, changed.text
    assert changed.json()["tags"] == {"env": "prod"} and changed.json()["plugins"] == []
    assignment = await claim(client, runner)
    assert assignment is not None and assignment["job_id"] == job["id"]

    plugins = await client.patch(url, headers=ADMIN, json={"plugins": ["git", "git"]})
    assert plugins.json()["plugins"] == ["git"] and plugins.json()["tags"] == {"env": "prod"}
    cleared = await client.patch(url, headers=ADMIN, json={"tags": {}})
    assert cleared.json()["tags"] == {} and cleared.json()["plugins"] == ["git"]

    missing = await client.patch("/api/runners/ffffffff", headers=ADMIN, json=body)
    assert missing.status_code == 404
    bad = await client.patch(url, headers=ADMIN, json={"tags": ["env=prod"]})
    assert bad.status_code in (400, 422) and "tags" in bad.text


async def test_a_runner_reads_its_stored_tags(client: httpx.AsyncClient) -> None:
    runner = await register_runner(client, "r", tags={"os": "linux"}, plugins=["git"])
    await client.post(
        "/api/runner/claim", headers=runner, json={"wait_seconds": 0, "tags": {"x": "y"}}
    )
    me = await client.get("/api/runner/self", headers=runner)
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["tags"], me.json()["plugins"]) == (
        runner["X-Test-Id"],
        {"os": "linux"},
        ["git"],
    )
    assert (await client.get("/api/runner/self")).status_code == 401
    admin = await client.get("/api/runner/self", headers=ADMIN)
    assert admin.status_code == 401  # the admin is not a runner
