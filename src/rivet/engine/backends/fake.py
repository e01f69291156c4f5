"""A fake container backend: in memory and deterministic, for tests only.

:class:`FakeBackend` keeps the whole contract of
:class:`~rivet.engine.backends.base.ContainerBackend` (see that module) without
running anything, so the executor's rules (stage order, the container stack,
cleanup on failure and cancel, timeouts, parallel commands) can be tested in fast
unit tests. Podman stays the real backend of the integration and end-to-end tests,
and ``tests/integration/test_backend_contract.py`` runs the same behavioural checks
against both, which is what shows this fake is faithful. Never use it to run jobs.

What it does instead of Podman:

- **Commands are scripted.** :meth:`FakeBackend.script` says what a program does:
  its exit code, the text it writes to stdout and stderr, how long it takes
  (virtual seconds: nothing sleeps, a ``timeout`` below it ends the command with
  exit 124 at once) or a :class:`threading.Event` it waits for in real time (until
  it is set, the command's container is removed, or its timeout passes). ``true``,
  ``false``, ``echo`` and ``sleep SECONDS`` are scripted from the start; any other
  program is not found, like a program missing from an image: exit 127 with
  ``start_failure = "not found"`` and a line saying that nothing was scripted for
  it. ``FakeCommand(start_failure="not executable")`` gives exit 126.
- **Output goes through the contract's rules**: written text is cut into lines as
  Podman's reader cuts it (at most :data:`MAX_LINE_BYTES` a piece, ``\\n`` and a
  trailing ``\\r`` removed), stdout's lines are delivered before stderr's, a capture
  takes room from the request's :class:`CaptureBudget` and a refused capture stops
  the command (exit 137) with ``capture_overflow`` set.
- **Containers are records.** ``start`` checks what Podman would refuse (an image
  that is absent, a workspace that is missing or has a ``:``), allocates a fresh
  :class:`IdMap` for ``userns = "auto"`` (and reuses a given one), and chowns
  nothing. Exec into a removed container exits 125, and removing a container ends
  its waiting commands with exit 137 (Podman says 137, or 255 when it loses the
  race with the removal).
- **Every call is recorded** in :attr:`FakeBackend.calls`, in order, with the
  specs and requests in :attr:`specs` and :attr:`requests`; :attr:`running` and
  :attr:`peak` count the commands in flight, and :meth:`wait_for` lets a test wait
  (without sleeping) until a condition on the fake holds.
"""

from __future__ import annotations

import codecs
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from rivet.domain.env_names import is_env_name, shown_name
from rivet.engine.backends.base import (
    MAX_LINE_BYTES,
    CaptureBudget,
    ContainerSpec,
    ExecRequest,
    ExecResult,
    IdMap,
    LineCallback,
    RunningContainer,
    StartFailure,
)
from rivet.errors import ContainerError

__all__ = [
    "KILLED_EXIT_CODE",
    "NOT_EXECUTABLE_EXIT_CODE",
    "NOT_FOUND_EXIT_CODE",
    "NO_CONTAINER_EXIT_CODE",
    "TIMEOUT_EXIT_CODE",
    "FakeBackend",
    "FakeCall",
    "FakeCommand",
]

# The exit codes Podman gives in the same situations.
TIMEOUT_EXIT_CODE = 124
NOT_FOUND_EXIT_CODE = 127
NOT_EXECUTABLE_EXIT_CODE = 126
KILLED_EXIT_CODE = 137
NO_CONTAINER_EXIT_CODE = 125
_ID_RANGE = 65536
_SLICE = 0.01


@dataclass(frozen=True)
class FakeCommand:
    """What a scripted program does when it is run.

    ``stdout`` and ``stderr`` are the text it writes (``"a\\nb\\n"``), all of it
    at once when it starts. ``duration`` is virtual: a request whose timeout is
    shorter ends with exit 124, otherwise the command ends with ``exit_code`` at
    once. ``gate``: the command waits for this event in real time after writing.
    """

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    gate: threading.Event | None = None
    # The program never starts: exit 127 or 126 (the exit_code given is ignored).
    start_failure: StartFailure | None = None


