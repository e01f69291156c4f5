"""Archive/restore, paged listing, rerun, runner removal and ``waiting`` over HTTP, on
SQLite and PostgreSQL (issue 14). The CLI's side of each: tests/integration/cli/
test_archive_rerun_remove.py."""

from __future__ import annotations

import httpx
import pytest
from api_helpers import ADMIN, create_pipeline, launch, register_runner

pytestmark = pytest.mark.anyio


async def test_archive_keeps_history_refuses_launches_and_versions(
    client: httpx.AsyncClient,
) -> None:
    await create_pipeline(client, "keep")
    old = await launch(client, "keep")
    for name in ("b-active", "a-active"):
        await create_pipeline(client, name)

    archived = await client.delete("/api/pipelines/keep")
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    again = await client.delete("/api/pipelines/keep")
    assert again.json()["archived_at"] == archived.json()["archived_at"]  # first date kept

    listed = (await client.get("/api/pipelines")).json()
    assert [p["name"] for p in listed["pipelines"]] == ["a-active", "b-active"]
    assert listed["total"] == 2
    only = (await client.get("/api/pipelines", params={"archived": "only"})).json()
    assert [p["name"] for p in only["pipelines"]] == ["keep"]
    every = (await client.get("/api/pipelines", params={"archived": "include"})).json()
    assert every["total"] == 3

    assert (await client.get("/api/pipelines/keep")).status_code == 200
    assert (await client.get("/api/pipelines/keep/versions")).status_code == 200
    assert (await client.get(f"/api/jobs/{old['id']}")).status_code == 200

    pinned = {"pipeline": archived.json()["id"][:8], "version": 1}  # by id, version pinned
    refused = [
        await client.post("/api/jobs", json={"pipeline": "keep"}),
        await client.post("/api/jobs", json=pinned),
        await client.post(f"/api/jobs/{old['id']}/rerun"),
        await client.post(
            "/api/pipelines",
            json={"source": (await client.get("/api/pipelines/keep")).json()["source"]},
        ),
    ]
    for answer in refused:
        assert answer.status_code == 409, answer.text
        message = answer.json()["error"]["message"]
        assert message.startswith("pipeline 'keep' is archived (since ")
        assert message.endswith("restore it with: rivet pipeline restore keep")
    assert (await client.get("/api/pipelines/keep/versions")).json()[-1]["version"] == 1

    restored = await client.post("/api/pipelines/keep/restore")
    assert restored.status_code == 200 and restored.json()["archived_at"] is None
    assert (await client.post("/api/jobs", json={"pipeline": "keep"})).status_code == 201
    assert (await client.delete("/api/pipelines/nope")).status_code == 404


async def test_pipeline_pages_like_jobs(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await create_pipeline(client, f"p{index}")
    page = (await client.get("/api/pipelines", params={"limit": 2, "offset": 2})).json()
    assert [p["name"] for p in page["pipelines"]] == ["p2", "p3"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"archived": "yes"}):
        answer = await client.get("/api/pipelines", params=bad)
        assert answer.status_code == 422, bad


async def test_rerun_copies_version_and_inputs(client: httpx.AsyncClient) -> None:
    inputs = {"who": {"type": "string", "required": True}, "n": {"type": "number", "default": 3}}
    await create_pipeline(client, "again", inputs=inputs)
    first = await launch(client, "again", {"who": "ada"})
    await create_pipeline(client, "again", inputs=inputs)
    rerun = await client.post(f"/api/jobs/{first['id'][:8]}/rerun")
    assert rerun.status_code == 201, rerun.text
    body = rerun.json()
    assert body["id"] != first["id"] and body["rerun_of"] == first["id"]
    assert (body["version"], body["inputs"]) == (1, {"who": "ada", "n": 3})
    assert (await client.get(f"/api/jobs/{body['id']}")).json()["rerun_of"] == first["id"]
    assert (await client.post("/api/jobs/ffffffff/rerun")).status_code == 404


async def test_remove_runner_revokes_its_token_and_keeps_history(
    client: httpx.AsyncClient,
) -> None:
    runner = await register_runner(client, "gone", tags={"os": "linux"})
    runner_id = runner["X-Test-Id"]
    await create_pipeline(client, "work", tags={"os": "linux"})
    job = await launch(client, "work")
    claimed = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 1})
    assert claimed.status_code == 200

    assert (await client.delete(f"/api/runners/{runner_id}")).status_code == 401  # admin only
    busy = await client.delete(f"/api/runners/{runner_id}", headers=ADMIN)
    assert busy.status_code == 409
    assert f"is running job(s) {job['id'][:8]}" in busy.json()["error"]["message"]

    forced = await client.delete(
        f"/api/runners/{runner_id}", params={"force": "true"}, headers=ADMIN
    )
    assert forced.status_code == 200 and forced.json()["removed_at"] is not None
    failed = (await client.get(f"/api/jobs/{job['id']}")).json()
    assert failed["status"] == "failed" and failed["runner"] == "gone"
    assert "was removed (rivet runner remove --force)" in failed["error"]

    for method, path in (
        ("POST", "/api/runner/claim"),
        ("GET", "/api/runner/self"),
        ("POST", f"/api/runner/jobs/{job['id']}/heartbeat"),
    ):
        answer = await client.request(method, path, headers=runner, json={"wait_seconds": 0})
        assert answer.status_code == 401, (path, answer.text)
        assert answer.json()["error"]["code"] == "runner_removed"
    assert (await client.get("/api/runners")).json() == []
    every = (await client.get("/api/runners", params={"removed": "true"})).json()
    assert [r["name"] for r in every] == ["gone"]


async def test_a_queued_job_says_why_it_waits(client: httpx.AsyncClient) -> None:
    mac = await register_runner(client, "mac", tags={"os": "mac"})
    await create_pipeline(client, "linux-only", tags={"os": "linux"})
    offline = (await launch(client, "linux-only"))["id"]
    shown = (await client.get(f"/api/jobs/{offline}")).json()["waiting"]
    assert shown["reason"] == "no_runner_online"  # registered, never seen

    assert (
        await client.post("/api/runner/claim", headers=mac, json={"wait_seconds": 0})
    ).status_code == 204
    shown = (await client.get(f"/api/jobs/{offline}")).json()["waiting"]
    assert shown == {
        "message": "waiting for a runner with os=linux (the only online runner does not match)",
        "reason": "no_match",
        "required_tags": {"os": "linux"},
        "required_plugins": [],
        "online": 1,
        "matching": 0,
        "busy": 0,
    }
    launched = await launch(client, "linux-only")
    assert launched["waiting"] is None  # launches stay cheap: GET /api/jobs/{ref} explains
    await client.post(f"/api/jobs/{offline}/cancel")
    assert (await client.get(f"/api/jobs/{offline}")).json()["waiting"] is None
