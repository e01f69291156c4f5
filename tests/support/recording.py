"""A thread-safe JobEvents sink that keeps everything, for tests that run jobs."""

from __future__ import annotations

import threading

from rivet.engine.events import LogEvent, StageResult

__all__ = ["EventLog"]


class EventLog:
    def __init__(self) -> None:
        self.lines: list[LogEvent] = []
        self.stages: list[StageResult] = []
        self.lock = threading.Lock()

    def log(self, event: LogEvent) -> None:
        with self.lock:
            self.lines.append(event)

    def stage_started(self, stage: StageResult) -> None:
        pass

    def stage_finished(self, stage: StageResult) -> None:
        with self.lock:
            self.stages.append(stage)

    def messages(self, level: str | None = None) -> list[str]:
        with self.lock:
            return [e.message for e in self.lines if level is None or e.level == level]
