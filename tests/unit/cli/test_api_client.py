"""``RivetClient`` against scripted transports: error answers, unreachable servers and
the SSE log stream, including reconnecting from the last sequence number."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rivet.client import JobUpdate, RivetClient, ServerUnreachableError, parse_sse
from rivet.errors import ApiError, ConfigError
from rivet.protocol import ErrorBody, LogLine

JOB: dict[str, Any] = {
    "id": "ab" * 16,
    "pipeline": "p",
    "pipeline_id": "cd" * 16,
    "version": 1,
    "status": "running",
    "inputs": {},
    "created_at": "2024-01-01T00:00:00Z",
    "stages": [{"name": "build", "status": "running"}],
}


def test_parse_sse() -> None:
    raw = [
        "retry: 1000",
        "",
        ": keepalive",
        "",
        "id: 1",
        'data: {"a": 1}',
        "",
        "event: status",
        "data: line one",
        "data: line two",
        "",
        "id: 2",
        "data: tail",
    ]
    events = list(parse_sse(raw))
    assert [(e.event, e.data, e.id) for e in events] == [
        ("retry", "", None),
        ("message", '{"a": 1}', "1"),
        ("status", "line one\nline two", None),
        ("message", "tail", "2"),
    ]
    assert events[0].retry == 1000


def line(seq: int) -> str:
    data = {
        "seq": seq,
        "ts": "2024-01-01T00:00:00Z",
        "stage": "build",
        "level": "info",
        "message": f"line {seq}",
    }
    return f"id: {seq}\ndata: {json.dumps(data)}\n\n"


def status(final: bool, state: str = "running") -> str:
    return f"event: {'end' if final else 'status'}\ndata: {json.dumps(JOB | {'status': state})}\n\n"


class Dropping(httpx.SyncByteStream):
    """Sends ``chunks`` and then fails like a dropped connection."""

    def __init__(self, chunks: list[str], drop: bool) -> None:
        self.chunks = chunks
        self.drop = drop

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            yield chunk.encode()
        if self.drop:
            raise httpx.ReadError("connection reset by peer")


def test_stream_reconnects_from_the_last_sequence_number() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) == 1:
            body = Dropping(["retry: 1000\n\n", status(False), line(1), line(2)], drop=True)
        elif len(requests) == 2:
            raise httpx.ConnectError("connection refused")
        else:
            # the server replays from ?after=2; a repeated line 2 must be dropped
            body = Dropping([status(False), line(2), line(3), status(True, "succeeded")], False)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    sleeps: list[float] = []
    client = RivetClient(
        "http://rivet.test", transport=httpx.MockTransport(handler), sleep=sleeps.append
    )
    items = list(client.stream_logs("abcd"))
    lines = [i.seq for i in items if isinstance(i, LogLine)]
    assert lines == [1, 2, 3]
    updates = [i for i in items if isinstance(i, JobUpdate)]
    assert updates[-1].final and updates[-1].job.status == "succeeded"
    assert not any(u.final for u in updates[:-1])
    afters = [r.url.params["after"] for r in requests]
    assert afters == ["0", "2", "2"]
    assert requests[-1].headers["Last-Event-ID"] == "2"
    assert sleeps == [1.0, 2.0]


def test_stream_gives_up_after_reconnect_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    clock = iter(range(0, 1000, 50))
    client = RivetClient(
        "http://rivet.test",
        transport=httpx.MockTransport(handler),
        reconnect_for=120,
        sleep=lambda _s: None,
    )
    import rivet.client.api as api

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api.time, "monotonic", lambda: float(next(clock)))
        with pytest.raises(ServerUnreachableError, match="log stream lost: connection refused"):
            list(client.stream_logs("abcd"))


@pytest.mark.parametrize("code", [502, 503, 504])
def test_stream_reopens_after_a_not_now_answer(code: int) -> None:
    """A load balancer whose orchestrator died (502/504), a database restarting (503):
    the follower opens the stream again from where it was."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) == 1:
            body = Dropping([status(False), line(1)], drop=True)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)
        if len(requests) == 2:
            error = {"error": {"code": "storage_unavailable", "message": "try again"}}
            return httpx.Response(code, json=error, headers={"Retry-After": "5"})
        body = Dropping([line(2), status(True, "succeeded")], drop=False)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    client = RivetClient(
        "http://rivet.test", transport=httpx.MockTransport(handler), sleep=lambda _s: None
    )
    items = list(client.stream_logs("abcd"))
    assert [i.seq for i in items if isinstance(i, LogLine)] == [1, 2]
    assert [r.url.params["after"] for r in requests] == ["0", "1", "1"]


def test_stream_error_answer_is_an_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no job"}})

    client = RivetClient("http://rivet.test", transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError, match=r"^no job$") as caught:
        list(client.stream_logs("abcd"))
    assert caught.value.status == 404
    assert isinstance(caught.value.detail, ErrorBody) and caught.value.detail.code == "not_found"


def test_admin_calls_need_a_token() -> None:
    client = RivetClient(
        "http://rivet.test", transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    with pytest.raises(ConfigError, match="admin token"):
        client.list_runner_tokens()


def test_admin_token_is_sent_as_bearer() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json=[])

    client = RivetClient(
        "http://rivet.test", admin_token="tok", transport=httpx.MockTransport(handler)
    )
    assert client.list_runner_tokens() == []
    assert seen == ["Bearer tok"]


def test_names_are_quoted_in_paths() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json=[])

    client = RivetClient("http://rivet.test", transport=httpx.MockTransport(handler))
    client.pipeline_versions("a b/c")
    assert paths == ["/api/pipelines/a%20b%2Fc/versions"]


def test_unexpected_answers_are_api_errors() -> None:
    client = RivetClient(
        "http://rivet.test", transport=httpx.MockTransport(lambda r: httpx.Response(200, json={}))
    )
    with pytest.raises(ApiError, match="unexpected answer from the server for /api/jobs/abcd"):
        client.get_job("abcd")


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            413,
            {
                "error": {
                    "code": "request_too_large",
                    "message": "request body too large: the server accepts at most 4194304 bytes",
                }
            },
            {},
            r"^request body too large: the server accepts at most 4194304 bytes$",
        ),
        (
            413,
            None,
            {},
            r"^the request is larger than the server \(or a proxy in front of it\) accepts \(HTTP 413\): <html>too big</html>$",
        ),
        (
            503,
            {
                "error": {
                    "code": "storage_unavailable",
                    "message": "the sqlite database is unavailable right now",
                }
            },
            {"Retry-After": "5"},
            r"^the sqlite database is unavailable right now \(retry in 5 s\)$",
        ),
        (
            503,
            None,
            {"Retry-After": "7"},
            r"^the server is temporarily unavailable \(HTTP 503\): <html>too big</html> \(retry in 7 s\)$",
        ),
        (
            422,
            {
                "error": {
                    "code": "invalid_request",
                    "message": "invalid request: body.inputs.n: too large",
                }
            },
            {},
            r"^invalid request: body.inputs.n: too large$",
        ),
    ],
)
def test_413_422_503_become_clear_messages(
    status: int, body: dict[str, object] | None, headers: dict[str, str], expected: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:  # a proxy's page, not Rivet's envelope
            return httpx.Response(status, text="<html>too big</html>", headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    client = RivetClient("http://rivet.test", transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError, match=expected) as caught:
        client.create_pipeline("return 1")
    assert caught.value.status == status
