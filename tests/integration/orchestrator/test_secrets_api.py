"""``/api/secrets`` on SQLite and PostgreSQL: encrypted at rest, admin only, values never
in answers, rows or logs; grants decide which claimed jobs receive which secrets."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path
from urllib.parse import quote, unquote

import anyio.to_thread
import httpx
import pytest
from api_helpers import ADMIN, create_pipeline, launch, register_runner
from fastapi import FastAPI
from sqlalchemy import select, text

from rivet.errors import ConfigError
from rivet.orchestrator import create_app
from rivet.orchestrator.keyring import generate_key
from rivet.orchestrator.services import Services
from rivet.orchestrator.state import database_url
from rivet.settings import CoreGroup, RivetSettings, ServerGroup
from rivet.store.pipelines import get_version
from rivet.store.sealed_secrets import add_grant
from rivet.store.tables import secret_grants, secrets

pytestmark = pytest.mark.anyio

VALUE = "hunter2-Sup3r/S3cret+Value=="
OTHER = "another-secret-value-0042"


def forms(value: str) -> list[str]:
    """The value and the encodings a careless store or log could hold it in."""
    raw = value.encode()
    return [
        value,
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    ]


def assert_absent(blob: str | bytes, *values: str) -> None:
    for value in values:
        for form in forms(value):
            needle: str | bytes = form.encode() if isinstance(blob, bytes) else form
            assert needle not in blob, f"secret leaked as {form!r}"


async def put(
    client: httpx.AsyncClient, name: str, value: str, grants: list[str] | None = None
) -> httpx.Response:
    body: dict[str, object] = {"value": value}
    if grants is not None:
        body["grants"] = grants
    return await client.put(f"/api/secrets/{name}", headers=ADMIN, json=body)


async def claim(client: httpx.AsyncClient, runner: dict[str, str]) -> dict[str, object]:
    response = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def values_for(services: Services, pipeline: str) -> dict[str, str]:
    """What a job of the latest version of ``pipeline`` would receive."""
    with services.db.read() as conn:
        version = get_version(conn, pipeline)
    return services.secrets.for_job(pipeline, version.pipeline_id, version.version).values


def raw_rows(app: FastAPI) -> str:
    """Every column of every secret row, as the database returns it."""
    services: Services = app.state.services
    with services.db.read() as conn:
        rows = [tuple(r) for r in conn.execute(select(secrets))]
        rows += [tuple(r) for r in conn.execute(select(secret_grants))]
    return repr(rows)


async def test_set_list_show_delete_never_return_the_value(client: httpx.AsyncClient) -> None:
    created = await put(client, "DEPLOY_TOKEN", VALUE, grants=["deploy"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "DEPLOY_TOKEN" and body["grants"] == ["deploy"]
    assert set(body) == {"name", "created_at", "updated_at", "grants", "covers"}
    assert body["covers"] == {"deploy": 1}  # no version yet: from the first one
    updated = await put(client, "DEPLOY_TOKEN", OTHER)
    assert updated.status_code == 200
    assert updated.json()["grants"] == ["deploy"]  # replacing the value keeps grants
    assert updated.json()["created_at"] == body["created_at"]
    assert updated.json()["updated_at"] >= body["updated_at"]

    listed = await client.get("/api/secrets", headers=ADMIN)
    assert [s["name"] for s in listed.json()] == ["DEPLOY_TOKEN"]
    shown = await client.get("/api/secrets/DEPLOY_TOKEN", headers=ADMIN)
    assert shown.json()["grants"] == ["deploy"]
    openapi = await client.get("/api/openapi.json")
    for response in (created, updated, listed, shown, openapi):
        assert_absent(response.text, VALUE, OTHER)

    assert (await client.delete("/api/secrets/DEPLOY_TOKEN", headers=ADMIN)).status_code == 204
    assert (await client.get("/api/secrets", headers=ADMIN)).json() == []
    gone = await client.delete("/api/secrets/DEPLOY_TOKEN", headers=ADMIN)
    assert gone.status_code == 404 and "no secret named 'DEPLOY_TOKEN'" in gone.text


async def test_every_secret_endpoint_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    """Without a token: 403 (no secret permission); a bad or a runner token: 401."""
    assert (await put(client, "TOKEN", VALUE)).status_code == 201
    runner = await register_runner(client)
    calls = [
        ("GET", "/api/secrets", None),
        ("GET", "/api/secrets/TOKEN", None),
        ("PUT", "/api/secrets/TOKEN", {"value": OTHER}),
        ("DELETE", "/api/secrets/TOKEN", None),
        ("PUT", "/api/secrets/TOKEN/grants/p", None),
        ("DELETE", "/api/secrets/TOKEN/grants/p", None),
    ]
    for headers, status in (
        ({}, 403),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": runner["Authorization"]}, 401),
    ):
        for method, url, body in calls:
            response = await client.request(method, url, headers=headers, json=body)
            if (method, url, status) == ("GET", "/api/secrets", 403):
                # the listing shows what the caller may use: nothing
                assert response.status_code == 200 and response.json() == []
                continue
            assert response.status_code == status, (method, url, headers)
            assert_absent(response.text, VALUE, OTHER)
    # nothing changed: the value is still the first one, with no grants
    assert (await client.get("/api/secrets/TOKEN", headers=ADMIN)).json()["grants"] == []


async def test_bad_requests_never_echo_the_value(client: httpx.AsyncClient) -> None:
    """Every invalid field answers 422 ``invalid_request`` naming it, like every other
    invalid field of the API, and the answer holds no part of the value."""
    cases = [
        # a typo: FastAPI's default error would echo the body
        ("TOKEN", {"valu": VALUE}, ["body", "value"]),
        ("TOKEN", {"value": VALUE, "grants": "not-a-list"}, ["body", "grants"]),
        ("TOKEN", {"value": VALUE, "grants": [""]}, ["body", "grants", "0"]),
        ("TOKEN", {"value": VALUE, "grants": ["ok", "team/app"]}, ["body", "grants[1]"]),
        ("bad-name!", {"value": VALUE}, ["path", "name"]),
        ("TOKEN", {"value": "ab "}, ["body", "value"]),  # too short to redact safely
    ]
    for name, body, loc in cases:
        response = await client.put(f"/api/secrets/{name}", headers=ADMIN, json=body)
        assert response.status_code == 422, (name, body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert [d["loc"] for d in error["details"]] == [loc], (name, body, error)
        assert_absent(response.text, VALUE)
    # Text no database can store is refused at the edge (422 naming the field), and
    # the answer still holds no part of the value.
    for bad in (VALUE + "\0", VALUE + "\ud800"):
        response = await client.put(
            "/api/secrets/TOKEN",
            headers={**ADMIN, "Content-Type": "application/json"},
            content=json.dumps({"value": bad}).encode(),  # ASCII JSON: "\ud800" escaped
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["loc"] == ["body", "value"]
        assert_absent(response.text, VALUE)
    short = await client.put("/api/secrets/TOKEN", headers=ADMIN, json={"value": "ab "})
    assert "at least 4 non-blank characters" in short.json()["error"]["message"]
    not_json = await client.put(
        "/api/secrets/TOKEN",
        headers={**ADMIN, "Content-Type": "application/json"},
        content=b'{"value": "' + VALUE.encode() + b'"',
    )
    assert not_json.status_code == 422 and VALUE not in not_json.text
    assert not_json.json()["error"]["details"][0]["loc"] == ["body"]
    assert (await client.get("/api/secrets", headers=ADMIN)).json() == []


@pytest.mark.parametrize(
    "name",
    [
        *[
            "A*",
            "*",
            "FOO%2A",
            "-e",
            "A%3DB",
            "A%20B",
            "%20A",
            "1A",
            "%C3%A9",
            "A%00B",
            "A%0AB",
            "A.B",
        ],
        *["TOKEN%0A", "TOKEN%0D", "TOKEN%00", "TOKEN%0D%0A", "%0ATOKEN"],  # whole names only
    ],
)
async def test_secret_names_follow_the_environment_name_rule(
    client: httpx.AsyncClient, name: str
) -> None:
    """Names become RIVET_SECRET_<NAME> variables under `rivet run`: the API refuses
    every name the environment-name rule refuses, naming it, and stores nothing."""
    response = await client.put(f"/api/secrets/{name}", headers=ADMIN, json={"value": VALUE})
    if "%00" in name:
        # NUL is refused for every field at the edge (422 naming it), before any rule.
        assert response.status_code == 422, (name, response.text)
        assert response.json()["error"]["details"][0]["loc"] == ["path", "name"]
    else:
        assert response.status_code == 422, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and "invalid secret name" in error["message"]
        assert error["details"][0]["loc"] == ["path", "name"]
    assert_absent(response.text, VALUE)
    assert (await client.get("/api/secrets", headers=ADMIN)).json() == []


async def test_values_are_encrypted_at_rest(
    app: FastAPI, client: httpx.AsyncClient, settings: RivetSettings
) -> None:
    assert (await put(client, "TOKEN", VALUE, grants=["p"])).status_code == 201
    rows = raw_rows(app)
    assert "v1." in rows and "TOKEN" in rows
    assert_absent(rows, VALUE)
    services: Services = app.state.services
    if services.db.dialect == "sqlite":
        db_file = Path(database_url(settings).removeprefix("sqlite:///"))
        for path in db_file.parent.glob(db_file.name + "*"):  # rivet.db, -wal, -shm
            assert_absent(path.read_bytes(), VALUE)
    else:
        with services.db.read() as conn:
            dump = conn.execute(text("SELECT s::text FROM secrets s")).scalars().all()
        assert dump and all(VALUE not in row for row in dump)


async def test_claims_carry_only_the_secrets_granted_to_the_jobs_pipeline(
    client: httpx.AsyncClient,
) -> None:
    assert (await put(client, "DEPLOY_KEY", VALUE, grants=["deploy"])).status_code == 201
    assert (await put(client, "SHARED", OTHER, grants=["deploy"])).status_code == 201
    granted = await client.put("/api/secrets/SHARED/grants/tests", headers=ADMIN)
    assert granted.json()["grants"] == ["deploy", "tests"]
    again = await client.put("/api/secrets/SHARED/grants/tests", headers=ADMIN)
    assert again.status_code == 200 and again.json()["grants"] == ["deploy", "tests"]
    # Versions the admin pushes after the grants (test_secret_coverage.py: other ones).
    await create_pipeline(client, "deploy", admin=True)
    await create_pipeline(client, "tests", admin=True)
    runner = await register_runner(client)

    deploy_job = await launch(client, "deploy", admin=True)
    assignment = await claim(client, runner)
    assert assignment["job_id"] == deploy_job["id"]
    assert assignment["secrets"] == {"DEPLOY_KEY": VALUE, "SHARED": OTHER}

    tests_job = await launch(client, "tests", admin=True)
    assignment = await claim(client, runner)
    assert assignment["job_id"] == tests_job["id"]
    assert assignment["secrets"] == {"SHARED": OTHER}  # hostile: DEPLOY_KEY is not granted

    revoked = await client.delete("/api/secrets/SHARED/grants/tests", headers=ADMIN)
    assert revoked.json()["grants"] == ["deploy"]
    assert revoked.json()["covers"] == {"deploy": 1}
    twice = await client.delete("/api/secrets/SHARED/grants/tests", headers=ADMIN)
    assert twice.status_code == 404
    assert "not granted to pipeline 'tests'" in twice.json()["error"]["message"]
    await launch(client, "tests")
    assert (await claim(client, runner))["secrets"] == {}

    # a job's view (what any client sees) never has secrets
    shown = await client.get(f"/api/jobs/{deploy_job['id']}")
    assert_absent(shown.text, VALUE, OTHER)


# Names no pipeline can have (the pipeline-name rule of rivet.limits), URL-encoded.
UNGRANTABLE = {
    "team/app": "contains '/'",
    "team%2Fapp": "contains '/'",
    "%20deploy": "starts or ends with whitespace",
    "deploy%09": "starts or ends with whitespace",
    "..": "is '..'",
    "%2E": "is '.'",
    "de%E2%80%AEploy": "U+202E (RIGHT-TO-LEFT OVERRIDE)",
    "de%E2%81%A6ploy": "U+2066 (LEFT-TO-RIGHT ISOLATE)",
    "de%E2%80%8Bploy": "U+200B (ZERO WIDTH SPACE)",
    "de%E2%80%A8ploy": "U+2028 (LINE SEPARATOR)",
    "de%EF%BB%BFploy": "U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
    "de%1B%5B2Jploy": "U+001B (a control character)",
    "de%C2%9Bploy": "U+009B (a control character)",
    "de%7Fploy": "U+007F (a control character)",
    "de%0Aploy": "U+000A (a control character)",
    "de%09ploy": "U+0009 (a control character)",
    # Whole names: nothing may follow (or precede) a valid name.
    "deploy%0A": "starts or ends with whitespace",
    "deploy%0D": "starts or ends with whitespace",
    "deploy%0D%0A": "starts or ends with whitespace",
    "%0Adeploy": "starts or ends with whitespace",
    "deploy%00": "a NUL character",  # refused at the edge, before the rule
}


@pytest.mark.parametrize("pipeline", list(UNGRANTABLE))
async def test_grants_follow_the_pipeline_name_rule(
    client: httpx.AsyncClient, app: FastAPI, pipeline: str
) -> None:
    """A grant to a name no pipeline can have could never cover a version: refused
    (422 naming the field and the rule) in the path and in a body, nothing stored."""
    assert (await put(client, "TOKEN", VALUE)).status_code == 201
    # '.' and '..' have no URL of their own: clients drop dot segments, so a grant to
    # '..' in the path would be PUT /api/secrets/TOKEN. A newline never matches the
    # route's path pattern (404), and a NUL in
    # the path is refused before any rule (test_values). Only a body can carry those.
    if pipeline not in ("..", "%2E") and "%0A" not in pipeline and "%00" not in pipeline:
        response = await client.put(f"/api/secrets/TOKEN/grants/{pipeline}", headers=ADMIN)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"][0]["loc"] == ["path", "pipeline"]
        assert UNGRANTABLE[pipeline] in error["message"] and "pipeline name" in error["message"]
    name = unquote(pipeline)
    in_body = await put(client, "TOKEN", VALUE, grants=["fine", name])
    assert in_body.status_code == 422, in_body.text
    error = in_body.json()["error"]
    assert error["details"][0]["loc"] == ["body", "grants[1]"]
    assert UNGRANTABLE[pipeline] in error["message"]
    assert_absent(in_body.text, VALUE)
    assert (await client.get("/api/secrets/TOKEN", headers=ADMIN)).json()["grants"] == []


async def test_grants_to_ordinary_names_and_unknown_secrets(client: httpx.AsyncClient) -> None:
    assert (await put(client, "TOKEN", VALUE)).status_code == 201
    names = ["build-and-test", "déploiement", "构建 v2", "a.b", "[bold]x[/bold]".replace("/", "")]
    for name in names:
        granted = await client.put(f"/api/secrets/TOKEN/grants/{quote(name)}", headers=ADMIN)
        assert granted.status_code == 200, (name, granted.text)
    listed = (await client.get("/api/secrets/TOKEN", headers=ADMIN)).json()["grants"]
    assert sorted(listed) == sorted(names)
    missing = await client.put("/api/secrets/NOPE/grants/p", headers=ADMIN)
    assert missing.status_code == 404 and "no secret named 'NOPE'" in missing.text


async def test_grants_stored_before_the_rule_stay_listed_and_revocable(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Grants an older version accepted ('/' and bidi controls in the name) show in
    listings and can still be revoked."""
    assert (await put(client, "TOKEN", VALUE)).status_code == 201
    services: Services = app.state.services
    legacy = ["team/app", "de\u202eploy", "x\u2066y\u2069"]

    def store_legacy() -> None:
        with services.db.write() as tx:
            for pipeline in legacy:
                add_grant(tx.conn, "TOKEN", pipeline)

    await anyio.to_thread.run_sync(store_legacy)
    listed = (await client.get("/api/secrets", headers=ADMIN)).json()[0]["grants"]
    assert sorted(listed) == sorted(legacy)
    for pipeline in legacy:
        revoked = await client.delete(
            f"/api/secrets/TOKEN/grants/{quote(pipeline, safe='/')}", headers=ADMIN
        )
        assert revoked.status_code == 200, (pipeline, revoked.text)
        assert pipeline not in revoked.json()["grants"]
    assert (await client.get("/api/secrets/TOKEN", headers=ADMIN)).json()["grants"] == []


