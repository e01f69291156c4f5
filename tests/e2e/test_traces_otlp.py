"""End to end: a real ``rivet server`` and ``rivet runner`` export a job's trace with
OTLP/HTTP (the SDK's exporter, set up by ``OTEL_EXPORTER_OTLP_ENDPOINT`` alone) to an
OTLP/HTTP receiver started here on loopback, which decodes the protobuf requests with
the OpenTelemetry protocol package. One trace joins both processes: launch and queue
wait from the server, the run, its stages and commands from the runner."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from live_rivet import remove_job_containers, serve_http, wait_for
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from rivet_processes import Processes

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

SECRET_ARG = "not-in-any-span-4711"
PIPELINE = f"""
return pipeline.define({{
  name = "traced",
  stages = {{
    {{ name = "build", script = function() process.run({{ "echo", "{SECRET_ARG}" }}) end }},
    {{ name = "test", script = function() process.run({{ "true" }}) end }},
  }},
}})
"""


@dataclass(frozen=True)
class Received:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class _Receiver:
    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    receiver.paths.append(self.path)
                    for resource in request.resource_spans:
                        service = next(
                            a.value.string_value
                            for a in resource.resource.attributes
                            if a.key == "service.name"
                        )
                        for scope in resource.scope_spans:
                            for span in scope.spans:
                                receiver.spans.append(_received(service, span))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _received(service: str, span: Any) -> Received:
    attributes: dict[str, Any] = {}
    for a in span.attributes:
        kind = a.value.WhichOneof("value")
        attributes[a.key] = getattr(a.value, kind) if kind else None
    return Received(
        service,
        span.name,
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex(),
        attributes,
    )


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, str]]:
    collected = _Receiver()
    with serve_http(collected.handler()) as url:
        yield collected, url


def test_one_trace_across_server_and_runner(
    tmp_path: Path, processes: Processes, receiver: tuple[_Receiver, str]
) -> None:
    collected, endpoint = receiver
    rivet = processes.start_server(
        tmp_path / "home",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",  # ms: export soon after each span ends
    )
    processes.start_runner(rivet.env)
    api = rivet.api
    job_id = ""
    try:
        api.create_pipeline(PIPELINE)
        job_id = api.launch("traced", admin=True)
        assert api.wait_finished(job_id, 120)["status"] == "succeeded"

        def whole() -> list[Received] | None:
            trace_id = trace_of(job_id)
            with collected.lock:
                spans = [s for s in collected.spans if s.trace_id == trace_id]
            return spans if len(spans) >= 7 else None

        def trace_of(job: str) -> str:
            with collected.lock:
                launch = [s for s in collected.spans if s.attributes.get("rivet.job_id") == job]
            return launch[0].trace_id if launch else "-"

        spans = wait_for(whole, 30, "the job's 7 spans at the receiver")
    finally:
        api.close()
        processes.stop_all()
        if job_id:
            remove_job_containers(job_id)
    assert set(collected.paths) == {"/v1/traces"}
    by_name: dict[str, list[Received]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == [
        "job.launch",
        "job.queued",
        "job.run",
        "process.run",
        "stage build",
        "stage test",
    ]
    (launch,), (queued,), (run,) = by_name["job.launch"], by_name["job.queued"], by_name["job.run"]
    assert (launch.service, queued.service, run.service) == (
        "rivet-server",
        "rivet-server",
        "rivet-runner",
    )
    assert launch.parent_id == ""  # the root
    assert queued.parent_id == run.parent_id == launch.span_id
    assert launch.attributes["rivet.pipeline"] == "traced"
    assert run.attributes["rivet.attempt"] == 1
    assert run.attributes["rivet.status"] == "succeeded"
    stages = {s.span_id: s.name for name in ("stage build", "stage test") for s in by_name[name]}
    assert all(by_name[name][0].parent_id == run.span_id for name in ("stage build", "stage test"))
    commands = sorted(by_name["process.run"], key=lambda s: stages[s.parent_id])
    assert [(stages[c.parent_id], c.attributes["process.executable.name"]) for c in commands] == [
        ("stage build", "echo"),
        ("stage test", "true"),
    ]
    assert all(c.attributes["process.exit_code"] == 0 for c in commands)
    assert SECRET_ARG not in repr(spans)
