"""Commands through the exec agent: one small static process per container, started
once with ``podman exec -i``, that forks each command (see
``rivet/engine/agent/rivet-agent.c``). A command then costs a fork and an exec
inside the container instead of a whole ``podman exec``; it still runs with the
container's namespaces, cgroup, seccomp profile, capabilities and user, because the
agent was started like any command.

:class:`AgentPool` is what :class:`~rivet.engine.backends.podman.PodmanBackend` uses:
``mount_args`` at start (the binary, read-only at :data:`AGENT_IN_CONTAINER`, like
catatonit), ``started`` once the container runs, ``exec`` per command (None: run it
with ``podman exec``), ``forget`` when the container goes. Per container:

- the agent starts on the first command; one that cannot start (or no binary on
  this runner) sends the container's commands to ``podman exec``, said once in the
  job's log (``ExecRequest.on_notice``) and in the runner's;
- an agent that dies, breaks the protocol or stops answering fails the commands in
  flight with the reason (a ContainerError naming the container) and kills them; the
  next command restarts it (said in the log), up to :data:`MAX_RESTARTS` times, then
  ``podman exec`` takes over;
- a container being removed ends its commands as killed (exit 137), as the
  ``podman exec`` clients of removed containers end.

The semantics are those of the ``podman exec`` path (:mod:`.podman_io` does the
stream splitting, capture budget and overflow for both): exit code or 128 + signal,
timeout → SIGKILL of the command's process group inside the container, plus the
environment-marker kill from the host (which also catches children that left the
group), exit 124 and ``timed_out``; environment and secrets travel over the pipe.
"""

from __future__ import annotations

import io
import logging
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rivet.engine.agent import protocol
from rivet.engine.agent.build import AgentBinary, locate
from rivet.engine.agent.client import AgentConnection, AgentGone
from rivet.engine.agent.streams import AgentCommand
from rivet.engine.backends.base import ExecRequest, ExecResult, RunningContainer
from rivet.engine.backends.catatonit import is_static_elf
from rivet.engine.backends.marked_processes import kill_marked_processes
from rivet.engine.backends.podman_io import TIMEOUT_EXIT_CODE, CommandStreams, Watchdog

__all__ = ["AGENT_ID_VAR", "AGENT_IN_CONTAINER", "MAX_RESTARTS", "AgentPool"]

# A bind mount directly under "/": a mount point cannot be renamed or removed (EBUSY),
# so a job cannot move it aside and plant its own program for the next start. (Inside
# /.rivet it could: the directory itself is the image's and may be renamed.)
AGENT_IN_CONTAINER = "/.rivet-agent"
AGENT_ID_VAR = "RIVET_AGENT_ID"
MAX_RESTARTS = 3
# A command killed with its container ends as SIGKILL ends a process.
_KILLED_EXIT_CODE = 137

log = logging.getLogger("rivet.podman")

Notice = Callable[[str], None] | None


