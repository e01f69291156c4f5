"""The Podman implementation of :class:`~rivet.engine.backends.base.ContainerBackend`.

One long-lived container per (job, image), kept alive by a bind-mounted static
``catatonit -P`` so that images without a shell, or with their own entrypoint, work.
Commands go through the container's exec agent (:mod:`.podman_agent`: one static
process per container, started once by ``podman exec``, that forks each command), or
are one ``podman exec`` each when the agent is off, unavailable or gave up.
Containers are labelled so that leftovers of a crashed runner can be found and
removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from rivet.child_env import child_env, resolve_program
from rivet.domain.env_names import HOST_TOOL_ENV, is_env_name, shown_name
from rivet.engine.backends.base import (
    LABEL_IMAGE,
    LABEL_JOB,
    LABEL_MANAGED,
    SECRETS_MOUNT,
    WORKSPACE,
    ContainerOptions,
    ContainerSpec,
    ExecRequest,
    ExecResult,
    IdMap,
    RunningContainer,
)
from rivet.engine.backends.catatonit import find_static_catatonit
from rivet.engine.backends.marked_processes import kill_marked_processes
from rivet.engine.backends.podman_agent import AgentPool
from rivet.engine.backends.podman_io import (
    KILL_GRACE,
    TIMEOUT_EXIT_CODE,
    CommandStreams,
    Watchdog,
)
from rivet.engine.backends.userns import (
    ID_MAP_FORMAT,
    hand_over,
    parse_id_map,
    userns_applies,
    userns_args,
    userns_hint,
)
from rivet.errors import ContainerError

__all__ = ["EXEC_AGENT_VAR", "EXEC_ID_VAR", "TIMEOUT_EXIT_CODE", "PodmanBackend"]

EXEC_ID_VAR = "RIVET_EXEC_ID"
EXEC_AGENT_VAR = "RIVET_EXEC_AGENT"

_INIT_IN_CONTAINER = "/.rivet/catatonit"
# Generous because the default pull policy may download the image first.
_START_TIMEOUT = 600.0
_CONTROL_TIMEOUT = 60.0
_BUSY_RETRY = 0.5


class PodmanBackend:
    """Runs job containers with the ``podman`` CLI. Thread-safe: its only state is the
    exec agents of its containers (:class:`~.podman_agent.AgentPool`) and counters.

    podman never sees this process's environment: every call gets
    :func:`rivet.child_env.child_env` (a fixed PATH, HOME, LANG), plus, for a
    command, exactly the variables of its request. Variable names must follow the
    environment-name rule (no glob, ``=``, NUL or flag can reach podman), and a
    container gets no proxy variables from podman (``--http-proxy=false``) nor its
    environment (``--env-host=false``), whatever ``containers.conf`` says.

    ``exec_agent``: True runs commands through the exec agent (built and cached on
    first use), a path uses that prebuilt static agent binary, False always runs
    ``podman exec``; None (the default) reads ``RIVET_EXEC_AGENT`` (``0`` or ``off``:
    False; otherwise True).
    """

    def __init__(
        self,
        podman: str = "podman",
        *,
        extra_run_args: Sequence[str] = (),
        exec_agent: bool | Path | None = None,
    ) -> None:
        self._podman = resolve_program(podman)
        self._env = child_env(where="podman")
        self._extra_run_args = tuple(extra_run_args)
        self._init = find_static_catatonit()
        # conmon (2.1 here) writes an empty file named "oom" into its working directory
        # when an exec'd process is OOM-killed; keep that out of the user's directory.
        self._cwd = os.path.join(tempfile.gettempdir(), "rivet-podman")
        os.makedirs(self._cwd, exist_ok=True)
        self._count_lock = threading.Lock()
        self._podman_execs = 0
        if exec_agent is None:
            exec_agent = os.environ.get(EXEC_AGENT_VAR, "").strip().lower() not in ("0", "off")
        self._agents = (
            AgentPool(
                self._podman,
                self._env,
                self._cwd,
                exec_agent if isinstance(exec_agent, Path) else None,
            )
            if exec_agent is not False
            else None
        )

    # -- lifecycle -------------------------------------------------------------------

    def check_image(self, image: str, pull: str | None) -> None:
        """Present locally, or fetched now when the pull policy allows it."""
        if self._podman_cmd(["image", "exists", image], timeout=_CONTROL_TIMEOUT).returncode == 0:
            if pull != "always":
                return
        elif pull == "never":
            raise ContainerError(
                f"image {image!r} is not on this runner (policy container.pull = 'never': "
                "only images already on the runner can be used)"
            )
        proc = self._podman_cmd(["pull", "--quiet", image], timeout=_START_TIMEOUT)
        if proc.returncode != 0:
            raise ContainerError(
                f"image {image!r} is not available locally and could not be pulled: "
                f"{_reason(proc.stderr)}"
            )

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
        # nosuid,nodev: a set-id binary or a device node made in the workspace is inert
        # in every container; no-new-privileges: nothing in the container gains any.
        mount = "ro,nosuid,nodev" if spec.options.readonly_workspace else "nosuid,nodev"
        args += ["-v", f"{workspace}:{WORKSPACE}:{mount}"]
        allocating = userns_applies(spec) and spec.id_map is None
        if not allocating:
            # A fresh range's root cannot enter the workspace until it is handed over
            # (after the start); every exec passes its --workdir anyway.
            args += ["-w", WORKSPACE]
        args += ["--security-opt", "no-new-privileges", *_option_args(spec.options)]
        # Nothing of the runner's own environment or proxy settings enters a container.
        args += ["--http-proxy=false", "--env-host=false"]
        args += userns_args(spec)
        secrets_dir = None
        if spec.secrets_dir is not None:
            secrets_dir = spec.secrets_dir.resolve()
            if ":" in str(secrets_dir):
                raise ContainerError(f"secrets path {str(secrets_dir)!r} must not contain ':'")
            args += ["-v", f"{secrets_dir}:{SECRETS_MOUNT}:ro,nosuid,nodev,noexec"]
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
        if self._agents is not None:
            args += self._agents.mount_args()
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
        id_map = spec.id_map
        if allocating:
            try:
                id_map = self._id_map(container_id)
                hand_over(id_map, workspace, secrets_dir)
            except (ContainerError, OSError) as exc:
                with contextlib.suppress(ContainerError):
                    self._rm([container_id])
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise ContainerError(
                    f"container for image {spec.image!r} could not be given the workspace: {reason}"
                ) from None
        running = RunningContainer(
            id=container_id, name=spec.name, image=spec.image, job_id=spec.job_id, id_map=id_map
        )
        if self._agents is not None:
            self._agents.started(running)
        return running

    def _id_map(self, container_id: str) -> IdMap:
        out = self._checked(
            ["inspect", "--type", "container", "--format", ID_MAP_FORMAT, container_id]
        )
        return parse_id_map(out)

    def remove(self, container: RunningContainer) -> None:
        # The agent first: its commands end at once, as killed with the container.
        if self._agents is not None:
            self._agents.forget(container.id)
        self._rm([container.id])

    def remove_job(self, job_id: str) -> int:
        if self._agents is not None:
            self._agents.forget_where(lambda c: c.job_id == job_id)
        return self._remove_labelled(f"{LABEL_JOB}={job_id}")

    def leftovers_of(self, label: str, value: str) -> dict[str, str]:
        """Container id -> job id of every container labelled ``label=value``."""
        field = f'{{{{.ID}}}} {{{{index .Labels "{LABEL_JOB}"}}}}'
        found = {}
        for line in self._list(f"{label}={value}", field):
            container, _, job = line.partition(" ")
            found[container] = job
        return found

    def remove_containers(self, ids: Sequence[str]) -> None:
        """Remove these containers (and forget their agents); idempotent."""
        if self._agents is not None:
            wanted = set(ids)
            self._agents.forget_where(lambda c: c.id in wanted)
        if ids:
            self._rm(list(ids))

    def list_leftovers(self) -> list[str]:
        """Names of every container this backend created (any job, any runner)."""
        return self._list(f"{LABEL_MANAGED}=true", "{{.Names}}")

    @property
    def agent_enabled(self) -> bool:
        """Whether commands are meant to go through exec agents (``exec_agent`` and
        ``RIVET_EXEC_AGENT``), whatever became of each container's agent."""
        return self._agents is not None

    def uses_agent(self, container: RunningContainer) -> bool:
        """Whether the container's commands currently run through its exec agent."""
        return self._agents is not None and self._agents.uses_agent(container)

    def exec_counts(self) -> dict[str, int]:
        """Commands run so far: through an agent (``agent``), with ``podman exec``
        although their container had an agent (``fallback``), and with ``podman exec``
        in all (``podman exec``)."""
        counts = self._agents.counts() if self._agents is not None else {}
        with self._count_lock:
            return {"agent": 0, "fallback": 0, **counts, "podman exec": self._podman_execs}

    # -- exec ------------------------------------------------------------------------

    def exec(self, container: RunningContainer, request: ExecRequest) -> ExecResult:
        marker = f"{EXEC_ID_VAR}={uuid.uuid4().hex}"
        # The same checks for both paths, so that a name is refused whichever runs it.
        args, env = self._exec_args(container, request, marker)
        if self._agents is not None:
            result = self._agents.exec(container, request, marker)
            if result is not None:
                return result
        return self._podman_exec(args, env, request, marker)

    def _exec_args(
        self, container: RunningContainer, request: ExecRequest, marker: str
    ) -> tuple[list[str], dict[str, str]]:
        """``podman exec``'s argv and environment for the request, once its variable
        names and values passed the checks."""
        args = [self._podman, "exec", "-i=false", "--workdir", request.cwd]
        env = dict(self._env)
        for name, value in request.env.items():
            _check_env(name, value, "environment")
            if HOST_TOOL_ENV.fullmatch(name) or name in self._env:
                # podman itself would act on it: only the command line may carry it.
                args += ["--env", f"{name}={value}"]
            else:
                # Bare ``--env NAME``: podman reads the value from its environment,
                # which keeps it out of ``ps``; that environment holds nothing else
                # of ours to read.
                args += ["--env", name]
                env[name] = value
        for name, value in request.secret_env.items():
            _check_env(name, value, "secret environment")
            if name in request.env:
                raise ContainerError(f"variable {name} is given both as a secret and in env")
            if HOST_TOOL_ENV.fullmatch(name) or name in self._env:
                # Podman would read this one itself: only the command line could carry it.
                raise ContainerError(
                    f"secret environment variable {name!r} cannot be passed without showing "
                    "its value on podman's command line; choose another name"
                )
            args += ["--env", name]
            env[name] = value
        # Last, so a user variable of the same name cannot hide the marker.
        args += ["--env", marker, container.id, *request.argv]
        return args, env

    def _podman_exec(
        self, args: list[str], env: dict[str, str], request: ExecRequest, marker: str
    ) -> ExecResult:
        with self._count_lock:
            self._podman_execs += 1
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self._cwd,
                # Out of the terminal's process group: a Ctrl-C must reach only Rivet,
                # which cancels the job; killed directly, the client would end the
                # command as if it had finished and the stage could carry on.
                start_new_session=True,
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
                proc.wait(KILL_GRACE)
                return
            proc.kill()

        def overflow() -> None:
            threading.Thread(target=stop_command, daemon=True).start()

        streams = CommandStreams(proc.stdout, proc.stderr, request, overflow)

        # A watchdog thread enforces the timeout: Popen.wait(timeout=...) polls with
        # sleeps of up to 50 ms, which would add that much to every command.
        def stop() -> None:
            kill_marked_processes(marker)

        watchdog = Watchdog(request.timeout, stop, proc.kill)
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
            streams.abandon()
            raise
        streams.drain()
        return streams.result(exit_code, watchdog.fired, request.argv[0])

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
                env=self._env,
                start_new_session=True,  # see exec: Ctrl-C is Rivet's to handle
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
        args = ["rm", "-f", "--ignore", "-t", "0", *ids]
        proc = self._podman_cmd(args, timeout=_CONTROL_TIMEOUT)
        if proc.returncode != 0 and "resource busy" in proc.stderr:
            # Podman 4.3 now and then fails to unmount a dying container's shm
            # ("unlinkat …/userdata/shm: device or resource busy") although the
            # container is gone by then; a second rm finds nothing left to do.
            time.sleep(_BUSY_RETRY)
            proc = self._podman_cmd(args, timeout=_CONTROL_TIMEOUT)
        if proc.returncode != 0:
            raise ContainerError(f"podman rm failed: {_reason(proc.stderr)}")

    def _list(self, label: str, field: str) -> list[str]:
        out = self._checked(["ps", "-a", "--filter", f"label={label}", "--format", field])
        return [line for line in out.splitlines() if line]

    def _remove_labelled(self, label: str) -> int:
        ids = self._list(label, "{{.ID}}")
        if ids:
            self._rm(ids)
        return len(ids)


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


def _check_env(name: str, value: str, what: str) -> None:
    # Callers check names first (process.run does, naming the Lua line); this one
    # guards the backend contract for every other caller.
    if not is_env_name(name):
        raise ContainerError(
            f"invalid {what} variable name {shown_name(name)}: names are [A-Za-z_][A-Za-z0-9_]*"
        )
    if "\0" in value:
        raise ContainerError(f"the value of {what} variable {name} contains a NUL character")


def _reason(stderr: str) -> str:
    """Podman's own error line (the last ``Error:`` line), without the prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    last = errors[-1] if errors else (lines[-1] if lines else "no error message")
    return last.removeprefix("Error:").strip()


def _start_error(image: str, stderr: str) -> str:
    reason = _reason(stderr)
    hint = userns_hint(stderr)
    if hint is not None:
        return f"container for image {image!r} could not be started: {hint}"
    lowered = reason.lower()
    if any(
        s in lowered for s in ("image not known", "did not resolve", "pull", "registry", "manifest")
    ):
        return f"image {image!r} is not available locally and could not be pulled: {reason}"
    return f"container for image {image!r} could not be started: {reason}"


def _podman_missing() -> ContainerError:
    return ContainerError("podman not found; run scripts/setup.sh")
