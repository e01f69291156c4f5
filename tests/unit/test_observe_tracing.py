"""Traces (rivet.observe.tracing, rivet.engine.job_trace): off by default, recording
nothing and storing no traceparent; on, a job's spans nest job.run > stage > process.run
under the parent the claim hands over, and carry no arguments, environment or output.

Spans are collected with the OpenTelemetry SDK's in-memory exporter (a real exporter
of the SDK, not a fake of Rivet's code)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_jobs import DEFAULT, pipeline, stage
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from recording import EventLog

from rivet.engine.backends.fake import FakeBackend, FakeCommand
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.policy import Policy
from rivet.observe import tracing

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SECRET = "hunter2-sEcReT-argument"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure("rivet-test", environ={}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def _run(tmp_path: Path, source: str, trace_parent: str | None, fake: FakeBackend) -> None:
    settings = ExecutorSettings(
        workspace_root=tmp_path / "workspaces",
        default_image=DEFAULT,
        policy=Policy(),
        secrets_root=tmp_path / "secrets",
    )
    (tmp_path / "secrets").mkdir(exist_ok=True)
    spec = JobSpec(
        f"unit-{uuid.uuid4().hex[:8]}",
        source,
        "t.lua",
        {},
        local_secrets=True,
        trace_parent=trace_parent,
        attempt=2,
    )
    Executor(fake, settings).run(spec, EventLog())


def test_off_unless_an_endpoint_is_set() -> None:
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318"})
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "TRUE"}
    assert not tracing.wanted(disabled)
    assert not tracing.configure("rivet-test", environ={})
    assert not tracing.enabled()


def test_off_spans_record_nothing_and_give_no_traceparent() -> None:
    span = tracing.start_span("job.launch", attributes={"rivet.pipeline": "p"})
    assert not span.is_recording()
    assert tracing.traceparent_of(span) is None
    tracing.end_span(span, {"rivet.job_id": "x"}, error="boom")


@pytest.mark.parametrize("bad", [None, "", "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_invalid_traceparents_start_a_trace_of_their_own(bad: str | None) -> None:
    assert tracing.parent_from(bad) is None


def test_a_job_nests_under_the_claimed_parent(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    fake = FakeBackend()
    fake.script("false", FakeCommand(exit_code=3))
    source = pipeline(
        stage("build", f"process.run({{ 'echo', '{SECRET}', env = {{ X = '{SECRET}' }} }})"),
        stage("check", "process.run({ 'false' })\nerror('the check failed')"),
    )
    _run(tmp_path, source, PARENT, fake)
    by_name = {span.name: span for span in spans.get_finished_spans()}
    assert set(by_name) == {"job.run", "stage build", "stage check", "process.run"}
    finished = spans.get_finished_spans()
    job = by_name["job.run"]
    assert job.context is not None and job.parent is not None
    assert f"{job.context.trace_id:032x}" == PARENT.split("-")[1]
    assert f"{job.parent.span_id:016x}" == PARENT.split("-")[2]
    assert job.attributes is not None and job.attributes["rivet.attempt"] == 2
    assert job.attributes["rivet.status"] == "failed"
    assert not job.status.is_ok
    for name in ("stage build", "stage check"):
        assert by_name[name].parent is not None
        assert by_name[name].parent.span_id == job.context.span_id
    stages = {by_name[n].context.span_id: n for n in ("stage build", "stage check")}
    commands = [s for s in finished if s.name == "process.run"]
    assert [stages[c.parent.span_id] for c in commands] == ["stage build", "stage check"]
    assert [c.attributes["process.exit_code"] for c in commands] == [0, 3]
    assert by_name["stage check"].attributes["rivet.status"] == "failed"
    for span in finished:  # names, ids and statuses only: never arguments or env
        assert SECRET not in repr(dict(span.attributes or {}))
        assert SECRET not in (span.status.description or "")


def test_without_a_parent_a_job_starts_its_own_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    _run(tmp_path, pipeline(stage("s", "process.run({ 'true' })")), None, FakeBackend())
    job = next(s for s in spans.get_finished_spans() if s.name == "job.run")
    assert job.parent is None
    assert job.attributes is not None and job.attributes["rivet.status"] == "succeeded"


def test_untraced_jobs_make_no_spans(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    _run(tmp_path, pipeline(stage("s", "process.run({ 'true' })")), PARENT, FakeBackend())
    assert exporter.get_finished_spans() == ()
    assert not tracing.enabled()
