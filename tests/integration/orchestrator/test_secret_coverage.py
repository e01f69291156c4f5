"""Which pipeline versions a secret grant covers, on SQLite and PostgreSQL, through the
API: only versions created at or after the grant, by the admin. A version pushed by
anyone before the grant, and launched with ``version``, runs without the secret; the
launch answer warns and the claim says why."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_helpers import ADMIN, create_pipeline, lua_pipeline, register_runner
from fastapi import FastAPI

from rivet.domain.actors import ANONYMOUS
from rivet.lua.definition import load_definition
from rivet.orchestrator.services import Services
from rivet.store import pipelines as pipeline_store

pytestmark = pytest.mark.anyio

VALUE = "coverage-Secret-Value-0042"
OTHER = "coverage-Other-Value-0077"


def predates(version: int, pipeline: str, secret: str, first: int) -> str:
    return (
        f"version {version} of pipeline '{pipeline}' predates its grant of secret "
        f"'{secret}' (the grant covers version {first} and later)"
    )


async def grant(client: httpx.AsyncClient, secret: str, pipeline: str) -> dict[str, Any]:
    response = await client.put(f"/api/secrets/{secret}/grants/{pipeline}", headers=ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def put(client: httpx.AsyncClient, secret: str, value: str, grants: list[str]) -> None:
    body = {"value": value, "grants": grants}
    response = await client.put(f"/api/secrets/{secret}", headers=ADMIN, json=body)
    assert response.status_code in (200, 201), response.text


async def run(
    client: httpx.AsyncClient, pipeline: str, version: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Launch ``version`` and claim the job as a fresh runner: (launch answer, claim)."""
    launched = await client.post(
        "/api/jobs", json={"pipeline": pipeline, "version": version}, headers=ADMIN
    )
    assert launched.status_code == 201, launched.text
    runner = await register_runner(client, f"r-{launched.json()['id'][:6]}")
    claimed = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["job_id"] == launched.json()["id"]
    return launched.json(), claimed.json()


async def test_a_version_pushed_anonymously_before_the_grant_never_gets_the_secret(
    client: httpx.AsyncClient,
) -> None:
    # Hostile: someone publishes "deploy" before the admin sets it up; then the admin
    # grants a secret and pushes a reviewed version 2. Launching --version 1 would run
    # the stranger's code with the secret if grants covered every version.
    stranger = await create_pipeline(client, "deploy")
    assert stranger["version"] == 1 and stranger["created_by"] == "anonymous"
    await put(client, "DEPLOY_KEY", VALUE, ["deploy"])
    reviewed = await create_pipeline(client, "deploy", admin=True)
    assert reviewed["version"] == 2 and reviewed["created_by"] == "admin"

    launched, claimed = await run(client, "deploy", version=1)
    reason = predates(1, "deploy", "DEPLOY_KEY", 2)
    assert claimed["secrets"] == {} and claimed["withheld"] == {"DEPLOY_KEY": reason}
    assert launched["warnings"] == [
        f"secret 'DEPLOY_KEY' will not reach this job: {reason}; the job runs without it"
    ]
    assert VALUE not in repr(claimed) + repr(launched)

    launched, claimed = await run(client, "deploy")  # the latest: version 2
    assert claimed["secrets"] == {"DEPLOY_KEY": VALUE} and claimed["withheld"] == {}
    assert launched["warnings"] == []
    versions = (await client.get("/api/pipelines/deploy/versions")).json()
    assert [(v["version"], v["created_by"]) for v in versions] == [(1, "anonymous"), (2, "admin")]


async def test_a_version_the_admin_pushed_before_the_grant_is_not_covered_either(
    client: httpx.AsyncClient,
) -> None:
    await create_pipeline(client, "release", admin=True)
    await put(client, "NPM_TOKEN", VALUE, [])
    shown = await grant(client, "NPM_TOKEN", "release")
    assert shown["covers"] == {"release": 2}
    _, claimed = await run(client, "release", version=1)
    assert claimed["withheld"] == {"NPM_TOKEN": predates(1, "release", "NPM_TOKEN", 2)}