@dataclass
class _Entry:
    """One container's agent state; ``conn`` and ``closed`` under the pool's lock."""

    container: RunningContainer
    disabled: str | None = None  # why its commands go to podman exec
    told: bool = False
    deaths: int = 0
    conn: AgentConnection | None = None
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class AgentPool:
    """The agents of one backend's containers. ``binary``: None to build or find the
    cached one (:func:`rivet.engine.agent.build.locate`), or a prebuilt static binary."""

    def __init__(self, podman: str, env: dict[str, str], cwd: str, binary: Path | None) -> None:
        self._podman = podman
        self._env = env
        self._cwd = cwd
        self._given = binary
        self._binary: AgentBinary | None = None
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        # Commands run through an agent, and those of containers with an agent entry
        # that went to podman exec instead (tests assert on these).
        self._counts = {"agent": 0, "fallback": 0}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def _count(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def binary(self) -> AgentBinary:
        with self._lock:
            if self._binary is None:
                if self._given is None:
                    self._binary = locate()
                elif ":" in str(self._given) or not is_static_elf(self._given):
                    self._binary = AgentBinary(None, f"{self._given} is not a static executable")
                else:
                    self._binary = AgentBinary(self._given.resolve())
            return self._binary

    def mount_args(self) -> list[str]:
        path = self.binary().path
        if path is None or ":" in str(path):
            return []
        return ["-v", f"{path}:{AGENT_IN_CONTAINER}:ro"]

    def started(self, container: RunningContainer) -> None:
        binary = self.binary()
        entry = _Entry(container)
        if binary.path is None:
            entry.disabled = (
                f"the exec agent is not available on this runner ({binary.problem}); "
                "commands run with podman exec (slower)"
            )
        with self._lock:
            self._entries[container.id] = entry

    def forget(self, container_id: str) -> None:
        with self._lock:
            entry = self._entries.pop(container_id, None)
        if entry is not None:
            self._close(entry)

    def forget_where(self, wanted: Callable[[RunningContainer], bool]) -> None:
        with self._lock:
            gone = [e for e in self._entries.values() if wanted(e.container)]
            for entry in gone:
                del self._entries[entry.container.id]
        for entry in gone:
            self._close(entry)

    def _close(self, entry: _Entry) -> None:
        with self._lock:
            entry.closed = True
            conn, entry.conn = entry.conn, None
        if conn is not None:
            conn.close()

    def uses_agent(self, container: RunningContainer) -> bool:
        """Whether the container's commands currently go through a live agent."""
        with self._lock:
            entry = self._entries.get(container.id)
            return entry is not None and entry.conn is not None and entry.conn.alive

    # -- exec --------------------------------------------------------------------------

    def exec(
        self, container: RunningContainer, request: ExecRequest, marker: str
    ) -> ExecResult | None:
        """Run the request through the container's agent; None when it has none (the
        caller runs ``podman exec``). Raises ContainerError when the agent failed
        while the command ran."""
        with self._lock:
            entry = self._entries.get(container.id)
        if entry is None:
            return None
        env = [f"{k}={v}" for k, v in request.env.items()]
        env += [f"{k}={v}" for k, v in request.secret_env.items()]
        env.append(marker)  # last, so that no variable of the request can hide it
        for attempt in (1, 2):
            conn = self._connection(entry, request.on_notice)
            if conn is None:
                # Only a disabled agent is a fallback: the podman exec of a container
                # removed or stopped meanwhile just fails, as it did before agents.
                if entry.disabled is not None:
                    self._count("fallback")
                return None
            try:
                command = conn.submit(request.argv, env, request.cwd)
            except AgentGone:
                if attempt == 2:
                    raise
                continue  # it died before this command reached it: restart, once
            self._count("agent")
            return _run(conn, command, request, marker, container.name)
        return None

    def _connection(self, entry: _Entry, notice: Notice) -> AgentConnection | None:
        name = entry.container.name
        with entry.lock:
            with self._lock:
                if entry.closed:
                    return None
                conn = entry.conn
            if conn is not None and conn.alive:
                return conn
            note = None
            if conn is not None:
                entry.deaths += 1
                if entry.deaths > MAX_RESTARTS:
                    entry.disabled = (
                        f"the exec agent in container {name} died {entry.deaths} times "
                        f"(last: it {conn.death}); its commands run with podman exec from "
                        "now on (slower)"
                    )
                else:
                    note = f"the exec agent in container {name} {conn.death}; restarted it"
            if entry.disabled is not None:
                if not entry.told:
                    entry.told = True
                    _tell(notice, entry.disabled)
                return None
            marker = f"{AGENT_ID_VAR}={uuid.uuid4().hex}"
            try:
                argv = self._argv(entry.container, marker)
                conn = AgentConnection.start(argv, self._env, self._cwd, marker)
            except AgentGone as exc:
                with self._lock:
                    if entry.closed:
                        return None
                if not self._running(entry.container):
                    # Removed or stopped meanwhile (a cancel racing the container's
                    # start): no fault of the agent's. This command goes to podman
                    # exec, which fails as it always did; nothing is disabled or said.
                    return None
                entry.disabled = (
                    f"the exec agent could not start in container {name} (it {exc}); "
                    "its commands run with podman exec (slower)"
                )
                entry.told = True
                _tell(notice, entry.disabled)
                return None
            with self._lock:
                if entry.closed:
                    conn.close()
                    return None
                entry.conn = conn
            if note is not None:
                _tell(notice, note)
            return conn

    def _running(self, container: RunningContainer) -> bool:
        """Whether the container still runs (True when podman cannot tell: then the
        agent's failure is its own)."""
        try:
            out = subprocess.run(
                [self._podman, "container", "inspect", "--format", "{{.State.Running}}",
                 container.id],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self._env,
                cwd=self._cwd, timeout=60, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return True
        if out.returncode != 0:
            return "no such" not in out.stderr.lower()
        return out.stdout.strip() != "false"

    def _argv(self, container: RunningContainer, marker: str) -> list[str]:
        # -i: the protocol is on stdin; no detach keys, which would otherwise be
        # looked for in it; workdir "/", which exists before the workspace is handed
        # to a fresh user namespace.
        return [
            self._podman, "exec", "-i", "--detach-keys", "", "--workdir", "/",
            "--env", marker, container.id, AGENT_IN_CONTAINER,
        ]  # fmt: skip


def _tell(notice: Notice, message: str) -> None:
    log.warning("%s", message)
    if notice is not None:
        notice(message)


def _run(
    conn: AgentConnection,
    command: AgentCommand,
    request: ExecRequest,
    marker: str,
    where: str,
) -> ExecResult:
    def stop_command() -> None:
        conn.kill(command)
        kill_marked_processes(marker)

    def overflow() -> None:
        threading.Thread(target=stop_command, daemon=True).start()

    streams = CommandStreams(
        _buffered(command.stdout), _buffered(command.stderr), request, overflow
    )
    # The timeout kills the command's process group (and, from the host, what left
    # it); without a confirmation from the agent, the wait for it ends regardless.
    deadline = Watchdog(request.timeout, stop_command, lambda: conn.abandon(command))
    try:
        command.wait()
        deadline.finished()
    except BaseException:
        deadline.finished()
        # Ctrl-C in the caller: do not leave the command running in the container.
        stop_command()
        conn.abandon(command)
        streams.abandon()
        raise
    streams.drain()
    if command.error is not None and not deadline.fired:
        streams.give_back()
        kill_marked_processes(marker)  # it may still run, orphaned, in the container
        raise AgentGone(
            f"the exec agent in container {where} {command.error}; the command's "
            "result is lost (the next command restarts the agent)"
        )
    if deadline.fired:
        exit_code = TIMEOUT_EXIT_CODE
    elif command.removed:
        exit_code = _KILLED_EXIT_CODE
    else:
        assert command.exit_code is not None
        exit_code = command.exit_code
    return streams.result(exit_code, deadline.fired, request.argv[0])


def _buffered(stream: io.RawIOBase) -> io.BufferedReader:
    return io.BufferedReader(stream, protocol.MAX_DATA)
