"""Recorders for tests that run jobs: the one :class:`EventLog` (a ``JobEvents``
sink that keeps everything) and :class:`RecordingPodman` (the real backend,
remembering what it was asked to start). For a backend that runs nothing, use
:class:`rivet.engine.backends.fake.FakeBackend`, which records every call itself."""

from __future__ import annotations

import threading
import time

from rivet.domain.status import StageStatus
from rivet.engine.backends.base import ContainerSpec, RunningContainer
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.events import LogEvent, StageResult

__all__ = ["EventLog", "RecordingPodman"]


class EventLog:
    """Thread-safe, like every sink must be.

    ``lines``: the log events in the order they arrived, ``arrivals`` the
    ``time.monotonic()`` of each; ``transitions``: ``(stage, status)`` at every
    ``stage_started`` and ``stage_finished`` (the executor mutates its
    ``StageResult``, so the status is copied when it is reported); ``stages``: the
    finished stages."""

    def __init__(self) -> None:
        self.lines: list[LogEvent] = []
        self.arrivals: list[float] = []
        self.transitions: list[tuple[str, StageStatus]] = []
        self.stages: list[StageResult] = []
        self.lock = threading.Lock()

    def log(self, event: LogEvent) -> None:
        with self.lock:
            self.lines.append(event)
            self.arrivals.append(time.monotonic())

    def stage_started(self, stage: StageResult) -> None:
        with self.lock:
            self.transitions.append((stage.name, stage.status))

    def stage_finished(self, stage: StageResult) -> None:
        with self.lock:
            self.transitions.append((stage.name, stage.status))
            self.stages.append(stage)

    def messages(self, level: str | None = None) -> list[str]:
        """The messages logged so far, at ``level`` only when it is given."""
        with self.lock:
            return [e.message for e in self.lines if level is None or e.level == level]

    def text(self) -> str:
        """Every message, one per line."""
        return "\n".join(self.messages())


class RecordingPodman(PodmanBackend):
    """The real Podman backend, remembering every spec it was asked to start (so a
    test can show that a refusal came before any container)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[ContainerSpec] = []

    def start(self, spec: ContainerSpec) -> RunningContainer:
        self.started.append(spec)
        return super().start(spec)
