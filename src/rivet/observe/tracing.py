"""Traces of jobs (OpenTelemetry), across the orchestrator and the runner.

One trace per job. The orchestrator's ``job.launch`` span is its root; its W3C
``traceparent`` is stored with the job and handed to the runner in the claim, so the
spans of both processes join one trace:

    job.launch                      orchestrator: inputs checked, job queued
    ├── job.queued                  orchestrator, at the claim: created → claimed
    ├── job.run                     runner: the whole attempt (attribute rivet.attempt)
    │   ├── stage <name>            one per stage, status as attribute
    │   │   └── process.run         one per command (argv[0], exit code, image)
    │   └── …
    └── job.run                     a retried job: one per attempt

Export: only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (and ``OTEL_SDK_DISABLED`` is not
``true``), :func:`configure` installs the SDK's tracer provider with a batching
OTLP/HTTP exporter, which reads the other standard ``OTEL_EXPORTER_OTLP_*``
variables (headers, timeout, compression) itself. Otherwise nothing is installed and
every span is the API's non-recording no-op: the SDK is not even imported, a span
costs well under a microsecond (``bench/tracing_overhead.py``) and no
``traceparent`` is stored.

Span attributes never carry secrets: names, ids, statuses, exit codes and the
program name (``argv[0]``), never arguments, environment or output.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "OTEL_VARIABLES",
    "Span",
    "configure",
    "enabled",
    "end_span",
    "epoch_ns",
    "parent_from",
    "shutdown",
    "span",
    "start_span",
    "traceparent_of",
]

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# The standard variables that shape export; `rivet up` passes them to its children
# (whose environments are otherwise built from scratch).
OTEL_VARIABLES = (
    *_ENDPOINTS,
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
)
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: Any = None  # the SDK's TracerProvider once configure() installed one


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for export (an OTLP endpoint, SDK not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINTS)


def configure(service: str, environ: Mapping[str, str] = os.environ, exporter: Any = None) -> bool:
    """Install the SDK's tracer provider for ``service`` (``rivet-server``,
    ``rivet-runner``, ``rivet-run``) when the environment asks for export, or always
    when ``exporter`` (a ``SpanExporter``, e.g. the SDK's in-memory one in tests) is
    given; returns whether spans are now recorded. The first call wins until
    :func:`shutdown`. The provider is Rivet's own, not OpenTelemetry's global one (which
    can be set once per process): so tests can configure, shut down and configure
    again, and nothing else in the process starts exporting by accident."""
    global _provider
    if exporter is None and not wanted(environ):
        return _provider is not None
    with _lock:
        if _provider is not None:
            return True
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _provider = provider
        return True


def enabled() -> bool:
    return _provider is not None


def shutdown() -> None:
    """Flush and stop the exporter (at process exit; spans still queued are sent)."""
    global _provider
    with _lock:
        provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()


def _tracer() -> trace.Tracer:
    provider = _provider
    if provider is None:
        return _NOOP
    tracer: trace.Tracer = provider.get_tracer("rivet")
    return tracer


_NOOP = trace.NoOpTracer()


def parent_from(traceparent: str | None) -> Context | None:
    """The context a ``traceparent`` header value names (``None``: none or invalid,
    so the span starts a trace of its own)."""
    if not traceparent:
        return None
    context = _propagator.extract({"traceparent": traceparent})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def traceparent_of(current: Span) -> str | None:
    """``current``'s W3C ``traceparent`` value, or ``None`` for a no-op span (tracing
    off: nothing to store)."""
    if not current.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(current))
    return carrier.get("traceparent")


def epoch_ns(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1_000_000_000)


def start_span(
    name: str,
    parent: Context | Span | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    start: datetime | None = None,
) -> Span:
    """A span to end with :func:`end_span` (for spans that begin and end in different
    calls, like a stage's). ``parent``: a context (:func:`parent_from`) or a span."""
    if isinstance(parent, Span):
        parent = trace.set_span_in_context(parent)
    return _tracer().start_span(
        name, context=parent, attributes=dict(attributes or {}), start_time=epoch_ns(start)
    )


def end_span(
    current: Span,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    *,
    error: str | None = None,
    end: datetime | None = None,
) -> None:
    """End ``current`` (at ``end``, default now) with ``attributes`` added, marked as
    an error with ``error`` as its description."""
    for key, value in (attributes or {}).items():
        current.set_attribute(key, value)
    if error is not None:
        current.set_status(Status(StatusCode.ERROR, error[:500]))
    current.end(end_time=epoch_ns(end))


@contextmanager
def span(
    name: str,
    parent: Context | Span | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A span around a block; an exception leaving the block marks it as an error
    (type name only: messages may hold values) and propagates."""
    current = start_span(name, parent, attributes)
    try:
        yield current
    except BaseException as exc:
        end_span(current, error=type(exc).__name__)
        raise
    current.end()
