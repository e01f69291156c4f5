"""The I/O side of one command: a reader thread per stream (streamed lines or a
capture under the job's budget) and the watchdog that enforces the timeout of a
``podman exec``. The readers serve both exec paths: a ``podman exec`` pipe, or a
stream of the exec agent (:mod:`rivet.engine.agent.client`), so that lines, capture
and overflow behave the same whichever ran the command.

Kept apart from :mod:`rivet.engine.backends.podman` so that the backend reads as the
container lifecycle, and these threads can be reasoned about (and tested) alone.
"""

from __future__ import annotations

import codecs
import io
import os
import threading
from collections.abc import Callable
from typing import IO

from rivet.engine.backends.base import (
    MAX_LINE_BYTES,
    CaptureBudget,
    ExecRequest,
    ExecResult,
    LineCallback,
    StartFailure,
)
from rivet.engine.backends.workers import TimerHandle, call_later, run_in_thread

__all__ = [
    "KILL_GRACE",
    "READ_CHUNK",
    "TIMEOUT_EXIT_CODE",
    "CommandStreams",
    "StreamReader",
    "Watchdog",
    "start_failure_of",
]

# The exit code of a command killed for its timeout (coreutils' timeout(1) uses it).
TIMEOUT_EXIT_CODE = 124
# How long a killed command's client gets to exit before it is killed too.
KILL_GRACE = 5.0
READ_CHUNK = 65536


class Watchdog:
    """Enforces a command's timeout on a timer thread: ``stop`` kills the command inside
    its container (killing only a ``podman exec`` client would leave it running); if
    the command has not ended KILL_GRACE later, ``give_up`` stops the wait for it."""

    def __init__(
        self, timeout: float | None, stop: Callable[[], None], give_up: Callable[[], None]
    ) -> None:
        self.fired = False
        self._stop = stop
        self._give_up = give_up
        self._done = threading.Event()
        self._timer: TimerHandle | None = None
        if timeout is not None:
            self._timer = call_later(timeout, self._expire)

    def _expire(self) -> None:
        if self._done.is_set():
            return
        self.fired = True
        self._stop()
        if not self._done.wait(KILL_GRACE):
            self._give_up()

    def finished(self) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()


class StreamReader:
    """Drains one pipe on a thread of its own (pooled: see :mod:`.workers`), delivering
    decoded lines (at most MAX_LINE_BYTES each) or collecting the text under a
    capture budget."""

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
        self._ended = threading.Event()
        run_in_thread(self._drain)

    def _drain(self) -> None:
        try:
            self._run()
        finally:
            self._ended.set()

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
                    self.last_line = text.removesuffix("\n").removesuffix("\r")
                    if self._callback is not None:
                        self._deliver(self._callback, self.last_line)
            if tail := decoder.decode(b"", final=True):
                self.last_line = tail
                if self._callback is not None:
                    self._deliver(self._callback, tail)

    def _collect(self, decoder: codecs.IncrementalDecoder) -> None:
        """Capture: store chunks while the budget grants room; after a refusal, drop
        what was stored, stop the command and read on to the end of the pipe (a pipe
        nobody reads would block the command before it can be stopped)."""
        while chunk := self._read_chunk():
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

    def _read_chunk(self) -> bytes:
        # One read of what is there, never waiting for READ_CHUNK bytes to gather.
        if isinstance(self._pipe, io.BufferedIOBase):
            return self._pipe.read1(READ_CHUNK)
        return os.read(self._pipe.fileno(), READ_CHUNK)

    def _deliver(self, callback: Callable[[str], None], line: str) -> None:
        if self._error is not None:
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
            if self._ended.wait(grace) or not patient:
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


class CommandStreams:
    """The stdout and stderr readers of one command (either exec path), with the
    request's callbacks, capture flags and budget; ``on_overflow`` stops the command."""

    def __init__(
        self,
        stdout: IO[bytes],
        stderr: IO[bytes],
        request: ExecRequest,
        on_overflow: Callable[[], None],
    ) -> None:
        self._budget = request.capture_budget
        self.out = StreamReader(
            stdout, request.on_stdout, request.capture_stdout, self._budget, on_overflow
        )
        self.err = StreamReader(
            stderr, request.on_stderr, request.capture_stderr, self._budget, on_overflow
        )

    def abandon(self) -> None:
        """The caller was interrupted: wait only briefly, give the room back."""
        self.out.join(KILL_GRACE, patient=False)
        self.err.join(KILL_GRACE, patient=False)
        self.give_back()

    def drain(self) -> None:
        """Wait until every line is delivered, also when delivery is slow (a full log
        buffer while the server is away): later lines of the job must not overtake
        this command's output. Then raise a callback's error (room given back)."""
        self.out.join(KILL_GRACE)
        self.err.join(KILL_GRACE)
        try:
            self.out.raise_callback_error()
            self.err.raise_callback_error()
        except BaseException:
            self.give_back()
            raise

    def give_back(self) -> None:
        if self._budget is not None:
            self._budget.give_back(self.out.taken + self.err.taken)

    def result(self, exit_code: int, timed_out: bool, program: str) -> ExecResult:
        out, err = self.out, self.err
        return ExecResult(
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            captured_bytes=out.taken + err.taken,
            capture_overflow="stdout" if out.overflowed else "stderr" if err.overflowed else None,
            start_failure=start_failure_of(exit_code, program, err.final_line()),
        )


# The last words of whoever could not start an exec'd program, with exit 127 and 126:
# Podman's errors ErrOCIRuntimeNotFound and ErrOCIRuntimePermissionDenied (whatever
# the runtime, runc or crun) on the podman-exec path, and the exec agent's own
# (rivet-agent.c, exec_search) on the agent path.
_PODMAN_START_FAILURES: dict[int, tuple[str, StartFailure]] = {
    127: ("OCI runtime attempted to invoke a command that was not found", "not found"),
    126: ("OCI permission denied", "not executable"),
}
_AGENT_PREFIX = "rivet-agent: exec: "


def start_failure_of(exit_code: int, program: str, stderr_tail: str) -> StartFailure | None:
    """Whether ``program`` could not be started: exit 127 or 126 with the error of
    Podman or of the exec agent naming the program as the last line of stderr. A
    command that ran and exited 127 itself (``sh -c nope``) leaves no such line."""
    known = _PODMAN_START_FAILURES.get(exit_code)
    if known is None:
        return None
    suffix, failure = known
    tail = stderr_tail.strip()
    if tail.startswith("Error: ") and tail.endswith(suffix) and program in tail:
        return failure
    if tail.startswith(f'{_AGENT_PREFIX}"{program}": '):
        return failure
    return None
