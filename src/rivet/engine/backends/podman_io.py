"""The I/O side of one ``podman exec``: a reader thread per pipe (streamed lines or a
capture under the job's budget) and the watchdog that enforces a command's timeout.

Kept apart from :mod:`rivet.engine.backends.podman` so that the backend reads as the
container lifecycle, and these threads can be reasoned about (and tested) alone.
"""

from __future__ import annotations

import codecs
import os
import subprocess
import threading
from collections.abc import Callable
from typing import IO

from rivet.engine.backends.base import (
    MAX_LINE_BYTES,
    CaptureBudget,
    LineCallback,
    StartFailure,
)
from rivet.engine.backends.marked_processes import kill_marked_processes

__all__ = [
    "KILL_GRACE",
    "READ_CHUNK",
    "StreamReader",
    "Watchdog",
    "give_back",
    "start_failure_of",
]

# How long a killed command's client gets to exit before it is killed too.
KILL_GRACE = 5.0
READ_CHUNK = 65536


class Watchdog:
    """Kills a command inside its container when its timeout expires (killing only the
    ``podman exec`` client would leave it running), then the client after a grace."""

    def __init__(self, proc: subprocess.Popen[bytes], marker: str, timeout: float | None) -> None:
        self.fired = False
        self._proc = proc
        self._marker = marker
        self._done = threading.Event()
        self._timer: threading.Timer | None = None
        if timeout is not None:
            self._timer = threading.Timer(timeout, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        if self._done.is_set():
            return
        self.fired = True
        kill_marked_processes(self._marker)
        if not self._done.wait(KILL_GRACE):
            self._proc.kill()

    def finished(self) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()


class StreamReader:
    """Drains one pipe on its own thread, delivering decoded lines (at most
    MAX_LINE_BYTES each) or collecting the text under a capture budget."""

    def __init__(
        self,
        pipe: IO[bytes],
        callback: LineCallback | None,
        capture: bool,
        budget: CaptureBudget | None = None,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self._pipe = pipe
        self._callback = None if capture else callback
        self._capture = capture
        self._budget = budget
        self._on_overflow = on_overflow
        self._chunks: list[str] = []
        self._error: BaseException | None = None
        # Bytes held against the budget; whether the budget refused this stream.
        self.taken = 0
        self.overflowed = False
        # For join(): reads so far, and whether a callback is running (it may block).
        self._reads = 0
        self._delivering = False
        # The last line seen, streamed or captured (start_failure_of reads it).
        self.last_line = ""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Incremental, so a multi-byte character split by the read limit survives.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with self._pipe:
            if self._capture:
                self._collect(decoder)
                return
            while chunk := self._pipe.readline(MAX_LINE_BYTES):
                self._reads += 1
                text = decoder.decode(chunk)
                if text:
                    self._deliver(text.removesuffix("\n").removesuffix("\r"))
            if tail := decoder.decode(b"", final=True):
                self._deliver(tail)

    def _collect(self, decoder: codecs.IncrementalDecoder) -> None:
        """Capture: store chunks while the budget grants room; after a refusal, drop
        what was stored, stop the command and read on to the end of the pipe (a pipe
        nobody reads would block the command before it can be stopped)."""
        fd = self._pipe.fileno()
        while chunk := os.read(fd, READ_CHUNK):
            self._reads += 1
            if self.overflowed:
                continue
            if self._budget is not None and not self._budget.take(len(chunk)):
                self.overflowed = True
                self._chunks.clear()
                self._budget.give_back(self.taken)
                self.taken = 0
                if self._on_overflow is not None:
                    self._on_overflow()
                continue
            self.taken += len(chunk)
            self._chunks.append(decoder.decode(chunk))
        if not self.overflowed:
            self._chunks.append(decoder.decode(b"", final=True))

    def _deliver(self, line: str) -> None:
        self.last_line = line
        callback = self._callback
        if callback is None or self._error is not None:
            return
        self._delivering = True
        try:
            callback(line)
        except BaseException as exc:
            # Keep draining: a stalled pipe would block the command in the container.
            self._error = exc
        finally:
            self._delivering = False

    def join(self, grace: float, *, patient: bool = True) -> None:
        """Wait for the end of the pipe. The pipe closes when the client exits; the
        grace only guards against a stray podman helper inheriting it, so a reader
        that made progress or is inside a callback (which blocks while the log
        buffer is full) is waited for as long as it takes, unless not ``patient``."""
        reads = -1
        while True:
            self._thread.join(grace)
            if not self._thread.is_alive() or not patient:
                return
            if not self._delivering and self._reads == reads:
                return
            reads = self._reads

    def text(self) -> str:
        return "".join(self._chunks)

    def final_line(self) -> str:
        """The stream's last line: the last one delivered, or of the captured text."""
        if self._capture:
            return self.text().rstrip("\r\n").rpartition("\n")[2]
        return self.last_line

    def raise_callback_error(self) -> None:
        if self._error is not None:
            raise self._error


def give_back(budget: CaptureBudget | None, *readers: StreamReader) -> None:
    if budget is not None:
        budget.give_back(sum(r.taken for r in readers))


# Podman's own last words when the runtime could not start an exec'd program (its
# errors ErrOCIRuntimeNotFound and ErrOCIRuntimePermissionDenied end the message
# whatever the runtime, runc or crun), with exit 127 and 126.
_START_FAILURES: dict[int, tuple[str, StartFailure]] = {
    127: ("OCI runtime attempted to invoke a command that was not found", "not found"),
    126: ("OCI permission denied", "not executable"),
}


def start_failure_of(exit_code: int, program: str, stderr_tail: str) -> StartFailure | None:
    """Whether ``podman exec`` failed to start ``program``: exit 127 or 126 with
    Podman's error naming the program as the last line of stderr. A command that
    ran and exited 127 itself (``sh -c nope``) leaves no such line."""
    known = _START_FAILURES.get(exit_code)
    if known is None:
        return None
    suffix, failure = known
    tail = stderr_tail.strip()
    if tail.startswith("Error: ") and tail.endswith(suffix) and program in tail:
        return failure
    return None
