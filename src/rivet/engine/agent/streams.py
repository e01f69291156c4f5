"""The runner's side of one command in flight through an exec agent: its two output
streams as readable files, fed by the connection's reader thread and handing the
room they free back to the agent as credit, and its outcome.

Split from :mod:`.client` (the connection: threads, frames, failure), which is the
only producer of these objects.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from rivet.engine.agent import protocol as p

__all__ = ["AgentCommand", "Creditor", "StreamBuffer", "shown"]


class Creditor(Protocol):
    """What a command needs of its connection: to give room back to the agent."""

    def credit(self, command: AgentCommand, stream: int, size: int) -> None: ...


def shown(data: bytes | str, limit: int = 300) -> str:
    """Untrusted text made safe for one log line: decoded, control characters
    replaced, cut to ``limit`` characters."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[:limit] + "…"


class StreamBuffer(io.RawIOBase):
    """One stream of one command as a readable raw file: the chunks the reader thread
    received, handed to the consumer in order; the room they took is given back to
    the agent (``give``) as the consumer reads them."""

    def __init__(self, give: Callable[[int], None]) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._offset = 0
        self._ended = False
        self._discard = False
        self._unreturned = 0
        self._give = give

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        with self._cond:
            while not self._chunks and not self._ended:
                self._cond.wait()
            if not self._chunks:
                return 0
            chunk = self._chunks[0]
            size = min(len(view), len(chunk) - self._offset)
            view[:size] = chunk[self._offset : self._offset + size]
            self._offset += size
            if self._offset == len(chunk):
                self._chunks.popleft()
                self._offset = 0
            self._unreturned += size
            give = 0
            # Half a window at a time, or whenever the buffer runs dry (so the agent
            # is never left without room while this side waits for data).
            if not self._ended and (self._unreturned >= p.WINDOW // 2 or not self._chunks):
                give, self._unreturned = self._unreturned, 0
        if give:
            self._give(give)
        return size

    def feed(self, data: bytes) -> int:
        """Add a chunk (reader thread); returns bytes to give back at once (when the
        consumer is gone)."""
        with self._cond:
            if self._discard:
                return len(data)
            self._chunks.append(data)
            self._cond.notify()
            return 0

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def discard(self) -> int:
        """Nobody will read on: drop what is held and end the stream; returns the room
        to give back."""
        with self._cond:
            held = sum(len(c) for c in self._chunks) - self._offset + self._unreturned
            self._chunks.clear()
            self._offset = self._unreturned = 0
            self._discard = True
            self._ended = True
            self._cond.notify_all()
            return held


class AgentCommand:
    """One command in flight. Its streams are :class:`StreamBuffer`; :meth:`wait`
    returns once it exited (:attr:`exit_code`), failed (:attr:`error`), was killed
    with its container (:attr:`removed`) or was abandoned."""

    def __init__(self, connection: Creditor, request_id: int) -> None:
        self.id = request_id
        self.stdout = StreamBuffer(lambda n: connection.credit(self, p.STDOUT, n))
        self.stderr = StreamBuffer(lambda n: connection.credit(self, p.STDERR, n))
        self.exit_code: int | None = None
        self.error: str | None = None
        self.removed = False
        # Guarded by the connection's lock: room the agent may still use per stream.
        self.outstanding = {p.STDOUT: p.WINDOW, p.STDERR: p.WINDOW}
        self.ended = {p.STDOUT: False, p.STDERR: False}
        self._done = threading.Event()

    def buffer(self, stream: int) -> StreamBuffer:
        return self.stdout if stream == p.STDOUT else self.stderr

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def finish(self, exit_code: int | None = None, error: str | None = None) -> None:
        if self._done.is_set():
            return
        self.exit_code, self.error = exit_code, error
        self.stdout.end()
        self.stderr.end()
        self._done.set()
