"""The spans of one job run: ``job.run`` > ``stage <name>`` > ``process.run``.

The executor makes one :class:`JobTrace` per run. With tracing off
(:func:`rivet.observe.tracing.enabled` false) it records nothing and every method
returns at once, so a job pays nothing for it. With tracing on, ``job.run`` joins
the trace the server started at launch (the claim's ``trace_parent``) or, under
``rivet run``, starts a trace of its own.

Thread-safety: stages start and end on the job's thread; ``process.run`` may run on
``process.parallel``'s workers, which is why the parent of a command's span is
looked up by stage name rather than taken from a context variable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rivet.engine.events import JobEvents, JobResult, LogEvent, StageResult
from rivet.observe import tracing

__all__ = ["JobTrace", "TracedEvents"]


class JobTrace:
    def __init__(
        self,
        job_id: str,
        trace_parent: str | None,
        attempt: int | None = None,
        *,
        enabled: bool | None = None,
    ) -> None:
        self.enabled = tracing.enabled() if enabled is None else enabled
        self._stages: dict[str, tracing.Span] = {}
        self._lock = threading.Lock()
        self._job: tracing.Span | None = None
        if not self.enabled:
            return
        attributes: dict[str, str | int] = {"rivet.job_id": job_id}
        if attempt is not None:
            attributes["rivet.attempt"] = attempt
        self._job = tracing.start_span("job.run", tracing.parent_from(trace_parent), attributes)

    @classmethod
    def off(cls) -> JobTrace:
        """A trace that records nothing (a context built outside the executor)."""
        return cls("", None, enabled=False)

    def stage_started(self, stage: StageResult) -> None:
        if self._job is None:
            return
        span = tracing.start_span(
            f"stage {stage.name}", self._job, {"rivet.stage": stage.name}, start=stage.started_at
        )
        with self._lock:
            self._stages[stage.name] = span

    def stage_finished(self, stage: StageResult) -> None:
        with self._lock:
            span = self._stages.pop(stage.name, None)
        if span is not None:
            tracing.end_span(
                span,
                {"rivet.status": stage.status.value},
                error=stage.error,
                end=stage.finished_at,
            )

    @contextmanager
    def process(self, program: str, image: str, stage: str | None) -> Iterator[tracing.Span | None]:
        """A ``process.run`` span under its stage's (the job's outside a stage);
        attributes: the program (``argv[0]`` only: arguments may hold values), image;
        the caller sets ``process.exit_code``."""
        if self._job is None:
            yield None
            return
        with self._lock:
            parent = self._stages.get(stage or "", self._job)
        attributes = {"process.executable.name": program, "container.image.name": image}
        with tracing.span("process.run", parent, attributes) as span:
            yield span

    def finish(self, result: JobResult | None) -> None:
        """End the job's span (``result`` None: the executor raised)."""
        if self._job is None:
            return
        with self._lock:
            left = list(self._stages.values())
            self._stages.clear()
        for span in left:  # a stage a cancel or crash left open
            tracing.end_span(span, error="the job ended during the stage")
        if result is None:
            tracing.end_span(self._job, error="the executor raised")
        else:
            error = result.error if result.status.value != "succeeded" else None
            tracing.end_span(self._job, {"rivet.status": result.status.value}, error=error)
        self._job = None


class TracedEvents:
    """A :class:`JobEvents` that also opens and closes the stage spans of a trace."""

    def __init__(self, inner: JobEvents, trace: JobTrace) -> None:
        self.inner = inner
        self.trace = trace

    def log(self, event: LogEvent) -> None:
        self.inner.log(event)

    def stage_started(self, stage: StageResult) -> None:
        self.trace.stage_started(stage)
        self.inner.stage_started(stage)

    def stage_finished(self, stage: StageResult) -> None:
        self.inner.stage_finished(stage)
        self.trace.stage_finished(stage)
