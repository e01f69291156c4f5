"""The runner's HTTP client against the real orchestrator: what each failure becomes."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from live_rivet import ClaimedJob, free_port

from rivet.protocol import ClaimRequest, JobCompletion, LogBatch, RegisterRequest
from rivet.runner.client import (
    BodyTooLarge,
    JobGone,
    RequestRejected,
    RunnerClient,
    ServerUnavailable,
    TokenRejected,
    deliver,
)
from rivet.runner.retry import Backoff


def test_wrong_token_is_rejected_not_retried(server_url: str) -> None:
    with_client = RunnerClient(server_url, "rivet_runner_wrong")
    with pytest.raises(TokenRejected, match="invalid runner token"):
        with_client.claim(ClaimRequest(wait_seconds=0))
    with pytest.raises(TokenRejected, match="unknown or already used"):
        with_client.register(RegisterRequest(registration_token="rivet_reg_nope", name="x"))
    with_client.close()


def test_claim_without_work_returns_none_after_the_wait(claimed_job: ClaimedJob) -> None:
    client = RunnerClient(claimed_job.url, claimed_job.token)
    started = time.monotonic()
    assert client.claim(ClaimRequest(wait_seconds=0.3)) is None
    assert 0.25 <= time.monotonic() - started < 3
    client.close()


def test_jobs_of_other_runners_or_unknown_jobs_are_gone(
    claimed_job: ClaimedJob, server_url: str
) -> None:
    client = RunnerClient(server_url, claimed_job.token)
    with pytest.raises(JobGone):
        client.heartbeat("0" * 32)
    stranger = RunnerClient(server_url)
    registration = claimed_job.api.registration_token()
    stranger.token = stranger.register(
        RegisterRequest(registration_token=registration, name="stranger")
    ).token
    with pytest.raises(JobGone, match="not claimed by"):
        stranger.complete(claimed_job.job_id, JobCompletion(status="succeeded"))
    ack = client.complete(claimed_job.job_id, JobCompletion(status="succeeded"))
    assert ack.ok
    # Completion is idempotent: a resend after a lost answer is acknowledged again.
    assert client.complete(claimed_job.job_id, JobCompletion(status="failed")).ok
    assert claimed_job.api.job(claimed_job.job_id)["status"] == "succeeded"
    client.close()
    stranger.close()


def test_invalid_requests_are_rejected(claimed_job: ClaimedJob) -> None:
    client = RunnerClient(claimed_job.url, claimed_job.token)
    with pytest.raises(RequestRejected, match="HTTP 422"):
        client.claim(ClaimRequest.model_construct(wait_seconds=1000.0, tags=None, plugins=None))
    client.close()


def test_unreachable_server_is_logged_once_and_its_return_too(
    caplog: pytest.LogCaptureFixture, claimed_job: ClaimedJob
) -> None:
    dead = RunnerClient(f"http://127.0.0.1:{free_port()}", claimed_job.token)
    with caplog.at_level(logging.DEBUG, logger="rivet.runner"):
        for _ in range(3):
            with pytest.raises(ServerUnavailable, match="connection refused"):
                dead.heartbeat(claimed_job.job_id)
        # Same connectivity tracker, now pointed at the live server: "reachable again".
        live = RunnerClient(claimed_job.url, claimed_job.token, connectivity=dead.connectivity)
        live.heartbeat(claimed_job.job_id)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "unreachable (heartbeat: connection refused)" in warnings[0]
    assert "reachable again after" in warnings[1]
    dead.close()
    live.close()


def test_deliver_retries_until_success_or_give_up() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ServerUnavailable("down")
        return "ok"

    give_up = threading.Event()
    assert deliver(flaky, Backoff(0.001, 0.002), give_up) == "ok"
    assert len(calls) == 4

    def never() -> str:
        raise ServerUnavailable("down")

    threading.Timer(0.1, give_up.set).start()
    started = time.monotonic()
    assert deliver(never, Backoff(0.01, 0.02), give_up) is None
    assert time.monotonic() - started < 2


def test_413_is_request_too_large_and_503_carries_retry_after() -> None:
    """Answers of a proxy or of a server whose database is down (fake transport: the
    real 413 and 503 are in the log shipper and storage outage tests)."""
    answers = {
        "/api/runner/jobs/j/logs": httpx.Response(
            413, json={"error": {"code": "request_too_large", "message": "too large: 4194304"}}
        ),
        "/api/runner/jobs/j/heartbeat": httpx.Response(
            503,
            headers={"Retry-After": "5"},
            json={"error": {"code": "storage_unavailable", "message": "db down"}},
        ),
    }
    transport = httpx.MockTransport(lambda request: answers[request.url.path])
    client = RunnerClient("http://rivet.test", "tok", transport=transport)
    with pytest.raises(BodyTooLarge, match="HTTP 413: too large: 4194304"):
        client.post_logs("j", LogBatch(lines=[]))
    with pytest.raises(ServerUnavailable, match="HTTP 503: db down") as caught:
        client.heartbeat("j")
    assert caught.value.retry_after == 5.0
    client.close()


def test_deliver_waits_at_least_retry_after_up_to_the_backoff_cap() -> None:
    waits: list[float] = []

    class Clock(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return False

    calls: list[int] = []

    def busy() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ServerUnavailable("db down", retry_after=5.0 if len(calls) == 1 else 100.0)
        return "ok"

    assert deliver(busy, Backoff(0.001, 10.0), Clock()) == "ok"
    assert waits[0] >= 5.0 and waits[1] == 10.0  # Retry-After honoured, capped by backoff
