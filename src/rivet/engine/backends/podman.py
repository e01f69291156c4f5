"""The Podman implementation of :class:`~rivet.engine.backends.base.ContainerBackend`.

One long-lived container per (job, image), kept alive by a bind-mounted static
``catatonit -P`` so that images without a shell, or with their own entrypoint, work;
every command is one ``podman exec``. Containers are labelled so that leftovers of a
crashed runner can be found and removed.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import re
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import IO

from rivet.engine.backends.base import (
    LABEL_IMAGE,
    LABEL_JOB,
    LABEL_MANAGED,
    MAX_LINE_BYTES,
    SECRETS_MOUNT,
    WORKSPACE,
    CaptureBudget,
    ContainerOptions,
    ContainerSpec,
    ExecRequest,
    ExecResult,
    LineCallback,
    RunningContainer,
)
from rivet.engine.backends.host import find_static_catatonit, kill_marked_processes
from rivet.errors import ContainerError

__all__ = ["EXEC_ID_VAR", "TIMEOUT_EXIT_CODE", "PodmanBackend"]

TIMEOUT_EXIT_CODE = 124
EXEC_ID_VAR = "RIVET_EXEC_ID"

_INIT_IN_CONTAINER = "/.rivet/catatonit"
# Generous because the default pull policy may download the image first.
_START_TIMEOUT = 600.0
_CONTROL_TIMEOUT = 60.0
_KILL_GRACE = 5.0
_READ_CHUNK = 65536
# Values of these variables go on podman's command line instead of into podman's
# own environment, where they would change how podman itself behaves.
_PODMAN_OWN_ENV = re.compile(
    r"PATH|HOME|USER|SHELL|TMPDIR|TZ|LANG|LC_.*|LD_.*|XDG_.*|_?CONTAINERS?_.*|STORAGE_.*"
    r"|REGISTRY_.*|PODMAN_.*|BUILDAH_.*|CONMON_.*|DOCKER_.*|DBUS_.*|NOTIFY_SOCKET|SSL_CERT_.*"
    r"|GODEBUG|GOGC|GOMAXPROCS|GOMEMLIMIT|GOTRACEBACK|(?i:https?_proxy|no_proxy|all_proxy)"
)


class PodmanBackend:
    """Runs job containers with the ``podman`` CLI. Thread-safe: holds no mutable state."""

    def __init__(self, podman: str = "podman", *, extra_run_args: Sequence[str] = ()) -> None:
        self._podman = podman
        self._extra_run_args = tuple(extra_run_args)
        self._init = find_static_catatonit()
        # conmon (2.1 here) writes an empty file named "oom" into its working directory
        # when an exec'd process is OOM-killed; keep that out of the user's directory.
        self._cwd = os.path.join(tempfile.gettempdir(), "rivet-podman")
        os.makedirs(self._cwd, exist_ok=True)

    # -- lifecycle -------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> RunningContainer:
        workspace = spec.workspace.resolve()
        if ":" in str(workspace):
            raise ContainerError(f"workspace path {str(workspace)!r} must not contain ':'")
        # Ours last: leftover cleanup relies on these, so callers cannot override them.
        labels = {
            **spec.labels,
            LABEL_MANAGED: "true",
            LABEL_JOB: spec.job_id,
            LABEL_IMAGE: spec.image,
        }
        args = ["run", "-d", "--name", spec.name]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        mount = f"{workspace}:{WORKSPACE}" + (":ro" if spec.options.readonly_workspace else "")
        args += ["-v", mount, "-w", WORKSPACE, *_option_args(spec.options)]
        if spec.secrets_dir is not None:
            secrets_dir = spec.secrets_dir.resolve()
            if ":" in str(secrets_dir):
                raise ContainerError(f"secrets path {str(secrets_dir)!r} must not contain ':'")
            args += ["-v", f"{secrets_dir}:{SECRETS_MOUNT}:ro"]
        if self._init is not None:
            args += [
                "-v",
                f"{self._init}:{_INIT_IN_CONTAINER}:ro",
                "--entrypoint",
                _INIT_IN_CONTAINER,
            ]
            idle_args = ["-P"]
        else:
            args += ["--entrypoint", "sleep"]
            idle_args = ["infinity"]
        args += [*self._extra_run_args, spec.image, *idle_args]

        proc = self._podman_cmd(args, timeout=_START_TIMEOUT)
        if proc.returncode != 0 and "already in use" in proc.stderr:
            # A leftover of a crashed run of this job: the name is ours to reclaim.
            self._rm([spec.name])
            proc = self._podman_cmd(args, timeout=_START_TIMEOUT)
        container_id = proc.stdout.strip().rpartition("\n")[2]
        if proc.returncode != 0 or not container_id:
            # A container that was created but failed to start would otherwise linger;
            # the start error matters more than a failed cleanup.
            with contextlib.suppress(ContainerError):
                self._rm([spec.name])
            raise ContainerError(_start_error(spec.image, proc.stderr))
        return RunningContainer(
            id=container_id, name=spec.name, image=spec.image, job_id=spec.job_id
        )

    def remove(self, container: RunningContainer) -> None:
        self._rm([container.id])

    def remove_job(self, job_id: str) -> int:
        return self._remove_labelled(f"{LABEL_JOB}={job_id}")

    def list_leftovers(self) -> list[str]:
        """Names of every container this backend created (any job, any runner)."""
        return self._list(f"{LABEL_MANAGED}=true", "{{.Names}}")

    def remove_all_managed(self) -> int:
        return self._remove_labelled(f"{LABEL_MANAGED}=true")

    # -- exec ------------------------------------------------------------------------

    def exec(self, container: RunningContainer, request: ExecRequest) -> ExecResult:
        marker = f"{EXEC_ID_VAR}={uuid.uuid4().hex}"
        args = [self._podman, "exec", "-i=false", "--workdir", request.cwd]
        env = dict(os.environ)
        for name, value in request.env.items():
            _check_env(name, value)
            if _PODMAN_OWN_ENV.fullmatch(name) or name.endswith("*"):
                args += ["--env", f"{name}={value}"]
            else:
                # Bare ``--env NAME`` makes podman read the value from its own
                # environment, which keeps secrets out of ``ps`` output.
                args += ["--env", name]
                env[name] = value
        for name, value in request.secret_env.items():
            _check_env(name, value)
            if _PODMAN_OWN_ENV.fullmatch(name) or name.endswith("*"):
                # Podman would read this one itself: only the command line could carry it.
                raise ContainerError(
                    f"secret environment variable {name!r} cannot be passed without showing "
                    "its value on podman's command line; choose another name"
                )
            args += ["--env", name]
            env[name] = value
        # Last, so a user variable of the same name cannot hide the marker.
        args += ["--env", marker, container.id, *request.argv]

        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self._cwd,
            )
        except FileNotFoundError:
            raise _podman_missing() from None
        except OSError as exc:
            if exc.errno == errno.E2BIG:
                raise ContainerError(
                    "the command's arguments and environment are too long for the system "
                    "(E2BIG); pass big data through a file in the workspace"
                ) from None
            raise
        assert proc.stdout is not None and proc.stderr is not None

        def stop_command() -> None:
            # On its own thread: the reader that asks goes on draining meanwhile.
            kill_marked_processes(marker)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_KILL_GRACE)
                return
            proc.kill()

        def overflow() -> None:
            threading.Thread(target=stop_command, daemon=True).start()

        budget = request.capture_budget
        out = _StreamReader(
            proc.stdout, request.on_stdout, request.capture_stdout, budget, overflow
        )
        err = _StreamReader(
            proc.stderr, request.on_stderr, request.capture_stderr, budget, overflow
        )
        # A watchdog thread enforces the timeout: Popen.wait(timeout=...) polls with
        # sleeps of up to 50 ms, which would add that much to every command.
        watchdog = _Watchdog(proc, marker, request.timeout)
        try:
            exit_code = proc.wait()
            watchdog.finished()
            if watchdog.fired:
                exit_code = TIMEOUT_EXIT_CODE
        except BaseException:
            watchdog.finished()
            # Ctrl-C in the caller: do not leave the command running in the container.
            kill_marked_processes(marker)
            proc.kill()
            proc.wait()
            out.join(_KILL_GRACE, patient=False)
            err.join(_KILL_GRACE, patient=False)
            _give_back(budget, out, err)
            raise
        # Every line is delivered before exec returns, also when delivery is slow
        # (a full log buffer while the server is away): later lines of the job
        # must not overtake this command's output.
        out.join(_KILL_GRACE)
        err.join(_KILL_GRACE)
        try:
            out.raise_callback_error()
            err.raise_callback_error()
        except BaseException:
            _give_back(budget, out, err)
            raise
        overflow_stream = "stdout" if out.overflowed else "stderr" if err.overflowed else None
        return ExecResult(
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=watchdog.fired,
            captured_bytes=out.taken + err.taken,
            capture_overflow=overflow_stream,
        )

    # -- podman plumbing ---------------------------------------------------------------

    def _podman_cmd(
        self, args: Sequence[str], *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self._podman, *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
                cwd=self._cwd,
            )
        except FileNotFoundError:
            raise _podman_missing() from None
        except subprocess.TimeoutExpired:
            raise ContainerError(f"podman {args[0]} did not finish within {timeout:g}s") from None

    def _checked(self, args: Sequence[str]) -> str:
        proc = self._podman_cmd(args, timeout=_CONTROL_TIMEOUT)
        if proc.returncode != 0:
            raise ContainerError(f"podman {args[0]} failed: {_reason(proc.stderr)}")
        return proc.stdout

    def _rm(self, ids: Sequence[str]) -> None:
        # --ignore makes an already-gone container a success; -t 0 because nothing
        # inside a job container deserves a graceful stop.
        self._checked(["rm", "-f", "--ignore", "-t", "0", *ids])

    def _list(self, label: str, field: str) -> list[str]:
        out = self._checked(["ps", "-a", "--filter", f"label={label}", "--format", field])
        return [line for line in out.splitlines() if line]

    def _remove_labelled(self, label: str) -> int:
        ids = self._list(label, "{{.ID}}")
        if ids:
            self._rm(ids)
        return len(ids)


class _Watchdog:
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
        if not self._done.wait(_KILL_GRACE):
            self._proc.kill()

    def finished(self) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()


class _StreamReader:
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
                if self._callback is not None and text:
                    self._deliver(self._callback, text.removesuffix("\n").removesuffix("\r"))
            if (tail := decoder.decode(b"", final=True)) and self._callback is not None:
                self._deliver(self._callback, tail)

    def _collect(self, decoder: codecs.IncrementalDecoder) -> None:
        """Capture: store chunks while the budget grants room; after a refusal, drop
        what was stored, stop the command and read on to the end of the pipe (a pipe
        nobody reads would block the command before it can be stopped)."""
        fd = self._pipe.fileno()
        while chunk := os.read(fd, _READ_CHUNK):
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
            self._thread.join(grace)
            if not self._thread.is_alive() or not patient:
                return
            if not self._delivering and self._reads == reads:
                return
            reads = self._reads

    def text(self) -> str:
        return "".join(self._chunks)

    def raise_callback_error(self) -> None:
        if self._error is not None:
            raise self._error


def _give_back(budget: CaptureBudget | None, *readers: _StreamReader) -> None:
    if budget is not None:
        budget.give_back(sum(r.taken for r in readers))


def _option_args(options: ContainerOptions) -> list[str]:
    args: list[str] = []
    if options.network:
        args += ["--network", options.network]
    if options.memory:
        args += ["--memory", options.memory]
    if options.cpus is not None:
        args += ["--cpus", f"{options.cpus:g}"]
    if options.pids is not None:
        args += ["--pids-limit", str(options.pids)]
    if options.pull:
        args += ["--pull", options.pull]
    return args


def _check_env(name: str, value: str) -> None:
    if not name or "=" in name or "\0" in name or "\0" in value:
        raise ContainerError(f"invalid environment variable {name!r}: names need no '=' or NUL")


def _reason(stderr: str) -> str:
    """Podman's own error line (the last ``Error:`` line), without the prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    last = errors[-1] if errors else (lines[-1] if lines else "no error message")
    return last.removeprefix("Error:").strip()


def _start_error(image: str, stderr: str) -> str:
    reason = _reason(stderr)
    lowered = reason.lower()
    if any(
        s in lowered for s in ("image not known", "did not resolve", "pull", "registry", "manifest")
    ):
        return f"image {image!r} is not available locally and could not be pulled: {reason}"
    return f"container for image {image!r} could not be started: {reason}"


def _podman_missing() -> ContainerError:
    return ContainerError("podman not found; run scripts/setup.sh")