@dataclass(frozen=True)
class FakeCall:
    """One call of the backend: ``method`` and what identifies its subject
    (the image, the container's name, the job id) and, for ``exec``, the argv."""

    method: str
    subject: str
    argv: tuple[str, ...] = ()


Program = FakeCommand | Callable[[RunningContainer, ExecRequest], FakeCommand]


@dataclass
class _Container:
    running: RunningContainer
    spec: ContainerSpec
    removed: threading.Event = field(default_factory=threading.Event)


class FakeBackend:
    """An in-memory :class:`~rivet.engine.backends.base.ContainerBackend` (a fake:
    see the module docstring). Thread-safe, like the real one.

    ``images``: the images present; every image when None. ``pullable``: images a
    pull policy other than ``never`` can fetch (they are present afterwards).
    """

    def __init__(
        self, *, images: Iterable[str] | None = None, pullable: Iterable[str] = ()
    ) -> None:
        self._images = None if images is None else set(images)
        self._pullable = set(pullable)
        self._programs: dict[tuple[str, ...], Program] = {}
        self._containers: dict[str, _Container] = {}  # by id, removed ones included
        self._ids = itertools.count(1)
        self._ranges = itertools.count(1)
        self._changed = threading.Condition()
        self.calls: list[FakeCall] = []
        self.specs: list[ContainerSpec] = []
        self.requests: list[tuple[RunningContainer, ExecRequest]] = []
        self.pulled: list[str] = []
        self.running = 0
        self.peak = 0
        self.script("true", FakeCommand())
        self.script("false", FakeCommand(exit_code=1))
        self.script("echo", lambda _c, r: FakeCommand(stdout=" ".join(r.argv[1:]) + "\n"))
        self.script("sleep", _sleep)

    # -- scripting and inspection ----------------------------------------------------

    def script(self, program: str | Iterable[str], does: Program) -> None:
        """Say what running ``program`` does: a name matches every argv that starts
        with it, a sequence the exact argv (which wins). ``does`` is a
        :class:`FakeCommand`, or a function of the container and request giving one."""
        key = (program,) if isinstance(program, str) else tuple(program)
        with self._changed:
            self._programs[key] = does

    @property
    def live(self) -> list[RunningContainer]:
        """The containers started and not removed, in the order they started."""
        with self._changed:
            return [c.running for c in self._containers.values() if not c.removed.is_set()]

    @property
    def argvs(self) -> list[tuple[str, ...]]:
        """The argv of every exec so far, in order."""
        with self._changed:
            return [call.argv for call in self.calls if call.method == "exec"]

    def wait_for(self, condition: Callable[[FakeBackend], bool], timeout: float = 60.0) -> None:
        """Block until ``condition(self)`` holds (checked after every change of the
        fake); raise AssertionError after ``timeout`` seconds (a generous bound
        for a loaded machine, not a measurement)."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self), timeout):
                raise AssertionError(f"the fake backend never reached the condition: {condition}")

    # -- the contract ------------------------------------------------------------------

    def check_image(self, image: str, pull: str | None) -> None:
        self._record(FakeCall("check_image", image))
        with self._changed:
            present = self._present(image)
            if present and pull != "always":
                return
            if not present and pull == "never":
                raise ContainerError(
                    f"image {image!r} is not on this runner (policy container.pull = "
                    "'never': only images already on the runner can be used)"
                )
            self._pull(image)

    def start(self, spec: ContainerSpec) -> RunningContainer:
        self._record(FakeCall("start", spec.image), spec=spec)
        workspace = spec.workspace.resolve()
        if ":" in str(workspace):
            raise ContainerError(f"workspace path {str(workspace)!r} must not contain ':'")
        if not workspace.is_dir():
            raise ContainerError(
                f"container for image {spec.image!r} could not be started: the workspace "
                f"{workspace} does not exist"
            )
        with self._changed:
            if not self._present(spec.image) or spec.options.pull == "always":
                if spec.options.pull == "never" or spec.image not in self._pullable:
                    raise ContainerError(
                        f"image {spec.image!r} is not available locally and could not be "
                        "pulled: the fake backend has no such image"
                    )
                self._pull(spec.image)
            for other in self._containers.values():
                if other.spec.name == spec.name and not other.removed.is_set():
                    other.removed.set()  # a leftover of this name is reclaimed, as Podman does
            id_map = spec.id_map
            if spec.options.userns == "auto" and id_map is None:
                base = next(self._ranges) * _ID_RANGE * 16
                id_map = IdMap(uid=base, gid=base, size=_ID_RANGE)
            running = RunningContainer(
                id=f"fake-{next(self._ids):06d}",
                name=spec.name,
                image=spec.image,
                job_id=spec.job_id,
                id_map=id_map,
            )
            self._containers[running.id] = _Container(running, spec)
            self._changed.notify_all()
        return running

    def exec(self, container: RunningContainer, request: ExecRequest) -> ExecResult:
        self._record(
            FakeCall("exec", container.name, tuple(request.argv)), request=(container, request)
        )
        _check_env(request)
        with self._changed:
            record = self._containers.get(container.id)
            gone = record is None or record.removed.is_set()
            does = self._programs.get(tuple(request.argv)) or self._programs.get(
                tuple(request.argv[:1])
            )
        removed = threading.Event() if record is None else record.removed
        if gone:
            command = FakeCommand(
                exit_code=NO_CONTAINER_EXIT_CODE,
                stderr=f'Error: no container with name or ID "{container.id}" found: '
                "no such container\n",
            )
        elif does is None:
            command = FakeCommand(
                start_failure="not found",
                stderr=f"fake backend: nothing is scripted for {(request.argv or [''])[0]!r} "
                "(FakeBackend.script)\n",
            )
        else:  # called outside the lock: a scripted function may wait for the test
            command = does if isinstance(does, FakeCommand) else does(container, request)
        with self._changed:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self._changed.notify_all()
        try:
            return _run(command, request, removed)
        finally:
            with self._changed:
                self.running -= 1
                self._changed.notify_all()

    def remove(self, container: RunningContainer) -> None:
        self._record(FakeCall("remove", container.name))
        with self._changed:
            record = self._containers.get(container.id)
            if record is not None:
                record.removed.set()
            self._changed.notify_all()

    def remove_job(self, job_id: str) -> int:
        self._record(FakeCall("remove_job", job_id))
        with self._changed:
            found = [
                c
                for c in self._containers.values()
                if c.running.job_id == job_id and not c.removed.is_set()
            ]
            for record in found:
                record.removed.set()
            self._changed.notify_all()
        return len(found)

    # -- inside ------------------------------------------------------------------------

    def _record(
        self,
        call: FakeCall,
        *,
        spec: ContainerSpec | None = None,
        request: tuple[RunningContainer, ExecRequest] | None = None,
    ) -> None:
        with self._changed:
            self.calls.append(call)
            if spec is not None:
                self.specs.append(spec)
            if request is not None:
                self.requests.append(request)
            self._changed.notify_all()

    def _present(self, image: str) -> bool:
        return self._images is None or image in self._images

    def _pull(self, image: str) -> None:
        if image not in self._pullable:
            raise ContainerError(
                f"image {image!r} is not available locally and could not be pulled: "
                "the fake backend cannot pull it"
            )
        self.pulled.append(image)
        if self._images is not None:
            self._images.add(image)


def _sleep(_container: RunningContainer, request: ExecRequest) -> FakeCommand:
    try:
        return FakeCommand(duration=float(request.argv[1]))
    except (IndexError, ValueError):
        return FakeCommand(exit_code=1, stderr="sleep: invalid number\n")


def _check_env(request: ExecRequest) -> None:
    """The contract's refusals for variables, with the real backend's words."""
    for what, variables in (
        ("environment", request.env),
        ("secret environment", request.secret_env),
    ):
        for name, value in variables.items():
            if not is_env_name(name):
                raise ContainerError(
                    f"invalid {what} variable name {shown_name(name)}: names are "
                    "[A-Za-z_][A-Za-z0-9_]*"
                )
            if "\0" in value:
                raise ContainerError(
                    f"the value of {what} variable {name} contains a NUL character"
                )
    for name in request.secret_env:
        if name in request.env:
            raise ContainerError(f"variable {name} is given both as a secret and in env")


def _run(command: FakeCommand, request: ExecRequest, removed: threading.Event) -> ExecResult:
    if command.start_failure is not None:
        return _not_started(command, request)
    budget = request.capture_budget
    out = _Stream(request.on_stdout, request.capture_stdout, budget)
    err = _Stream(request.on_stderr, request.capture_stderr, budget)
    out.write(command.stdout)
    err.write(command.stderr)
    exit_code, timed_out = command.exit_code, False
    if out.overflowed or err.overflowed:
        exit_code = KILLED_EXIT_CODE
    elif command.gate is not None:
        ended = _wait_gate(command.gate, removed, request.timeout)
        if ended == "removed":
            exit_code = KILLED_EXIT_CODE
        elif ended == "timeout":
            exit_code, timed_out = TIMEOUT_EXIT_CODE, True
    elif request.timeout is not None and command.duration > request.timeout:
        exit_code, timed_out = TIMEOUT_EXIT_CODE, True
    try:
        out.raise_callback_error()
        err.raise_callback_error()
    except BaseException:
        if budget is not None:
            budget.give_back(out.taken + err.taken)
        raise
    overflow = "stdout" if out.overflowed else "stderr" if err.overflowed else None
    return ExecResult(
        exit_code=exit_code,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        captured_bytes=out.taken + err.taken,
        capture_overflow=overflow,
    )


def _not_started(command: FakeCommand, request: ExecRequest) -> ExecResult:
    """What Podman answers for a program it could not start: one error line on
    stderr, exit 127 (not found) or 126 (not executable)."""
    failure = command.start_failure
    assert failure is not None
    code = NOT_FOUND_EXIT_CODE if failure == "not found" else NOT_EXECUTABLE_EXIT_CODE
    err = _Stream(request.on_stderr, request.capture_stderr, request.capture_budget)
    err.write(command.stderr)
    err.raise_callback_error()
    return ExecResult(
        exit_code=code, stderr=err.text(), captured_bytes=err.taken, start_failure=failure
    )


def _wait_gate(gate: threading.Event, removed: threading.Event, timeout: float | None) -> str:
    """Wait for the gate, the container's removal or the timeout, whichever comes
    first: ``"open"``, ``"removed"`` or ``"timeout"``. (Two events cannot be waited
    for at once, so the gate is waited for in short slices; only latency depends on
    them, never the outcome.)"""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if gate.is_set():
            return "open"
        if removed.is_set():
            return "removed"
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return "timeout"
        gate.wait(_SLICE if left is None else min(_SLICE, left))


class _Stream:
    """One output stream of a command: delivered line by line, or captured under
    the budget, the way the Podman backend's reader does it."""

    def __init__(
        self, callback: LineCallback | None, capture: bool, budget: CaptureBudget | None
    ) -> None:
        self._callback = None if capture else callback
        self._capture = capture
        self._budget = budget
        self._chunks: list[str] = []
        self._error: BaseException | None = None
        self.taken = 0
        self.overflowed = False

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        if self._capture:
            self._collect(data)
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for piece in _pieces(data):
            line = decoder.decode(piece)
            if line:
                self._deliver(line.removesuffix("\n").removesuffix("\r"))
        if tail := decoder.decode(b"", final=True):
            self._deliver(tail)

    def _collect(self, data: bytes) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for start in range(0, len(data), MAX_LINE_BYTES):
            chunk = data[start : start + MAX_LINE_BYTES]
            if self._budget is not None and not self._budget.take(len(chunk)):
                self.overflowed = True
                self._chunks.clear()
                self._budget.give_back(self.taken)
                self.taken = 0
                return
            self.taken += len(chunk)
            self._chunks.append(decoder.decode(chunk))
        self._chunks.append(decoder.decode(b"", final=True))

    def _deliver(self, line: str) -> None:
        if self._callback is None or self._error is not None:
            return
        try:
            self._callback(line)
        except BaseException as exc:  # re-raised once the command has ended, like Podman's
            self._error = exc

    def text(self) -> str:
        return "".join(self._chunks)

    def raise_callback_error(self) -> None:
        if self._error is not None:
            raise self._error


def _pieces(data: bytes) -> Iterator[bytes]:
    """``data`` as ``readline(MAX_LINE_BYTES)`` on a pipe would return it."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start, start + MAX_LINE_BYTES)
        stop = end + 1 if end != -1 else min(start + MAX_LINE_BYTES, len(data))
        yield data[start:stop]
        start = stop