async def test_revoke_then_regrant_does_not_cover_the_versions_pushed_in_between(
    client: httpx.AsyncClient,
) -> None:
    await put(client, "KEY", VALUE, ["app"])
    await create_pipeline(client, "app", admin=True)  # v1: covered
    _, claimed = await run(client, "app", version=1)
    assert claimed["secrets"] == {"KEY": VALUE}

    revoked = await client.delete("/api/secrets/KEY/grants/app", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["covers"] == {}
    # No grant now: anyone with push on it may (v2: the admin opens it to every user),
    # and the admin too (v3).
    opened = await client.put(
        "/api/pipelines/app/access", headers=ADMIN, json={"subject": "role:user", "level": "push"}
    )
    assert opened.status_code == 200, opened.text
    assert (await create_pipeline(client, "app"))["created_by"] == "anonymous"
    assert (await create_pipeline(client, "app", admin=True))["version"] == 3
    regranted = await grant(client, "KEY", "app")
    assert regranted["covers"] == {"app": 4}

    for version in (1, 2, 3):  # pushed before the new grant: none is covered
        _, claimed = await run(client, "app", version=version)
        assert claimed["secrets"] == {}, version
        assert claimed["withheld"] == {"KEY": predates(version, "app", "KEY", 4)}
    await create_pipeline(client, "app", admin=True)
    _, claimed = await run(client, "app", version=4)
    assert claimed["secrets"] == {"KEY": VALUE}

    again = await grant(client, "KEY", "app")  # idempotent: keeps its first version
    assert again["covers"] == {"app": 4}
    await put(client, "KEY", OTHER, ["app"])  # a new value with the grant listed again
    _, claimed = await run(client, "app", version=4)
    assert claimed["secrets"] == {"KEY": OTHER}


async def test_a_grant_made_before_the_pipeline_exists_covers_the_admins_first_version(
    client: httpx.AsyncClient,
) -> None:
    await put(client, "EARLY", VALUE, ["future"])
    shown = await client.get("/api/secrets/EARLY", headers=ADMIN)
    assert shown.json()["covers"] == {"future": 1}
    squatter = await client.post(
        "/api/pipelines", json={"source": lua_pipeline("future"), "filename": "future.lua"}
    )
    assert squatter.status_code == 403  # granted already: only the admin may push
    assert (await client.get("/api/pipelines")).json()["pipelines"] == []  # nothing stored
    await create_pipeline(client, "future", admin=True)
    launched, claimed = await run(client, "future", version=1)
    assert claimed["secrets"] == {"EARLY": VALUE} and launched["warnings"] == []


async def test_each_grant_covers_from_its_own_time(client: httpx.AsyncClient) -> None:
    await put(client, "FIRST", VALUE, ["multi"])
    await create_pipeline(client, "multi", admin=True)  # v1
    await put(client, "SECOND", OTHER, ["multi"])  # covers v2 and later
    _, claimed = await run(client, "multi", version=1)
    assert claimed["secrets"] == {"FIRST": VALUE}
    assert claimed["withheld"] == {"SECOND": predates(1, "multi", "SECOND", 2)}
    await create_pipeline(client, "multi", admin=True)
    _, claimed = await run(client, "multi", version=2)
    assert claimed["secrets"] == {"FIRST": VALUE, "SECOND": OTHER}


async def test_a_newer_version_not_created_by_the_admin_is_not_covered(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The API refuses such a push (403), so store one directly: what a race, or a
    # future user without permission on the secret, would leave behind.
    await put(client, "GUARDED", VALUE, ["guarded"])
    services: Services = app.state.services
    with services.db.write() as tx:
        definition = load_definition(lua_pipeline("guarded"), "guarded.lua")
        pipeline_store.create_version(
            tx.conn, definition, lua_pipeline("guarded"), "guarded.lua", created_by=ANONYMOUS
        )
    launched, claimed = await run(client, "guarded", version=1)
    reason = (
        "version 1 of pipeline 'guarded' was pushed by a request without the admin token, "
        "and secret 'GUARDED' reaches only versions pushed by an admin or by someone with a "
        "permission on it"
    )
    assert claimed["secrets"] == {} and claimed["withheld"] == {"GUARDED": reason}
    assert reason in launched["warnings"][0]
