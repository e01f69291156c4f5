"""Pipeline and secret permissions, pools and the audit trail through the API, on
SQLite and PostgreSQL, acting as given principals with the test-only FAKE tokens of
``tests/support/fake_principals.py`` (the admin token and anonymous as on main)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_helpers import ADMIN, lua_pipeline, register_runner
from fake_principals import fake_token, install
from fastapi import FastAPI

pytestmark = pytest.mark.anyio

VALUE = "perm-Secret-Value-0042"


def as_(actor: str, role: str = "user", pipelines: tuple[str, ...] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake_token(actor, role, pipelines)}"}


ANN, BOB, CARL = as_("user:ann"), as_("user:bob"), as_("user:carl")


@pytest.fixture
def http(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    install(app)
    return client


async def push(
    http: httpx.AsyncClient, name: str, who: dict[str, str], status: int = 201, **kw: Any
) -> dict[str, Any]:
    body = {"source": lua_pipeline(name, **kw), "filename": f"{name}.lua"}
    response = await http.post("/api/pipelines", json=body, headers=who)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


async def launch(
    http: httpx.AsyncClient, name: str, who: dict[str, str], status: int = 201
) -> dict[str, Any]:
    response = await http.post("/api/jobs", json={"pipeline": name}, headers=who)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def message(answer: dict[str, Any]) -> str:
    text: str = answer["error"]["message"]
    return text


async def access(
    http: httpx.AsyncClient, name: str, who: dict[str, str], subject: str, level: str
) -> httpx.Response:
    body = {"subject": subject, "level": level}
    return await http.put(f"/api/pipelines/{name}/access", json=body, headers=who)


async def test_owner_pushes_others_do_not_until_listed(http: httpx.AsyncClient) -> None:
    created = await push(http, "deploy", ANN)
    assert created["owner"] == "user:ann" and created["created_by"] == "user:ann"
    refused = await push(http, "deploy", BOB, status=403)
    assert message(refused) == (
        "user 'bob' may not push new versions of 'deploy': ask its owner or an admin"
    )
    anonymous = await push(http, "deploy", {}, status=403)
    assert "a request without the admin token may not push" in message(anonymous)
    versions = await http.get("/api/pipelines/deploy/versions", headers=BOB)
    assert [v["version"] for v in versions.json()] == [1]  # nothing was stored
    assert (await push(http, "deploy", ADMIN))["version"] == 2
    # ACL change by a non-owner: refused, and bob still cannot push
    changed = await access(http, "deploy", BOB, "user:bob", "push")
    assert changed.status_code == 403
    assert message(changed.json()) == (
        "user 'bob' may not change who may use 'deploy': only its owner (user:ann) or an admin may"
    )
    await push(http, "deploy", BOB, status=403)
    # the owner lists bob by name
    granted = await access(http, "deploy", ANN, "user:bob", "push")
    assert granted.status_code == 200, granted.text
    assert granted.json()["entries"] == {
        "role:user": "launch",
        "role:viewer": "view",
        "user:bob": "push",
    }
    assert (await push(http, "deploy", BOB))["version"] == 3
    await push(http, "deploy", CARL, status=403)
    # ... but bob, though allowed to push, may not change the access list
    assert (await access(http, "deploy", BOB, "user:carl", "push")).status_code == 403
    revoked = await http.delete("/api/pipelines/deploy/access/user:bob", headers=ADMIN)
    assert revoked.status_code == 200 and "user:bob" not in revoked.json()["entries"]
    await push(http, "deploy", BOB, status=403)
    again = await http.delete("/api/pipelines/deploy/access/user:bob", headers=ANN)
    assert again.status_code == 404


async def test_access_by_role_versus_by_name(http: httpx.AsyncClient) -> None:
    await push(http, "release", ANN)
    job = await launch(http, "release", CARL)  # default: every user launches
    assert job["launched_by"] == "user:carl"
    # restrict: only bob (by name) launches; every user still views (role:viewer)
    revoked = await http.delete("/api/pipelines/release/access/role:user", headers=ANN)
    assert revoked.status_code == 200
    assert (await access(http, "release", ANN, "user:bob", "launch")).status_code == 200
    refused = await launch(http, "release", CARL, status=403)
    assert message(refused) == (
        "user 'carl' may not launch or cancel jobs of 'release': ask its owner or an admin"
    )
    assert (await http.post(f"/api/jobs/{job['id']}/cancel", headers=CARL)).status_code == 403
    bobs = await launch(http, "release", BOB)
    assert (await http.get(f"/api/jobs/{bobs['id']}", headers=CARL)).status_code == 200
    # hide it: no more role:viewer entry; carl sees neither the pipeline nor its jobs
    await http.delete("/api/pipelines/release/access/role:viewer", headers=ANN)
    await push(http, "public", BOB)
    listed = await http.get("/api/pipelines", headers=CARL)
    page = listed.json()
    assert [p["name"] for p in page["pipelines"]] == ["public"]
    assert page["total"] == 1  # hidden pipelines are left out before paging
    for url in (
        "/api/pipelines/release",
        "/api/pipelines/release/versions",
        "/api/pipelines/release/access",
        f"/api/jobs/{bobs['id']}",
        f"/api/jobs/{bobs['id']}/logs",
        f"/api/jobs/{bobs['id']}/logs/stream",
        "/api/jobs?pipeline=release",
    ):
        answer = await http.get(url, headers=CARL)
        assert answer.status_code == 403, (url, answer.text)
        assert "user 'carl' may not view 'release'" in message(answer.json())
    jobs = (await http.get("/api/jobs", headers=CARL)).json()
    assert jobs["jobs"] == [] and jobs["total"] == 0
    # a role entry lets every user back in
    assert (await access(http, "release", ANN, "role:user", "view")).status_code == 200
    assert (await http.get(f"/api/jobs/{bobs['id']}", headers=CARL)).status_code == 200
    # a viewer never launches, even when listed with push
    viewer = as_("user:vic", "viewer")
    assert (await access(http, "release", ANN, "user:vic", "push")).status_code == 200
    await launch(http, "release", viewer, status=403)
    await push(http, "viewers-own", viewer, status=403)


async def test_an_api_key_narrowed_to_one_pipeline_touches_no_other(
    http: httpx.AsyncClient,
) -> None:
    await push(http, "a", ADMIN)
    await push(http, "b", ADMIN)
    key = as_("api-key:ci", "user", ("a",))
    assert (
        await http.put(
            "/api/pipelines/b/access",
            headers=ADMIN,
            json={"subject": "api-key:ci", "level": "push"},
        )
    ).status_code == 200  # even listed by name on b
    listed = await http.get("/api/pipelines", headers=key)
    assert [p["name"] for p in listed.json()["pipelines"]] == ["a"]
    shown = await http.get("/api/pipelines/b", headers=key)
    assert shown.status_code == 403
    assert message(shown.json()) == (
        "api-key 'ci' may not view 'b': it is limited to the pipelines 'a'"
    )
    await launch(http, "b", key, status=403)
    await push(http, "b", key, status=403)
    created = await push(http, "c", key, status=403)
    assert "may not create pipelines (limited to a)" in message(created)
    job_b = await launch(http, "b", ADMIN)
    assert (await http.get(f"/api/jobs/{job_b['id']}", headers=key)).status_code == 403
    assert (await http.post(f"/api/jobs/{job_b['id']}/cancel", headers=key)).status_code == 403
    assert (await http.get("/api/jobs", headers=key)).json()["total"] == 0
    job_a = await launch(http, "a", key)
    assert job_a["launched_by"] == "api-key:ci"
    cancelled = await http.post(f"/api/jobs/{job_a['id']}/cancel", headers=key)
    assert cancelled.status_code == 200 and cancelled.json()["cancelled_by"] == "api-key:ci"


async def allow(http: httpx.AsyncClient, secret: str, subject: str, level: str) -> None:
    body = {"subject": subject, "level": level}
    response = await http.put(f"/api/secrets/{secret}/access", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text


async def claim(http: httpx.AsyncClient, runner: dict[str, str]) -> dict[str, Any]:
    response = await http.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_secret_grants_and_launches_need_a_secret_permission(
    http: httpx.AsyncClient,
) -> None:
    await http.put("/api/secrets/KEY", headers=ADMIN, json={"value": VALUE})
    await push(http, "rel", ANN)
    # grant by a user without secret permission (though owner of the pipeline)
    refused = await http.put("/api/secrets/KEY/grants/rel", headers=ANN)
    assert refused.status_code == 403
    assert message(refused.json()) == (
        "user 'ann' may not grant secret 'KEY': that needs the 'grant' permission on it; "
        "ask an admin (rivet secret allow)"
    )
    await allow(http, "KEY", "user:ann", "grant")
    await allow(http, "KEY", "user:bob", "grant")
    # bob may grant KEY, but not to ann's pipeline (he could not push to it)
    hijack = await http.put("/api/secrets/KEY/grants/rel", headers=BOB)
    assert hijack.status_code == 403 and "may not push new versions of 'rel'" in hijack.text
    assert (await http.put("/api/secrets/KEY/grants/rel", headers=ANN)).status_code == 200
    # launch of a granted pipeline by a user without permission on the secret
    denied = await launch(http, "rel", CARL, status=403)
    assert message(denied) == (
        "user 'carl' may not launch 'rel': it has secrets granted to it and launching it "
        "needs a permission on KEY; ask an admin"
    )
    assert (await launch(http, "rel", {}, status=403))["error"]["code"] == "forbidden"
    # ann's version 1 predates the grant; her version 2 is covered: she may use KEY
    await push(http, "rel", ANN)
    await push(http, "rel", CARL, status=403)  # no push, and no permission on KEY
    runner = await register_runner(http)
    job = await launch(http, "rel", ANN)
    assert job["warnings"] == []
    assert (await claim(http, runner))["secrets"] == {"KEY": VALUE}
    # taking ann's permission away stops her versions receiving it, at the claim
    assert (await http.delete("/api/secrets/KEY/access/user:ann", headers=ADMIN)).status_code == 200
    await launch(http, "rel", ANN, status=403)
    await launch(http, "rel", ADMIN)
    withheld = await claim(http, runner)
    assert withheld["secrets"] == {} and "pushed by user:ann" in withheld["withheld"]["KEY"]


async def test_secret_write_permission_is_delegated_per_secret_by_admins(
    http: httpx.AsyncClient,
) -> None:
    body = {"value": VALUE}
    assert (await http.put("/api/secrets/NEWKEY", json=body, headers=ANN)).status_code == 403
    await allow(http, "NEWKEY", "user:ann", "write")  # before the secret exists
    created = await http.put("/api/secrets/NEWKEY", json=body, headers=ANN)
    assert created.status_code == 201
    assert (await http.put("/api/secrets/NEWKEY", json=body, headers=ANN)).status_code == 200
    assert [s["name"] for s in (await http.get("/api/secrets", headers=ANN)).json()] == ["NEWKEY"]
    assert (await http.get("/api/secrets", headers=BOB)).json() == []
    assert (await http.put("/api/secrets/NEWKEY", json=body, headers=BOB)).status_code == 403
    assert (await http.delete("/api/secrets/NEWKEY", headers=BOB)).status_code == 403
    # only admins delegate, even a writer may not
    self_grant = await http.put(
        "/api/secrets/NEWKEY/access", headers=ANN, json={"subject": "user:bob", "level": "use"}
    )
    assert self_grant.status_code == 403
    role_entry = await http.put(
        "/api/secrets/NEWKEY/access", headers=ADMIN, json={"subject": "role:user", "level": "use"}
    )
    assert role_entry.status_code == 422 and role_entry.json()["error"]["details"][0]["loc"] == [
        "body",
        "subject",
    ]
    shown = await http.get("/api/secrets/NEWKEY/access", headers=ANN)
    assert shown.json() == {"secret": "NEWKEY", "entries": {"user:ann": "write"}}
    assert (await http.delete("/api/secrets/NEWKEY", headers=ANN)).status_code == 204
    assert VALUE not in repr([created.text, shown.text])


async def test_pools_are_admin_only_and_shown(http: httpx.AsyncClient) -> None:
    await push(http, "deploy", ANN)
    body = {"pools": ["prod"]}
    owner = await http.put("/api/pipelines/deploy/pools", json=body, headers=ANN)
    assert owner.status_code == 403 and "only an admin may" in owner.text
    shown = await http.put("/api/pipelines/deploy/pools", json=body, headers=ADMIN)
    assert shown.status_code == 200 and shown.json()["pools"] == ["prod"]
    pool = await http.put("/api/runner-pools/prod", json={"exclusive": True}, headers=ANN)
    assert pool.status_code == 403
    pool = await http.put("/api/runner-pools/prod", json={"exclusive": True}, headers=ADMIN)
    assert pool.json() == {"name": "prod", "exclusive": True, "runners": 0}
    token = await http.post("/api/runner-tokens", headers=ADMIN, json={})
    registered = await http.post(
        "/api/runners/register",
        json={"registration_token": token.json()["token"], "name": "p1", "pool": "prod"},
    )
    assert registered.status_code == 200
    runners = (await http.get("/api/runners")).json()
    assert [(r["name"], r["pool"]) for r in runners] == [("p1", "prod")]
    pools = (await http.get("/api/runner-pools")).json()
    assert pools == [{"name": "prod", "exclusive": True, "runners": 1}]
    bad = await http.post(
        "/api/runners/register",
        json={"registration_token": "x", "name": "p2", "pool": "bad\u202epool"},
    )
    assert bad.status_code == 422


async def test_the_audit_trail_records_who_did_what(http: httpx.AsyncClient) -> None:
    await push(http, "deploy", ANN)
    await access(http, "deploy", ANN, "user:bob", "push")
    await http.put("/api/secrets/KEY", headers=ADMIN, json={"value": VALUE, "grants": ["x"]})
    job = await launch(http, "deploy", BOB)
    await http.post(f"/api/jobs/{job['id']}/cancel", headers=ANN)
    shown = (await http.get(f"/api/jobs/{job['id']}", headers=BOB)).json()
    assert (shown["launched_by"], shown["cancelled_by"]) == ("user:bob", "user:ann")
    await register_runner(http, "r1")
    await http.put("/api/pipelines/deploy/pools", json={"pools": ["prod"]}, headers=ADMIN)
    assert (await http.get("/api/audit", headers=ANN)).status_code == 403
    events = (await http.get("/api/audit?limit=100", headers=ADMIN)).json()
    seen = [(e["actor"], e["action"], e["target"]) for e in reversed(events)]
    assert seen[:6] == [
        ("user:ann", "pipeline.push", "deploy"),
        ("user:ann", "pipeline.access.grant", "deploy"),
        ("admin", "secret.create", "KEY"),
        ("admin", "secret.grant", "KEY"),
        ("user:bob", "job.launch", job["id"]),
        ("user:ann", "job.cancel", job["id"]),
    ]
    actions = [action for _, action, _ in seen[6:]]
    assert actions == ["runner-token.create", "runner.register", "pipeline.pools"]
    assert seen[7][0].startswith("registration-token:")
    assert VALUE not in repr(events)
    assert len((await http.get("/api/audit?limit=2", headers=ADMIN)).json()) == 2


async def test_retry_needs_launch_and_is_audited(http: httpx.AsyncClient) -> None:
    """``POST /api/jobs/{ref}/retry`` is a launch like rerun: 403 (and the job untouched)
    without ``launch`` on the job's pipeline, even for one who may view it and via an
    API key narrowed to another pipeline; allowed, it is recorded as ``job.retry``."""
    await push(http, "release", ANN)
    job = await launch(http, "release", ANN)
    cancelled = await http.post(f"/api/jobs/{job['id']}/cancel", headers=ANN)
    assert cancelled.json()["status"] == "cancelled"
    await http.delete("/api/pipelines/release/access/role:user", headers=ANN)
    assert (await access(http, "release", ANN, "user:bob", "launch")).status_code == 200
    narrowed = as_("api-key:ci", "user", ("other",))
    for who in (CARL, narrowed):
        refused = await http.post(f"/api/jobs/{job['id']}/retry", headers=who)
        assert refused.status_code == 403, refused.text
    shown = (await http.get(f"/api/jobs/{job['id']}", headers=ANN)).json()
    assert (shown["status"], shown["attempt"]) == ("cancelled", 0)
    retried = await http.post(f"/api/jobs/{job['id']}/retry", headers=BOB)
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    events = (await http.get("/api/audit?limit=100", headers=ADMIN)).json()
    retries = [(e["actor"], e["target"]) for e in events if e["action"] == "job.retry"]
    assert retries == [("user:bob", job["id"])]
