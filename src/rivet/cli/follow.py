"""``--follow``: a job's log and its stage markers, in the order they happened.

The log stream sends lines and, separately, the job's state; a stage marker
(``build -- started``, ``build -- succeeded in 1.20s``) is made from the state. A job
that has already run sends its whole stored log before the state that holds every
marker, so printing markers as the state arrives would put them all after the
lines. :class:`StoredOrder` instead keeps the markers it knows of by their time and
prints each one just before the first line that comes after it (a stage's
``started`` always before that stage's first line), so following a finished job
prints exactly what a live follow printed, and the stage column has one width
from the first line: the job's stage names are known before anything is printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from rivet.cli import common
from rivet.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, err_console, short_id
from rivet.cli.render import LogPrinter, StageRow, finished_text
from rivet.cli.run import exit_code_for_status, print_job_summary
from rivet.cli.terminal import echo_json_line, safe, visible
from rivet.cli.times import LogClock, spans_days
from rivet.domain.status import JobStatus, StageStatus

if TYPE_CHECKING:
    from rivet.client import RivetClient
    from rivet.protocol import JobView, LogLine

__all__ = ["StoredOrder", "follow_job", "follow_json", "say_waiting"]

_STARTED, _FINISHED = 0, 1
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _aware(ts: datetime) -> datetime:
    """Times from the server carry their zone; one without is UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@dataclass(order=True)
class _Marker:
    ts: datetime
    index: int  # the stage's place in the pipeline: ties go in stage order
    kind: int  # _STARTED before _FINISHED
    stage: str = field(compare=False)
    what: Text = field(compare=False)
    shown_ts: datetime | None = field(compare=False, default=None)


class StoredOrder:
    """Prints log lines and stage markers of one job in the order they happened."""

    def __init__(self, printer: LogPrinter, view: JobView) -> None:
        self.printer = printer
        self._pending: list[_Marker] = []
        self._known: set[tuple[str, int]] = set()  # (stage, kind) already made
        self._latest = _EARLIEST
        printer.width = max([printer.width, *(len(visible(s.name)) for s in view.stages)])
        self.update(view)

    def update(self, view: JobView) -> None:
        """Take the markers of ``view`` that are new; prints nothing."""
        for index, stage in enumerate(view.stages):
            status = StageStatus(stage.status)
            if stage.started_at is not None and (stage.name, _STARTED) not in self._known:
                self._known.add((stage.name, _STARTED))
                started = Text("started", style="dim")
                self._add(_Marker(_aware(stage.started_at), index, _STARTED, stage.name, started))
            if status.finished and (stage.name, _FINISHED) not in self._known:
                self._known.add((stage.name, _FINISHED))
                what = finished_text(stage.status, stage.duration, stage.error)
                shown = stage.finished_at or stage.started_at
                # A stage that never ran (skipped) may have no time: it goes after
                # the markers made so far, in stage order.
                ts = _aware(shown) if shown is not None else self._latest
                self._add(_Marker(ts, index, _FINISHED, stage.name, what, shown))

    def _add(self, marker: _Marker) -> None:
        self._latest = max(self._latest, marker.ts)
        self._pending.append(marker)
        self._pending.sort()

    def line(self, line: LogLine) -> None:
        """Print the markers that came before ``line``, then the line."""
        through = next(
            (
                i
                for i, m in enumerate(self._pending)
                if m.kind == _STARTED and m.stage == line.stage
            ),
            -1,
        )
        while self._pending:
            head = self._pending[0]
            ts = _aware(line.ts)
            due = head.ts <= ts if head.kind == _STARTED else head.ts < ts
            if not due and through < 0:
                break
            self._flush_one()
            through -= 1
        self.printer.log_line(line)

    def flush(self) -> None:
        """Print every marker still held (the job has moved on, or ended)."""
        while self._pending:
            self._flush_one()

    def _flush_one(self) -> None:
        marker = self._pending.pop(0)
        shown = marker.ts if marker.kind == _STARTED else marker.shown_ts
        self.printer.marker(shown, marker.stage, marker.what)


def follow_job(
    client: RivetClient, view: JobView, out: Console, after: int = 0, *, utc: bool = False
) -> int:
    """Stream a job's log and stage changes until it ends; the exit code for its status.

    ``view`` is the job as it was before following: its stage names fix the stage
    column, and its markers are placed among the lines already stored."""
    from rivet.protocol import LogLine  # pydantic models load on use

    clock = LogClock(utc=utc, dated=spans_days(view.created_at, view.finished_at, utc=utc))
    order = StoredOrder(LogPrinter(out, clock=clock), view)
    say_waiting(client, view)
    try:
        for item in client.stream_logs(view.id, after):
            if isinstance(item, LogLine):
                order.line(item)
                continue
            order.update(item.job)
            if item.final:
                order.flush()
                _summary(out, item.job)
                return exit_code_for_status(item.job.status)
            # A finished job's state arrives after the first page of its stored lines:
            # its markers wait for the lines after them. A running job's are news.
            if not JobStatus(item.job.status).finished:
                order.flush()
    except KeyboardInterrupt:
        err_console().print()
        err_console().print(
            safe(
                "stopped following; the job keeps running (cancel it with: "
                f"rivet job cancel {short_id(view.id)})",
                "yellow",
            )
        )
        return EXIT_INTERRUPTED
    common.print_error("the log stream ended before the job did")
    return EXIT_FAILED


def follow_json(client: RivetClient, view: JobView, after: int = 0) -> int:
    """``--follow --json``: each log line as one JSON object per line as it arrives
    (the API's shape); the exit code for the job's status."""
    from rivet.protocol import LogLine

    say_waiting(client, view)
    try:
        for item in client.stream_logs(view.id, after):
            if isinstance(item, LogLine):
                echo_json_line(item.model_dump(mode="json"))
            elif item.final:
                return exit_code_for_status(item.job.status)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    common.print_error("the log stream ended before the job did")
    return EXIT_FAILED


def say_waiting(client: RivetClient, view: JobView) -> None:
    """Once, on stderr, before following: why a queued job has no runner, from the
    server's ``waiting`` (:func:`rivet.orchestrator.services.waiting.explain_wait`;
    asked for when ``view`` lacks it, e.g. a launch's answer). Nothing when a matching
    runner is free: it takes the job within its next poll."""
    if JobStatus(view.status) is not JobStatus.QUEUED:
        return
    wait = view.waiting or client.get_job(view.id).waiting
    if wait is not None and wait.reason != "free_runner":
        err_console().print(safe(f"{wait.message}; still following", "yellow"))


def _summary(out: Console, view: JobView) -> None:
    duration = None
    if view.started_at and view.finished_at:
        duration = (view.finished_at - view.started_at).total_seconds()
    print_job_summary(
        out,
        view.status,
        [StageRow.of(s) for s in view.stages],
        dict(view.outputs),
        view.error,
        duration,
    )
