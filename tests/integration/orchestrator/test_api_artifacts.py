"""Artifacts and sources over HTTP on SQLite and PostgreSQL (issue 11): streamed
uploads by the runner holding the attempt (403 for another runner, 409 once the
attempt ended), the download permission between pipelines, Range on downloads,
size limits (413 naming the setting), hostile names and paths, source archives at
launch, and a cleanup two orchestrators can run at once."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
from api_helpers import ADMIN, register_runner
from fastapi import FastAPI
from moto_s3 import make_s3

from rivet.orchestrator.services import Services
from rivet.store.portable import utcnow

pytestmark = pytest.mark.anyio

RAW = {"Content-Type": "application/octet-stream"}


def source(name: str) -> str:
    return (
        f'return pipeline.define({{ name = "{name}",\n'
        '  stages = { { name = "s", script = function() log.info("hi") end } } })'
    )


async def running_job(
    client: httpx.AsyncClient, name: str, runner: dict[str, str]
) -> dict[str, Any]:
    created = await client.post("/api/pipelines", json={"source": source(name)})
    assert created.status_code in (200, 201), created.text
    launched = await client.post("/api/jobs", json={"pipeline": name})
    assert launched.status_code == 201, launched.text
    claimed = await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 5})
    assert claimed.status_code == 200, claimed.text
    body: dict[str, Any] = claimed.json()
    assert body["job_id"] == launched.json()["id"]
    return body


async def upload(
    client: httpx.AsyncClient,
    runner: dict[str, str],
    job: dict[str, Any],
    name: str,
    path: str,
    data: bytes,
) -> httpx.Response:
    return await client.post(
        f"/api/runner/jobs/{job['job_id']}/artifacts/{name}/files",
        params={"path": path, "attempt": job["attempt"], "mode": 0o755},
        content=data,
        headers={**runner, **RAW},
    )


async def complete(client: httpx.AsyncClient, runner: dict[str, str], job: dict[str, Any]) -> None:
    done = await client.post(
        f"/api/runner/jobs/{job['job_id']}/complete",
        params={"attempt": job["attempt"]},
        headers=runner,
        json={"status": "succeeded"},
    )
    assert done.status_code == 200, done.text


async def test_upload_list_download_with_range(client: httpx.AsyncClient) -> None:
    runner = await register_runner(client)
    job = await running_job(client, "maker", runner)
    data = bytes(range(256)) * 4000  # 1,024,000 bytes: several chunks
    answer = await upload(client, runner, job, "wheel", "dist/a.whl", data)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "path": "dist/a.whl",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "mode": 0o755,
    }
    listed = (await client.get(f"/api/jobs/{job['job_id']}/artifacts")).json()
    assert [a["name"] for a in listed["artifacts"]] == ["wheel"]
    assert listed["artifacts"][0]["size"] == len(data)
    url = f"/api/jobs/{job['job_id']}/artifacts/wheel/files/dist/a.whl"
    whole = await client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    part = await client.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    tail = await client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    past = await client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    missing = await client.get(f"/api/jobs/{job['job_id']}/artifacts/wheel/files/nope")
    assert missing.status_code == 404 and "has no file 'nope'" in missing.text


@pytest.mark.parametrize("path", ["../escape", "/abs", "a//b", "a/./b", "a\\b", "a/.."])
async def test_hostile_paths_are_refused_before_anything_is_stored(
    client: httpx.AsyncClient, path: str
) -> None:
    runner = await register_runner(client)
    job = await running_job(client, "hostile", runner)
    answer = await upload(client, runner, job, "x", path, b"data")
    assert answer.status_code == 422, answer.text
    assert "not a relative file path inside an artifact" in answer.text
    bad_name = await upload(client, runner, job, "..", "a", b"data")
    assert bad_name.status_code in (404, 422)
    listed = (await client.get(f"/api/jobs/{job['job_id']}/artifacts")).json()
    assert listed["artifacts"] == []


async def test_another_runner_gets_403_and_an_ended_attempt_409(client: httpx.AsyncClient) -> None:
    owner = await register_runner(client, "owner")
    other = await register_runner(client, "other")
    job = await running_job(client, "guarded", owner)
    stolen = await upload(client, other, job, "x", "f", b"data")
    assert stolen.status_code == 403, stolen.text
    await complete(client, owner, job)
    late = await upload(client, owner, job, "x", "f", b"data")
    assert late.status_code == 409, late.text
    assert "already complete" in late.text
    source_answer = await client.get(
        f"/api/runner/jobs/{job['job_id']}/source",
        params={"attempt": job["attempt"]},
        headers=owner,
    )
    assert source_answer.status_code == 409


async def test_file_and_job_limits_answer_413_naming_the_setting(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    limits = services.artifacts.limits
    object.__setattr__(limits, "max_file_bytes", 1000)
    object.__setattr__(limits, "max_job_bytes", 1500)
    runner = await register_runner(client)
    job = await running_job(client, "limited", runner)
    big = await upload(client, runner, job, "x", "big", b"x" * 1001)
    assert big.status_code == 413 and "RIVET_ARTIFACT_MAX_FILE_BYTES" in big.text
    assert (await upload(client, runner, job, "x", "one", b"x" * 900)).status_code == 200
    over = await upload(client, runner, job, "x", "two", b"x" * 900)
    assert over.status_code == 413 and "RIVET_ARTIFACT_MAX_JOB_BYTES" in over.text
    # Replacing a file counts its new size, not both.
    assert (await upload(client, runner, job, "x", "one", b"y" * 1000)).status_code == 200
    listed = (await client.get(f"/api/jobs/{job['job_id']}/artifacts")).json()
    assert [(f["path"], f["size"]) for f in listed["artifacts"][0]["files"]] == [("one", 1000)]


async def test_download_between_pipelines_is_permission_checked(client: httpx.AsyncClient) -> None:
    runner = await register_runner(client)
    maker = await running_job(client, "private-maker", runner)
    assert (await upload(client, runner, maker, "bin", "out/tool", b"tool")).status_code == 200
    await complete(client, runner, maker)
    user = await running_job(client, "user-pipeline", runner)
    base = f"/api/runner/jobs/{user['job_id']}"
    params = {"attempt": user["attempt"], "name": "bin", "job": "latest:private-maker"}
    found = await client.get(f"{base}/artifacts", params=params, headers=runner)
    assert found.status_code == 200, found.text  # role:viewer may view: every pipeline reads
    assert found.json()["job_id"] == maker["job_id"]
    file_params = {"attempt": user["attempt"], "job": maker["job_id"], "name": "bin"}
    got = await client.get(
        f"{base}/artifact-files", params={**file_params, "path": "out/tool"}, headers=runner
    )
    assert got.status_code == 200 and got.content == b"tool"
    # The owner (anonymous created it: the admin may change it) removes the default view.
    revoked = await client.delete("/api/pipelines/private-maker/access/role:viewer", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    denied = await client.get(f"{base}/artifacts", params=params, headers=runner)
    assert denied.status_code == 403, denied.text
    assert "pipeline 'user-pipeline' may not view 'private-maker'" in denied.text
    denied_file = await client.get(
        f"{base}/artifact-files", params={**file_params, "path": "out/tool"}, headers=runner
    )
    assert denied_file.status_code == 403
    granted = await client.put(
        "/api/pipelines/private-maker/access",
        headers=ADMIN,
        json={"subject": "pipeline:user-pipeline", "level": "view"},
    )
    assert granted.status_code == 200, granted.text
    again = await client.get(f"{base}/artifacts", params=params, headers=runner)
    assert again.status_code == 200, again.text
    nothing = await client.get(
        f"{base}/artifacts", params={**params, "name": "other"}, headers=runner
    )
    assert nothing.status_code == 404 and "has an artifact 'other'" in nothing.text


async def test_source_archive_upload_launch_and_runner_download(client: httpx.AsyncClient) -> None:
    archive = b"\x1f\x8b" + b"pretend tar.gz" * 100
    uploaded = await client.post("/api/sources", content=archive, headers=RAW)
    assert uploaded.status_code == 200, uploaded.text
    digest = hashlib.sha256(archive).hexdigest()
    assert uploaded.json() == {"sha256": digest, "size": len(archive)}
    await client.post("/api/pipelines", json={"source": source("with-source")})
    info = {
        "sha256": digest,
        "size": len(archive),
        "files": 3,
        "git_commit": "a" * 40,
        "git_dirty": True,
    }
    launched = await client.post(
        "/api/jobs", json={"pipeline": "with-source", "source_archive": info}
    )
    assert launched.status_code == 201, launched.text
    shown = (await client.get(f"/api/jobs/{launched.json()['id']}")).json()
    assert shown["source_archive"] == info
    runner = await register_runner(client)
    claimed = (
        await client.post("/api/runner/claim", headers=runner, json={"wait_seconds": 5})
    ).json()
    assert claimed["source_archive"] == info
    got = await client.get(
        f"/api/runner/jobs/{claimed['job_id']}/source",
        params={"attempt": claimed["attempt"]},
        headers=runner,
    )
    assert got.status_code == 200 and got.content == archive
    unknown = {**info, "sha256": "b" * 64}
    refused = await client.post(
        "/api/jobs", json={"pipeline": "with-source", "source_archive": unknown}
    )
    assert refused.status_code == 404 and "is not on the server" in refused.text
    jobs = (await client.get("/api/jobs")).json()
    assert jobs["total"] == 1  # nothing half-written


async def test_cleanup_on_two_orchestrators_at_once_removes_each_thing_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    services: Services = app.state.services
    object.__setattr__(services.artifacts.limits, "retention_days", 1)
    runner = await register_runner(client)
    job = await running_job(client, "expiring", runner)
    for i in range(30):
        answer = await upload(client, runner, job, f"a{i}", "f", f"content {i}".encode())
        assert answer.status_code == 200
    keep = await running_job(client, "kept", runner)
    assert (await upload(client, runner, keep, "k", "f", b"content 0")).status_code == 200
    blobs = services.artifacts.blobs
    digests = [hashlib.sha256(f"content {i}".encode()).hexdigest() for i in range(30)]
    assert all(blobs.size(d) is not None for d in digests)
    # Within the grace period nothing unreferenced goes; past expiry the artifacts do.
    later = utcnow() + timedelta(days=2)
    results: list[tuple[int, int]] = []

    def clean(now: Any) -> None:
        results.append(services.artifacts.cleanup(now))

    threads = [threading.Thread(target=clean, args=(later,)) for _ in range(2)]
    await anyio.to_thread.run_sync(lambda: [t.start() for t in threads] and None)
    await anyio.to_thread.run_sync(lambda: [t.join() for t in threads] and None)
    assert sum(r[0] for r in results) == 31  # every expired artifact, once
    assert sum(r[1] for r in results) == 30  # content 0 is one blob: both jobs' files
    assert all(blobs.size(d) is None for d in digests)
    assert services.artifacts.cleanup(later) == (0, 0)
    listed = (await client.get(f"/api/jobs/{job['job_id']}/artifacts")).json()
    assert listed["artifacts"] == []


async def test_the_server_on_the_s3_store(
    app: FastAPI, client: httpx.AsyncClient, s3_endpoint: str
) -> None:
    services: Services = app.state.services
    services.artifacts.blobs = make_s3(s3_endpoint, "server-artifacts")
    runner = await register_runner(client)
    job = await running_job(client, "on-s3", runner)
    data = b"s3 bytes " * 200_000
    assert (await upload(client, runner, job, "w", "dist/w.whl", data)).status_code == 200
    keys = services.artifacts.blobs._client.list_objects_v2(Bucket="server-artifacts")  # type: ignore[attr-defined]
    assert [o["Key"] for o in keys["Contents"]] == [
        f"rivet/blobs/{hashlib.sha256(data).hexdigest()}"
    ]
    url = f"/api/jobs/{job['job_id']}/artifacts/w/files/dist/w.whl"
    assert (await client.get(url)).content == data
    part = await client.get(url, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == data[5:15]
