"""A connection to one exec agent: the ``podman exec -i`` process it runs in, the
threads that read its frames and write the runner's, and the commands in flight.

The agent runs inside the job's container, in the job's trust domain: a process of
the job can kill it or stop it (same user), though not reach its pipes or memory
(it is non-dumpable). So everything it sends is checked before it is used
(:func:`~rivet.engine.agent.protocol.check_header` caps every frame by type first),
output is accepted only within the credit granted (so a command's output held here
never exceeds :data:`~rivet.engine.agent.protocol.WINDOW` per stream), and any
breach, an end of its pipe, or silence while commands run (no PONG within
:data:`WEDGE_TIMEOUT`) ends the connection: the agent and the commands it started
are killed and every command in flight fails with the reason
(:attr:`AgentCommand.error`). Nothing here waits on the agent without a bound.

Threads per connection: a reader (frames from the agent), a writer (for the frames
of the reader and the monitor, which must never block on a full pipe; the threads
of commands write theirs directly, under a lock, which saves a thread hop per
command) and one draining the agent's stderr (diagnostics; the last
:data:`_TAIL_BYTES` are kept for error messages). One monitor thread for all
connections pings those with commands in flight.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import queue
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from typing import cast

from rivet.engine.agent import protocol as p
from rivet.engine.agent.streams import AgentCommand, shown
from rivet.engine.backends.marked_processes import kill_marked_processes
from rivet.errors import ContainerError

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "PING_INTERVAL",
    "WEDGE_TIMEOUT",
    "AgentConnection",
    "AgentGone",
]

# A healthy agent answers a PING at once; this much silence while commands run
# means it is stopped or wedged (generous: a loaded 2-core host still answers in ms).
WEDGE_TIMEOUT = 60.0
PING_INTERVAL = 5.0
# Starting an agent is one `podman exec`: under load it can take seconds.
HANDSHAKE_TIMEOUT = 60.0
_CLOSE_GRACE = 5.0
_TAIL_BYTES = 4096
_MONITOR_TICK = 1.0


class AgentGone(ContainerError):
    """The agent cannot be used (any more); the message says why."""


class AgentConnection:
    """One agent, started by :meth:`start`; thread-safe."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: str, marker: str) -> None:
        self._marker = marker
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._commands: dict[int, AgentCommand] = {}
        self._ids = itertools.count(1)
        self._dead: str | None = None
        self._ready = threading.Event()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        self._writing_since: float | None = None
        self._ping_sent: float | None = None
        self._last_ping = 0.0
        self._tail = b""
        self.pid: int | None = None
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            bufsize=0,
            start_new_session=True,  # Ctrl-C is Rivet's to handle (see PodmanBackend.exec)
        )
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._threads = [
            threading.Thread(target=self._read_loop, name="agent-read", daemon=True),
            threading.Thread(target=self._write_loop, name="agent-write", daemon=True),
            threading.Thread(target=self._stderr_loop, name="agent-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def start(
        cls, argv: Sequence[str], env: dict[str, str], cwd: str, marker: str
    ) -> AgentConnection:
        """Start the agent and shake hands; AgentGone says why it failed."""
        try:
            conn = cls(argv, env, cwd, marker)
        except OSError as exc:
            raise AgentGone(f"could not run podman: {exc.strerror}") from None
        conn._send(p.hello())
        if not conn._ready.wait(HANDSHAKE_TIMEOUT) and conn._dead is None:
            conn.fail(f"did not answer within {HANDSHAKE_TIMEOUT:g} s")
        if conn._dead is not None:
            raise AgentGone(conn._dead)
        _monitor.add(conn)
        return conn

    @property
    def alive(self) -> bool:
        return self._dead is None

    @property
    def death(self) -> str | None:
        return self._dead

    def in_flight(self) -> int:
        with self._lock:
            return len(self._commands)

    # -- commands ----------------------------------------------------------------------

    def submit(self, argv: Sequence[str], env: Sequence[str], cwd: str) -> AgentCommand:
        """Start one command; AgentGone when the agent is not alive. Waits (without
        bound, as for any command) while MAX_COMMANDS are in flight."""
        with self._room:
            while len(self._commands) >= p.MAX_COMMANDS and self._dead is None:
                self._room.wait()
            if self._dead is not None:
                raise AgentGone(self._dead)
            command = AgentCommand(self, next(self._ids))
            start = p.encode_start(command.id, argv, env, cwd)  # may refuse: nothing sent
            self._commands[command.id] = command
        self._send(start)
        return command

    def kill(self, command: AgentCommand) -> None:
        """Ask for SIGKILL of the command's process group (no-op once it ended)."""
        if not command.done and self._dead is None:
            self._send(p.kill(command.id))

    def credit(self, command: AgentCommand, stream: int, size: int) -> None:
        with self._lock:
            if self._dead is not None or command.id not in self._commands:
                return
            command.outstanding[stream] += size
        self._send(p.credit(command.id, stream, size))

    def abandon(self, command: AgentCommand) -> None:
        """The caller stops waiting (its timeout passed, or it was interrupted): end
        the command's streams and drop its later output, still giving the room back
        so that the agent can finish it."""
        for stream in (p.STDOUT, p.STDERR):
            held = command.buffer(stream).discard()
            if held:
                self.credit(command, stream, held)
        command.finish()

    # -- ending ------------------------------------------------------------------------

    def fail(self, reason: str, *, removed: bool = False) -> None:
        """End the connection (idempotent): every command in flight fails with
        ``reason`` (or, ``removed``, ends as killed with its container), the agent
        and what it started are killed unless its container is going anyway."""
        with self._lock:
            if self._dead is not None:
                return
            self._dead = reason
            commands = list(self._commands.values())
            self._commands.clear()
            self._room.notify_all()
        _monitor.discard(self)
        self._ready.set()
        for command in commands:
            command.removed = removed
            command.finish(error=None if removed else reason)
        self._outbox.put(None)  # the writer closes the agent's stdin: it ends its commands
        if removed:
            threading.Thread(target=self._reap, daemon=True).start()
            return
        with contextlib.suppress(OSError):
            self._proc.kill()
        # The client's death does not end the agent inside the container (nor a
        # stopped one); its environment marker finds it and its children from here.
        kill_marked_processes(self._marker)
        threading.Thread(target=self._reap, daemon=True).start()

    def close(self) -> None:
        """The container is being removed: end in-flight commands as killed."""
        self.fail("was stopped: its container was removed", removed=True)

    def _reap(self) -> None:
        try:
            self._proc.wait(_CLOSE_GRACE)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _exit_reason(self) -> str:
        try:
            code = self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            code = None
        self._threads[2].join(1.0)
        if code is None:
            why = "died (its output ended)"
        elif code in (137, -9):
            why = "died (killed by SIGKILL, e.g. by a process of the job)"
        else:
            why = f"died (its podman exec ended with exit code {code})"
        lines = [line for line in self._tail.splitlines() if line.strip()]
        tail = shown(lines[-1]) if lines else ""
        return f"{why}: {tail}" if tail else why

    # -- threads -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        # bufsize=0: the pipe is a raw FileIO; read whole frames through a buffer.
        stream = io.BufferedReader(cast(io.RawIOBase, self._proc.stdout), 1 << 17)
        with stream:
            try:
                while True:
                    header = stream.read(p.HEADER.size)
                    if len(header) < p.HEADER.size:
                        break
                    length, kind, which, request_id = p.check_header(header)
                    payload = stream.read(length) if length else b""
                    if len(payload) < length:
                        break
                    self._dispatch(kind, which, request_id, payload)
            except p.ProtocolError as exc:
                self.fail(f"sent an invalid frame ({exc}) and was stopped")
                return
            except (OSError, ValueError) as exc:
                self.fail(f"could not be read ({exc})")
                return
        if self._dead is None:
            self.fail(self._exit_reason())

    def _dispatch(self, kind: int, stream: int, request_id: int, payload: bytes) -> None:
        if kind == p.FATAL:
            self.fail(f"gave up: {shown(payload)}")
            return
        if not self._ready.is_set():
            if kind != p.READY:
                raise p.ProtocolError(f"frame type {kind} before READY")
            self.pid = p.parse_ready(payload)
            self._ready.set()
            return
        if kind == p.READY:
            raise p.ProtocolError("a second READY")
        if kind == p.PONG:
            with self._lock:
                self._ping_sent = None
            return
        give = 0
        with self._lock:
            if self._dead is not None:
                return
            command = self._commands.get(request_id)
            if command is None:
                raise p.ProtocolError(f"a frame for request {request_id}, which is not running")
            if kind == p.DATA:
                if command.ended[stream]:
                    raise p.ProtocolError(f"output after the end of stream {stream}")
                if len(payload) > command.outstanding[stream]:
                    raise p.ProtocolError("more output than the runner made room for")
                command.outstanding[stream] -= len(payload)
                give = command.buffer(stream).feed(payload)
                if give:
                    command.outstanding[stream] += give
            elif kind == p.EOF:
                if command.ended[stream]:
                    raise p.ProtocolError(f"stream {stream} ended twice")
                command.ended[stream] = True
                command.buffer(stream).end()
            elif kind == p.EXIT:
                if not all(command.ended.values()):
                    raise p.ProtocolError("EXIT before the end of both streams")
                code = p.parse_exit(payload)
                del self._commands[request_id]
                self._room.notify()
                command.finish(exit_code=code)
            else:  # ERROR: it could not start; the reason is what the command "printed"
                del self._commands[request_id]
                self._room.notify()
                command.stderr.feed(shown(payload, p.MAX_MESSAGE).encode() + b"\n")
                command.finish(exit_code=126)
        if give:
            self._outbox.put(p.credit(request_id, stream, give))  # never blocks this thread

    def _send(self, data: bytes) -> None:
        """Write a frame from the calling thread (not the reader's: it queues). A full
        pipe blocks the caller until the agent reads, or until the monitor ends an
        agent that stopped reading (the write then fails)."""
        with self._write_lock:
            if self._dead is not None:
                return
            self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._writing_since = time.monotonic()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._proc.stdin.fileno(), view) :]
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "closed"
            self.fail(f"stopped reading its input ({reason})")
        finally:
            self._writing_since = None

    def _write_loop(self) -> None:
        """Frames the reader thread queued, and the end: closing the agent's stdin."""
        assert self._proc.stdin is not None
        while (data := self._outbox.get()) is not None:
            with self._write_lock:
                if self._dead is None:
                    self._write(data)
        with self._write_lock, contextlib.suppress(OSError):
            self._proc.stdin.close()

    def _stderr_loop(self) -> None:
        assert self._proc.stderr is not None
        with self._proc.stderr, contextlib.suppress(OSError, ValueError):
            while chunk := self._proc.stderr.read(_TAIL_BYTES):
                self._tail = (self._tail + chunk)[-_TAIL_BYTES:]

    def tick(self, now: float) -> None:
        """Called about every second by the monitor: ping while commands run, and end
        an agent that stopped answering or reading."""
        with self._lock:
            if self._dead is not None or not self._ready.is_set():
                return
            busy = bool(self._commands)
            sent = self._ping_sent
            writing = self._writing_since
        if writing is not None and now - writing > WEDGE_TIMEOUT:
            self.fail(f"stopped reading its input for {WEDGE_TIMEOUT:g} s and was stopped")
        elif sent is not None and now - sent > WEDGE_TIMEOUT:
            self.fail(f"stopped answering for {WEDGE_TIMEOUT:g} s and was stopped")
        elif busy and sent is None and now - self._last_ping >= PING_INTERVAL:
            with self._lock:
                self._ping_sent = self._last_ping = now
            self._outbox.put(p.ping())  # the monitor must never block


class _Monitor:
    """One daemon thread ticking every live connection."""

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[AgentConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, conn: AgentConnection) -> None:
        with self._lock:
            self._connections.add(conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agent-monitor", daemon=True)
                self._thread.start()

    def discard(self, conn: AgentConnection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _run(self) -> None:
        while True:
            time.sleep(_MONITOR_TICK)
            with self._lock:
                connections = list(self._connections)
            now = time.monotonic()
            for conn in connections:
                conn.tick(now)


_monitor = _Monitor()
