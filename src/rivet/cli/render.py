"""How jobs look in a terminal: log lines, stage markers, the final stage table.

A log line is ``HH:MM:SS.mmm STAGE LEVEL STREAM MESSAGE`` (local time, or UTC with a
``Z``; dated when the log is not all of today: :mod:`rivet.cli.times`; stage padded to
the longest stage name, level padded to 7), coloured by level on a terminal. STREAM
is ``err`` for a line a command wrote to its stderr and blank otherwise (its stdout,
and what Rivet or the pipeline's Lua logged): stderr is logged at the normal level,
since tools write progress there, but stays told apart. The same format is used for
``rivet run`` and ``rivet job logs``.

Every field here came from a job (or the server that stored it), so each one is
shown through :func:`rivet.cli.terminal.visible`: one message is one line, with a
newline in it shown as ``\\n``, and no control character reaches the terminal.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rivet.cli.terminal import safe, visible
from rivet.cli.times import LogClock
from rivet.domain.status import JobStatus, StageStatus
from rivet.engine.events import LogEvent, StageResult

if TYPE_CHECKING:
    from rivet.protocol import LogLine, StageView

__all__ = [
    "LEVEL_STYLES",
    "STATUS_STYLES",
    "LogPrinter",
    "StageRow",
    "finished_text",
    "format_duration",
    "print_outputs",
    "stage_table",
    "status_text",
]

LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "red"}
# Job and stage statuses share their names (StrEnum members compare equal to them).
STATUS_STYLES: dict[str, str] = {
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.CANCELLED: "yellow",
    JobStatus.TIMED_OUT: "bold red",
    "lost": "bold red",  # an attempt's ending (rivet.domain.reliability.AttemptEnd)
    StageStatus.SKIPPED: "dim",
    JobStatus.RUNNING: "cyan",
    StageStatus.PENDING: "dim",
    JobStatus.QUEUED: "dim",
}
LEVEL_WIDTH = 7
STREAM_MARKS = {"stderr": "err"}
STREAM_WIDTH = 3
JOB_LABEL = "job"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {rest:02d}s"


def status_text(status: str) -> Text:
    return safe(status, STATUS_STYLES.get(status, ""))


class LogPrinter:
    """Prints a job's events; a :class:`rivet.engine.events.JobEvents` sink (thread-safe)."""

    def __init__(
        self, console: Console, stage_names: Iterable[str] = (), clock: LogClock | None = None
    ) -> None:
        self.console = console
        self.clock = clock or LogClock()
        self.width = max([len(JOB_LABEL), *(len(visible(n)) for n in stage_names)])
        self._lock = threading.Lock()

    def line(
        self, ts: datetime, stage: str | None, level: str, message: str, stream: str | None = None
    ) -> None:
        label = visible(stage or JOB_LABEL)
        self.width = max(self.width, len(label))
        style = LEVEL_STYLES.get(level, "")
        text = Text()
        text.append(self.clock(ts), style="dim")
        text.append(" ")
        text.append(label.ljust(self.width), style="bold")
        text.append(" ")
        text.append(visible(level).ljust(LEVEL_WIDTH), style=style or "")
        text.append(" ")
        text.append(STREAM_MARKS.get(stream or "", "").ljust(STREAM_WIDTH), style="dim")
        text.append(" ")
        text.append(visible(message), style=style if level != "info" else "")
        with self._lock:
            self.console.print(text)

    def marker(self, ts: datetime | None, stage: str, what: Text) -> None:
        """``TIME STAGE -- what``; ``what`` must be built from sanitized text."""
        label = visible(stage)
        self.width = max(self.width, len(label))
        text = Text()
        text.append(self.clock(ts) if ts else " " * self.clock.width, style="dim")
        text.append(" ")
        text.append(label.ljust(self.width), style="bold")
        text.append(" -- ", style="dim")
        text.append_text(what)
        with self._lock:
            self.console.print(text)

    # --- JobEvents ----------------------------------------------------------------

    def log(self, event: LogEvent) -> None:
        self.line(event.ts, event.stage, event.level, event.message, event.stream)

    def stage_started(self, stage: StageResult) -> None:
        self.marker(stage.started_at, stage.name, Text("started", style="dim"))

    def stage_finished(self, stage: StageResult) -> None:
        what = finished_text(stage.status.value, stage.duration, stage.error)
        self.marker(stage.finished_at or stage.started_at, stage.name, what)

    # --- server log lines ---------------------------------------------------------

    def log_line(self, line: LogLine) -> None:
        self.line(line.ts, line.stage, line.level, line.message, line.stream)


def finished_text(status: str, duration: float | None, error: str | None) -> Text:
    """``succeeded in 1.20s`` / ``failed in 0.31s: why``, for a stage's end marker."""
    what = status_text(status)
    if duration is not None:
        what.append(f" in {format_duration(duration)}", style="dim")
    if error:
        what.append(f": {visible(error)}", style="red")
    return what


@dataclass(frozen=True)
class StageRow:
    name: str
    status: str
    duration: float | None
    error: str | None = None

    @classmethod
    def of(cls, stage: StageResult | StageView) -> StageRow:
        return cls(stage.name, str(stage.status), stage.duration, stage.error)


def stage_table(rows: Iterable[StageRow], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("stage", style="bold")
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("error", overflow="fold")
    any_error = False
    for row in rows:
        any_error = any_error or bool(row.error)
        table.add_row(
            safe(row.name),
            status_text(row.status),
            format_duration(row.duration),
            safe(row.error or "", style="red"),
        )
    if not any_error:
        table.columns.pop()
    return table


def print_outputs(console: Console, outputs: Mapping[str, object]) -> None:
    if not outputs:
        return
    table = Table(title="outputs", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("name", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in sorted(outputs.items()):
        rendered = ("true" if value else "false") if isinstance(value, bool) else str(value)
        table.add_row(safe(name), safe(rendered))
    console.print(table)
