"""Server-Sent Events log streams, against a real uvicorn server."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from api_helpers import ADMIN, log_lines, lua_pipeline, read_sse
from live_rivet import wait_for

from rivet.settings import RivetSettings, ServerGroup


@pytest.fixture
def settings(settings: RivetSettings) -> RivetSettings:
    # A slow poll fallback: events arriving fast below prove the wake-up path works.
    return settings.replace({ServerGroup.poll_interval: 5.0})


@pytest.fixture
def http(live_url: str) -> Any:
    with httpx.Client(base_url=live_url, timeout=15) as client:
        yield client


def running_job(http: httpx.Client) -> tuple[str, dict[str, str]]:
    """A job claimed by a fresh runner: its id and the runner's headers."""
    source = lua_pipeline("demo", stages=("build", "test"))
    assert http.post("/api/pipelines", json={"source": source}).status_code == 201
    job_id = http.post("/api/jobs", json={"pipeline": "demo"}).json()["id"]
    token = http.post("/api/runner-tokens", headers=ADMIN, json={}).json()["token"]
    registered = http.post(
        "/api/runners/register", json={"registration_token": token, "name": "r"}
    ).json()
    runner = {"Authorization": f"Bearer {registered['token']}"}
    assert (
        http.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0}).json()["job_id"]
        == job_id
    )
    return job_id, runner


def collect(http: httpx.Client, url: str, **kwargs: Any) -> list[tuple[float, dict[str, str]]]:
    events = []
    with http.stream("GET", url, **kwargs) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in read_sse(response.iter_lines()):
            events.append((time.monotonic(), event))
    return events  # the server closed the stream


def test_stream_replays_follows_and_ends(http: httpx.Client) -> None:
    job_id, runner = running_job(http)
    base = f"/api/runner/jobs/{job_id}"
    http.post(f"{base}/logs", headers=runner, json=log_lines(1, 2, 3))
    posted: dict[str, float] = {}

    def run_job() -> None:
        time.sleep(0.5)
        posted["late"] = time.monotonic()
        http.post(f"{base}/logs", headers=runner, json=log_lines(5, 6))  # out of order
        http.post(f"{base}/logs", headers=runner, json=log_lines(4))
        http.post(f"{base}/stages", headers=runner, json={"name": "build", "status": "running"})
        http.post(f"{base}/stages", headers=runner, json={"name": "build", "status": "succeeded"})
        time.sleep(0.2)
        http.post(f"{base}/complete", headers=runner, json={"status": "succeeded"})

    worker = threading.Thread(target=run_job)
    worker.start()
    events = collect(http, f"/api/jobs/{job_id[:8]}/logs/stream", params={"after": 1})
    worker.join()

    logs = [e for _, e in events if e["event"] == "message"]
    assert [int(e["id"]) for e in logs] == [2, 3, 4, 5, 6]
    assert [json.loads(e["data"])["seq"] for e in logs] == [2, 3, 4, 5, 6]
    assert json.loads(logs[0]["data"])["message"] == "line 2"
    statuses = [json.loads(e["data"]) for _, e in events if e["event"] == "status"]
    assert statuses[0]["status"] == "running"
    assert statuses[-1]["status"] == "succeeded"
    # Status events are snapshots: "running" then "succeeded" posted back to back may
    # reach a reader as one; what must hold is that the stage ends as it was left.
    assert statuses[-1]["stages"][0]["status"] == "succeeded"
    assert "id" not in next(e for _, e in events if e["event"] == "status")
    kind, last = events[-1][1]["event"], json.loads(events[-1][1]["data"])
    assert (kind, last["status"], last["id"]) == ("end", "succeeded", job_id)
    late_line = next(t for t, e in events if e.get("id") == "4")
    # Woken, not polled: the poll fallback is 5 s (the bound is loose for a loaded machine).
    assert late_line - posted["late"] < 4.0


def test_stream_resumes_from_last_event_id(http: httpx.Client) -> None:
    job_id, runner = running_job(http)
    http.post(f"/api/runner/jobs/{job_id}/logs", headers=runner, json=log_lines(1, 2, 3))
    http.post(f"/api/runner/jobs/{job_id}/complete", headers=runner, json={"status": "failed"})
    url = f"/api/jobs/{job_id}/logs/stream"
    events = [e for _, e in collect(http, url, headers={"Last-Event-ID": "2"})]
    assert [e["event"] for e in events] == ["message", "status", "end"]
    assert events[0]["id"] == "3"
    assert json.loads(events[-1]["data"])["status"] == "failed"
    everything = [e for _, e in collect(http, url) if e["event"] == "message"]
    assert [e["id"] for e in everything] == ["1", "2", "3"]


def test_stream_of_queued_job_ends_when_cancelled(http: httpx.Client) -> None:
    assert http.post("/api/pipelines", json={"source": lua_pipeline("q")}).status_code == 201
    job_id = http.post("/api/jobs", json={"pipeline": "q"}).json()["id"]
    # Its own client, joined before the test ends: the fixture's client is closed at
    # teardown and must not be in use by this thread then.
    cancel_url = str(http.base_url.join(f"/api/jobs/{job_id}/cancel"))
    timer = threading.Timer(0.3, lambda: httpx.post(cancel_url, timeout=10))
    timer.start()
    started = time.monotonic()
    events = [e for _, e in collect(http, f"/api/jobs/{job_id}/logs/stream")]
    timer.join(timeout=10)
    assert time.monotonic() - started < 3
    assert [e["event"] for e in events] == ["status", "status", "end"]
    assert json.loads(events[-1]["data"])["status"] == "cancelled"


def test_stream_of_unknown_job_is_404(http: httpx.Client) -> None:
    response = http.get("/api/jobs/" + "a" * 32 + "/logs/stream")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def sse_streams(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("rivet_sse_streams_active "):
            return float(line.split()[1])
    raise AssertionError("rivet_sse_streams_active missing")


def test_the_open_streams_gauge_counts_a_stream_until_its_client_goes(
    http: httpx.Client, live_url: str
) -> None:
    job_id, _runner = running_job(http)
    with httpx.Client(base_url=live_url, timeout=15) as other:
        with other.stream("GET", f"/api/jobs/{job_id}/logs/stream") as response:
            events = read_sse(response.iter_lines())  # kept: closing it hangs up
            assert next(events)["event"] == "status"
            assert sse_streams(http) == 1
        # The client hung up mid-stream; the server notices at its next write or poll.
        wait_for(lambda: sse_streams(http) == 0, 30, "the stream counted as closed")
