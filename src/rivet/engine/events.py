"""What the executor reports while a job runs, and the job's result.

The executor calls a :class:`JobEvents` sink from the job's thread and, for process
output, from reader threads: implementations must be thread-safe. The sequence
numbers of log lines are assigned by the executor: per job, from 1, without gaps.

A :class:`LogEvent` message is one line: it never contains a line break (``\n``,
``\r``, ``\x0b``, ``\x0c``, ``\x1c``-``\x1e``, ``\x85``, U+2028, U+2029) and is at
most :data:`~rivet.limits.MAX_LOG_MESSAGE` long (the server's cap on a line);
:func:`log_lines` cuts a message into such lines. So no message can imitate another
log line (with its own time, stage and level) in any renderer, and every stored line
is bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from rivet.domain.inputs import InputValue
from rivet.domain.status import JobStatus, StageStatus
from rivet.limits import MAX_LOG_MESSAGE

__all__ = [
    "LEVEL_NAMES",
    "CancelToken",
    "JobEvents",
    "JobResult",
    "Level",
    "LogEvent",
    "StageResult",
    "Stream",
    "log_lines",
    "utcnow",
]

Level = Literal["debug", "info", "warning", "error"]
# Which pipe of a command a line came from; None for what Rivet or the pipeline's Lua
# logged. Shown beside the level: a tool's stderr is not an error by itself.
Stream = Literal["stdout", "stderr"]

# The level names pipeline code may use (``log.warn``, ``stdout_level = "warn"``…).
LEVEL_NAMES: dict[str, Level] = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def log_lines(message: str, limit: int = MAX_LOG_MESSAGE) -> list[str]:
    """``message`` as log lines: cut at every line break (``str.splitlines``: ``\r\n``
    counts once, a trailing break adds no empty line), and lines longer than
    ``limit`` cut into pieces of ``limit`` characters. An empty message is one empty
    line."""
    lines: list[str] = []
    for line in message.splitlines() or [""]:
        if len(line) <= limit:
            lines.append(line)
        else:
            lines += [line[i : i + limit] for i in range(0, len(line), limit)]
    return lines


@dataclass(frozen=True)
class LogEvent:
    seq: int
    ts: datetime
    stage: str | None
    level: Level
    message: str
    stream: Stream | None = None


@dataclass
class StageResult:
    name: str
    status: StageStatus = StageStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass
class JobResult:
    status: JobStatus
    stages: list[StageResult] = field(default_factory=list)
    outputs: dict[str, InputValue] = field(default_factory=dict)
    error: str | None = None


class JobEvents(Protocol):
    """Receives a job's progress; every method must be thread-safe and must not raise."""

    def log(self, event: LogEvent) -> None: ...

    def stage_started(self, stage: StageResult) -> None: ...

    def stage_finished(self, stage: StageResult) -> None: ...


class CancelToken:
    """Set from any thread (Ctrl-C, a cancel from the server); the executor stops the
    running process, removes the job's containers and marks the job cancelled."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self.reason = "job cancelled"
        # Set by a timeout (the job's or a stage's): the job ends ``timed_out``.
        self.timed_out = False

    def cancel(self, reason: str = "job cancelled", *, timed_out: bool = False) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self.timed_out = timed_out
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(reason)

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self.reason)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
