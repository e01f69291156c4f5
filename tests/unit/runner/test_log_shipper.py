"""The log shipper against the real orchestrator: batching by size and by time, retries
that resend the same sequence numbers, order with stage updates, backpressure.

Where a test needs the network to fail, a ``FlakyTransport`` sits between the shipper
and the real server (the server itself is never faked; test names say "flaky_transport").
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from live_rivet import ClaimedJob

from rivet.domain.status import StageStatus
from rivet.engine.events import LogEvent, StageResult, utcnow
from rivet.limits import MAX_LOG_MESSAGE
from rivet.runner.client import RunnerClient
from rivet.runner.logs import LogShipper, ShipperSettings

# Fast retries keep the tests short; the production defaults are only slower.
FAST = {"retry_initial": 0.01, "retry_cap": 0.05}


@dataclass
class Sent:
    path: str
    at: float
    seqs: list[int] = field(default_factory=list)


class FlakyTransport(httpx.BaseTransport):
    """Forwards to the real server, failing requests as ``fail(request, attempt)`` says:
    ``"refuse"`` (never reaches the server), ``"lose"`` (reaches it, answer lost),
    ``"503"`` (a proxy-style error answer), ``"413"`` (a proxy refusing the size) or
    ``None`` (pass)."""

    def __init__(self, fail: Callable[[httpx.Request, int], str | None] | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.fail = fail or (lambda _request, _attempt: None)
        self.sent: list[Sent] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"null")
        seqs = [line["seq"] for line in body["lines"]] if request.url.path.endswith("/logs") else []
        with self.lock:
            self.sent.append(Sent(request.url.path, time.monotonic(), seqs))
            attempt = len(self.sent)
        action = self.fail(request, attempt)
        if action == "refuse":
            raise httpx.ConnectError("connection refused (flaky transport)", request=request)
        if action == "503":
            return httpx.Response(503, text="service unavailable (flaky transport)")
        if action == "413":
            return httpx.Response(413, text="request entity too large (flaky transport)")
        response = self.inner.handle_request(request)
        if action == "lose":
            response.read()
            raise httpx.ReadTimeout("answer lost (flaky transport)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()

    def log_posts(self) -> list[list[int]]:
        with self.lock:
            return [s.seqs for s in self.sent if s.path.endswith("/logs")]


def shipper_for(
    job: ClaimedJob, transport: FlakyTransport, **settings: float
) -> tuple[LogShipper, RunnerClient]:
    client = RunnerClient(job.url, job.token, transport=transport)
    return LogShipper(client, job.job_id, ShipperSettings(**settings)), client  # type: ignore[arg-type]


def event(seq: int, message: str | None = None) -> LogEvent:
    return LogEvent(seq, utcnow(), "only", "info", message or f"line {seq}")


def stored(job: ClaimedJob) -> list[tuple[int, str]]:
    return [(line["seq"], line["message"]) for line in job.api.logs(job.job_id)]


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_lines_are_batched_by_size(claimed_job: ClaimedJob) -> None:
    transport = FlakyTransport()
    shipper, client = shipper_for(claimed_job, transport, batch_lines=50, flush_interval=30.0)
    for seq in range(1, 121):
        shipper.log(event(seq))
    # Full batches go at once; the last 20 lines wait for the (long) flush interval.
    wait_until(lambda: shipper.delivered_lines == 100)
    time.sleep(0.2)
    assert shipper.delivered_lines == 100
    assert shipper.close(timeout=10)
    client.close()
    assert [len(p) for p in transport.log_posts()] == [50, 50, 20]
    assert stored(claimed_job) == [(s, f"line {s}") for s in range(1, 121)]


def test_lines_are_flushed_by_time(claimed_job: ClaimedJob) -> None:
    transport = FlakyTransport()
    shipper, client = shipper_for(claimed_job, transport, batch_lines=200, flush_interval=0.1)
    started = time.monotonic()
    for seq in (1, 2, 3):
        shipper.log(event(seq))
    wait_until(lambda: shipper.delivered_lines == 3)
    first_post = transport.sent[0].at - started
    # Held for the flush interval, then sent without more lines or a close (the upper
    # bound is loose: it separates "by time" from "never", not fast from slow).
    assert 0.09 <= first_post < 3.0, first_post
    assert transport.log_posts() == [[1, 2, 3]]
    shipper.log(event(4))
    assert shipper.close(timeout=10)
    client.close()
    assert transport.log_posts() == [[1, 2, 3], [4]]
    assert [s for s, _ in stored(claimed_job)] == [1, 2, 3, 4]


@pytest.mark.parametrize("failure", ["refuse", "lose", "503"])
def test_failed_post_is_resent_with_the_same_seqs_flaky_transport(
    claimed_job: ClaimedJob, failure: str
) -> None:
    """Whatever the failure (never arrived, stored but answer lost, error answer), the
    same batch is resent until acknowledged, and the server ends with each line once."""

    def fail(request: httpx.Request, attempt: int) -> str | None:
        return failure if request.url.path.endswith("/logs") and attempt <= 3 else None

    transport = FlakyTransport(fail)
    shipper, client = shipper_for(claimed_job, transport, batch_lines=10, **FAST)
    for seq in range(1, 26):
        shipper.log(event(seq))
    assert shipper.close(timeout=10)
    client.close()
    posts = transport.log_posts()
    assert posts[:4] == [list(range(1, 11))] * 4, "the first batch is resent unchanged"
    assert posts[4:] == [list(range(11, 21)), list(range(21, 26))]
    assert stored(claimed_job) == [(s, f"line {s}") for s in range(1, 26)]
    assert shipper.delivered_lines == 25 and shipper.dropped_lines == 0


def test_stage_updates_are_sent_after_the_lines_before_them(claimed_job: ClaimedJob) -> None:
    transport = FlakyTransport()
    shipper, client = shipper_for(claimed_job, transport, flush_interval=30.0)
    stage = StageResult("only", StageStatus.RUNNING, started_at=utcnow())
    shipper.stage_started(stage)
    shipper.log(event(1))
    shipper.log(event(2))
    stage.status, stage.finished_at = StageStatus.SUCCEEDED, utcnow()
    shipper.stage_finished(stage)
    # The stage update forces the waiting lines out without the 30 s flush interval.
    wait_until(lambda: shipper.pending == 0, timeout=5)
    assert shipper.close(timeout=5)
    client.close()
    kinds = [(s.path.rsplit("/", 1)[1], s.seqs) for s in transport.sent]
    assert kinds == [("stages", []), ("logs", [1, 2]), ("stages", [])]
    job = claimed_job.api.job(claimed_job.job_id)
    assert [(s["name"], s["status"]) for s in job["stages"]] == [("only", "succeeded")]


def test_full_buffer_blocks_the_producer_until_the_server_is_back_flaky_transport(
    claimed_job: ClaimedJob,
) -> None:
    outage = threading.Event()
    outage.set()

    def fail(_request: httpx.Request, _attempt: int) -> str | None:
        return "refuse" if outage.is_set() else None

    transport = FlakyTransport(fail)
    # Room for about ten 100-byte lines: the producer must wait for the server.
    shipper, client = shipper_for(
        claimed_job, transport, batch_lines=5, max_buffer_bytes=10 * 200, **FAST
    )
    done = threading.Event()
    most_pending = 0

    def produce() -> None:
        for seq in range(1, 101):
            shipper.log(event(seq, "x" * 100))
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    for _ in range(30):
        most_pending = max(most_pending, shipper.pending)
        time.sleep(0.01)
    assert not done.is_set(), "the producer should be blocked while the server is away"
    assert most_pending <= 10
    outage.clear()
    producer.join(timeout=20)
    assert done.is_set()
    assert shipper.close(timeout=20)
    client.close()
    assert [s for s, _ in stored(claimed_job)] == list(range(1, 101))


def test_a_job_the_server_refuses_is_abandoned_without_blocking(claimed_job: ClaimedJob) -> None:
    transport = FlakyTransport()
    client = RunnerClient(claimed_job.url, "rivet_runner_not-a-valid-token", transport=transport)
    shipper = LogShipper(client, claimed_job.job_id, ShipperSettings(max_buffer_bytes=1000))
    for seq in range(1, 50):  # more than fits: must not block once abandoned
        shipper.log(event(seq))
    assert shipper.close(timeout=10) is False
    client.close()
    assert shipper.dropped_lines == 49 and shipper.pending == 0
    assert stored(claimed_job) == []


def test_a_batch_too_large_for_the_server_is_sent_in_halves(claimed_job: ClaimedJob) -> None:
    """80 lines of 60,000 characters (4.8 MB) exceed the server's 4 MiB body limit: the
    real server answers 413, the shipper sends two halves of 40, and every line is
    stored once."""
    transport = FlakyTransport()
    shipper, client = shipper_for(
        claimed_job,
        transport,
        batch_lines=80,
        batch_bytes=10**9,
        max_buffer_bytes=10**9,
        flush_interval=30.0,
        **FAST,
    )
    for seq in range(1, 81):
        shipper.log(event(seq, f"{seq}:" + "x" * 60_000))
    assert shipper.close(timeout=60)
    client.close()
    assert [len(p) for p in transport.log_posts()] == [80, 40, 40]
    assert [s for s, _ in stored(claimed_job)] == list(range(1, 81))
    assert shipper.delivered_lines == 80 and shipper.dropped_lines == 0


def test_only_the_line_still_too_large_alone_is_dropped_flaky_transport(
    claimed_job: ClaimedJob, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy refusing line 5's text: halves are tried down to line 5 alone, whose
    text is then replaced by a note (same number: no gap stops live readers), with an
    error in the runner log; the other lines all arrive."""

    def fail(request: httpx.Request, _attempt: int) -> str | None:
        if not request.url.path.endswith("/logs"):
            return None
        lines = json.loads(request.content)["lines"]
        return "413" if any(line["message"] == "line 5" for line in lines) else None

    transport = FlakyTransport(fail)
    shipper, client = shipper_for(claimed_job, transport, batch_lines=8, flush_interval=30.0)
    for seq in range(1, 9):
        shipper.log(event(seq))
    assert shipper.close(timeout=10) is False  # not everything was delivered
    client.close()
    assert transport.log_posts() == [
        [1, 2, 3, 4, 5, 6, 7, 8],
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [5, 6],
        [5],
        [5],  # the note in its place
        [6],
        [7, 8],
    ]
    lines = stored(claimed_job)
    assert [s for s, _ in lines] == list(range(1, 9))
    assert lines[4][1] == "[line 5 not stored: the server refused it as too large (6 characters)]"
    assert shipper.delivered_lines == 7 and shipper.dropped_lines == 1
    assert "refuses line 5 as too large" in caplog.text


def test_a_line_over_the_server_cap_is_cut_and_says_so(claimed_job: ClaimedJob) -> None:
    transport = FlakyTransport()
    shipper, client = shipper_for(claimed_job, transport, flush_interval=0.01)
    shipper.log(event(1, "y" * (MAX_LOG_MESSAGE + 5000)))
    assert shipper.close(timeout=10)
    client.close()
    [(seq, message)] = stored(claimed_job)
    assert seq == 1 and len(message) == MAX_LOG_MESSAGE
    assert message.startswith("yyyy") and message.endswith(f"the limit is {MAX_LOG_MESSAGE}]")