async def test_server_logs_never_hold_the_value(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await put(client, "TOKEN", VALUE, grants=["deploy"])
    await create_pipeline(client, "deploy", admin=True)
    await client.put("/api/secrets/TOKEN", headers=ADMIN, json={"valu": VALUE})
    await launch(client, "deploy", admin=True)
    runner = await register_runner(client)
    assert (await claim(client, runner))["secrets"] == {"TOKEN": VALUE}
    assert "TOKEN" in caplog.text
    assert_absent(caplog.text, VALUE)


# --- the key -------------------------------------------------------------------------------


async def test_key_file_is_created_0600_and_reused_across_restarts(
    settings: RivetSettings, client: httpx.AsyncClient
) -> None:
    key_file = settings.home / "secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_text()
    assert (await put(client, "TOKEN", VALUE, grants=["deploy"])).status_code == 201
    await create_pipeline(client, "deploy", admin=True)
    await launch(client, "deploy", admin=True)
    runner = await register_runner(client)

    again = create_app(settings)  # a second start on the same home and database
    async with again.router.lifespan_context(again):
        assert key_file.read_text() == first
        transport = httpx.ASGITransport(app=again)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as other:
            assert (await claim(other, runner))["secrets"] == {"TOKEN": VALUE}


async def test_group_readable_key_file_is_refused(settings: RivetSettings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    key_file = settings.home / "secret-key"
    key_file.write_text(generate_key() + "\n")
    os.chmod(key_file, 0o640)
    with pytest.raises(
        ConfigError, match=r"accessible by group or others \(mode 0640\).*chmod 600"
    ):
        Services.build(settings)


async def test_env_key_wins_and_rotation_reencrypts(
    app: FastAPI, settings: RivetSettings, tmp_path: Path
) -> None:
    del app  # only for its emptied tables
    old, new = generate_key(), generate_key()
    home = tmp_path / "env-home"
    first = settings.replace({CoreGroup.home: home, ServerGroup.secret_key: old})
    server = create_app(first)
    async with server.router.lifespan_context(server):
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://rivet.test") as http:
            assert (await put(http, "TOKEN", VALUE, grants=["deploy"])).status_code == 201
            await create_pipeline(http, "deploy", admin=True)
            before = raw_rows(server)
    assert not (home / "secret-key").exists()  # the env key is used, no file is written

    rotated = first.replace({ServerGroup.secret_key: f"{new}, {old}"})
    server = create_app(rotated)
    async with server.router.lifespan_context(server):  # start-up re-encrypts with `new`
        after = raw_rows(server)
    assert after != before
    services = Services.build(rotated.replace({ServerGroup.secret_key: new}))
    try:
        assert values_for(services, "deploy") == {"TOKEN": VALUE}  # old key not needed
    finally:
        services.db.close()

    wrong = Services.build(rotated.replace({ServerGroup.secret_key: generate_key()}))
    try:
        assert values_for(wrong, "deploy") == {}  # unknown key: left out, logged
    finally:
        wrong.db.close()


async def test_new_versions_of_a_pipeline_with_grants_need_the_admin(
    client: httpx.AsyncClient,
) -> None:
    # Hostile: grants are by pipeline name, so without this rule anyone who can reach
    # the API could publish a new version of 'deploy' that prints DEPLOY_KEY.
    await create_pipeline(client, "deploy")
    assert (await put(client, "DEPLOY_KEY", VALUE, grants=["deploy"])).status_code == 201
    source = (
        "return pipeline.define({ name = 'deploy', stages = { { name = 'steal', "
        "script = function() log.info(secret.get('DEPLOY_KEY')) end } } })"
    )
    refused = await client.post("/api/pipelines", json={"source": source, "filename": "evil.lua"})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "pipeline 'deploy' has secrets granted to it (DEPLOY_KEY); a request without the "
        "admin token has no permission on DEPLOY_KEY, so may not push new versions of it: "
        "ask an admin"
    )
    versions = await client.get("/api/pipelines/deploy/versions")
    assert [v["version"] for v in versions.json()] == [1]  # nothing was stored
    wrong = await client.post(
        "/api/pipelines",
        json={"source": source},
        headers={"Authorization": "Bearer not-the-admin"},
    )
    assert wrong.status_code == 401
    allowed = await client.post("/api/pipelines", json={"source": source}, headers=ADMIN)
    assert allowed.status_code == 201 and allowed.json()["version"] == 2
    # pipelines without grants stay open to everyone
    other = await client.post(
        "/api/pipelines",
        json={"source": source.replace("'deploy'", "'docs'")},
    )
    assert other.status_code == 201
