"""Supervised child processes: started in order, each waited for until ready,
watched for crashes, stopped in the reverse order.

A child's output goes to a private log file (0600: it may hold what a job printed);
it runs in its own session, so a Ctrl-C on the terminal reaches only the supervising
process, which then stops the children itself. A child that exits while it should be
running raises :class:`Crashed`, whose message ends with the tail of its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from rivet.errors import RivetError
from rivet.home import open_private_append
from rivet.settings.model import UP_START_SECONDS

__all__ = ["STOP_GRACE", "Child", "ChildSpec", "Crashed", "Supervisor"]

STOP_GRACE = 10.0
POLL = 0.1


@dataclass(frozen=True)
class ChildSpec:
    """How to start and stop one child. ``umask`` -1 keeps the supervisor's; with
    ``second_signal_after`` the child gets SIGTERM again after that many seconds (the
    runner: the first drains, the second cancels the running jobs); SIGKILL follows
    ``stop_grace`` seconds after the last SIGTERM."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    umask: int = -1
    stop_grace: float = STOP_GRACE
    second_signal_after: float | None = None


class Child:
    """A running child process whose output goes to its log file."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.log_path = spec.log_path
        self._log: IO[bytes] = os.fdopen(open_private_append(spec.log_path), "ab")
        try:
            self.proc = subprocess.Popen(
                spec.argv,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=spec.umask,
            )
        except BaseException:
            self._log.close()
            raise

    def exited(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        """SIGTERM (again after ``second_signal_after`` s), SIGKILL after the grace."""
        spec = self.spec
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if spec.second_signal_after is not None and not self._wait(spec.second_signal_after):
                self.proc.send_signal(signal.SIGTERM)
            if not self._wait(spec.stop_grace):
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


class Crashed(RivetError):
    """A supervised child exited while it should have been running."""

    def __init__(self, child: Child) -> None:
        super().__init__(
            f"the {child.name} exited with status {child.exited()}; end of {child.log_path}:\n"
            + child.tail()
        )
        self.child = child


class Supervisor:
    """Children started in order and stopped in reverse order on leaving the ``with``
    block, whatever happened. ``stopping`` says when a stop was asked for (a signal);
    every wait ends as soon as it does."""

    def __init__(
        self, stopping: Callable[[], bool], *, start_timeout: float = UP_START_SECONDS
    ) -> None:
        self.stopping = stopping
        self.start_timeout = start_timeout
        self.children: list[Child] = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(self, spec: ChildSpec, ready: Callable[[], bool], what: str) -> bool:
        """Start a child and wait until ``ready()``; False when a stop was asked for
        first. Raises :class:`Crashed` if it exits, ``RivetError`` after
        ``start_timeout`` seconds (naming ``what`` it waited for and the log)."""
        child = Child(spec)
        self.children.append(child)
        deadline = time.monotonic() + self.start_timeout
        while not self.stopping():
            if child.exited() is not None:
                raise Crashed(child)
            if ready():
                return True
            if time.monotonic() > deadline:
                raise RivetError(f"timed out waiting for the {what}; see {child.log_path}")
            time.sleep(POLL)
        return False

    def watch(self, interval: float = 0.2) -> None:
        """Until a stop is asked for; raises :class:`Crashed` when a child exits."""
        while not self.stopping():
            for child in self.children:
                if child.exited() is not None:
                    raise Crashed(child)
            time.sleep(interval)

    def stop_all(self) -> None:
        """Stop every child, the last started first (each one's rules: ChildSpec)."""
        while self.children:
            self.children.pop().stop()
