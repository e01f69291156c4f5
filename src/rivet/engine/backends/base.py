"""The contract between the executor and a container runtime (Podman now, Kubernetes later).

Lifecycle, per job:

0. ``check_image(image, pull)`` makes sure ``image`` can be started: it is present,
   or the pull policy allows fetching it and the fetch succeeded. It raises
   :class:`rivet.errors.ContainerError` naming the image otherwise, and starts no
   container (``container.with`` calls it on entry, containers stay lazy).
1. ``start(spec)`` creates and starts one long-lived container for an image, with the
   job workspace mounted at ``/workspace`` and the image's entrypoint replaced by an
   idle process, so that later ``exec`` calls run inside it. It raises
   :class:`rivet.errors.ContainerError` naming the image when the image is missing or
   cannot start. Containers carry the labels in :data:`LABEL_MANAGED` and
   :data:`LABEL_JOB` so leftovers can be found.

   Containers must not be able to hand privileges to anyone: the workspace (and the
   secrets directory) are mounted ``nosuid,nodev`` and no process in a container may
   gain privileges (``no-new-privileges``), so a set-id binary or a device node made
   in the workspace is inert. With ``options.userns == "auto"`` the container gets a
   private user namespace (container root is an unprivileged host uid): the first
   container of a job (``spec.id_map`` None) gets a fresh range, which is returned in
   ``RunningContainer.id_map``; the job's later containers are started with that same
   range (``spec.id_map``) so that they all share the workspace. When it allocates a
   range, ``start`` hands the workspace and the secrets directory to the range's
   root (entries owned by the runner change owner; nothing is followed).
2. ``exec(container, request)`` runs one command and blocks until it ends; stdout and
   stderr lines are delivered to the request's callbacks *while* it runs, at most
   :data:`MAX_LINE_BYTES` at a time (a longer line arrives in pieces), and a callback
   that blocks holds the command back (no output is buffered without bound). It is
   thread-safe: several execs may run at once in one or several containers.
   On timeout the command is killed and the result has ``exit_code == 124``.
   A captured stream is stored only while the request's :class:`CaptureBudget`
   grants room: once it refuses, the backend stops storing, kills the command,
   drains the pipe to its end and names the stream in ``capture_overflow``.
   A program that is not in the container, or cannot be executed, gives exit 127
   or 126 with ``start_failure`` saying which; a command that started and exited
   127 itself (``sh -c nope``) has no ``start_failure``.
3. ``remove(container)`` stops and deletes it; idempotent, never raises for a
   container that is already gone. ``remove_job(job_id)`` removes every container
   labelled with that job (used on cancel, Ctrl-C and crash recovery).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "LABEL_IMAGE",
    "LABEL_JOB",
    "LABEL_MANAGED",
    "LABEL_RUNNER",
    "MAX_LINE_BYTES",
    "SECRETS_MOUNT",
    "WORKSPACE",
    "CaptureBudget",
    "ContainerBackend",
    "ContainerOptions",
    "ContainerSpec",
    "ExecRequest",
    "ExecResult",
    "IdMap",
    "RunningContainer",
    "StartFailure",
    "container_name",
]

WORKSPACE = "/workspace"
SECRETS_MOUNT = "/run/rivet/secrets"
LABEL_MANAGED = "rivet.managed"
LABEL_JOB = "rivet.job"
LABEL_IMAGE = "rivet.image"
# The runner that started the container: a restarted runner removes its own leftovers.
LABEL_RUNNER = "rivet.runner"

# A streamed line longer than this (bytes) is delivered in pieces of this size.
MAX_LINE_BYTES = 65536

LineCallback = Callable[[str], None]


class CaptureBudget:
    """Bytes of captured output that the commands of one job may hold at once; shared
    by its concurrent ``exec`` calls, thread-safe. ``None`` as the limit: no cap.

    A backend takes room for every chunk before it stores it; the caller gives the
    result's ``captured_bytes`` back once it is done with the text."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.limit is not None and self._held + size > self.limit:
                return False
            self._held += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._held = max(0, self._held - size)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held


@dataclass(frozen=True)
class ContainerOptions:
    """How a container is run; part of its identity (one container per image+options).

    ``memory`` uses podman's syntax (``512m``, ``2g``); ``pull`` is podman's
    ``--pull`` policy (never / missing / always); ``network`` is ``none`` or ``bridge``;
    ``userns`` is ``host`` (the runner's own users) or ``auto`` (a private range).
    """

    readonly_workspace: bool = False
    network: str | None = None
    memory: str | None = None
    cpus: float | None = None
    pids: int | None = None
    pull: str | None = None
    userns: str = "host"

    def key(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class IdMap:
    """A user namespace's mapping: container uid/gid 0 to ``size`` ids are host ids
    ``uid``/``gid`` onwards."""

    uid: int
    gid: int
    size: int


@dataclass(frozen=True)
class ContainerSpec:
    job_id: str
    image: str
    workspace: Path
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    options: ContainerOptions = field(default_factory=ContainerOptions)
    # The job's secret files (outside the workspace), mounted read-only at
    # /run/rivet/secrets; None when the job has no secrets.
    secrets_dir: Path | None = None
    # With options.userns == "auto": the range of the job's first container, which
    # later containers share; None asks for a fresh range.
    id_map: IdMap | None = None


@dataclass(frozen=True)
class RunningContainer:
    id: str
    name: str
    image: str
    job_id: str
    id_map: IdMap | None = None


@dataclass
class ExecRequest:
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = WORKSPACE
    timeout: float | None = None
    on_stdout: LineCallback | None = None
    on_stderr: LineCallback | None = None
    capture_stdout: bool = False
    capture_stderr: bool = False
    # Room for captured output (see CaptureBudget); None: no cap.
    capture_budget: CaptureBudget | None = None
    # Secret values for the command's environment: a backend must never put them on
    # a command line (visible in `ps`), and refuses names it could only pass that way.
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Called (on the calling thread, before the command runs) with a note for the
    # job's log about how the backend runs commands, e.g. that it fell back to a
    # slower way; each note once.
    on_notice: LineCallback | None = None


# Why a command never started: its program is not in the container, or is there but
# cannot be executed (Podman exits 127 and 126 then; so can a command that did start,
# like ``sh -c nope``, which is why the backend says which case it was).
StartFailure = Literal["not found", "not executable"]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    # Bytes taken from the request's CaptureBudget for stdout and stderr; the caller
    # gives them back when it is done with the text.
    captured_bytes: int = 0
    # "stdout" or "stderr" when that captured stream passed the budget: the command
    # was killed and the stream's text is empty (its room already given back).
    capture_overflow: str | None = None
    # Set when the program could not be started at all (see StartFailure).
    start_failure: StartFailure | None = None


def container_name(job_id: str, image: str, options: ContainerOptions | None = None) -> str:
    """A stable, podman-safe name: one container per (job, image, options)."""
    safe_job = re.sub(r"[^a-zA-Z0-9_.-]", "-", job_id)[:40]
    identity = image if options is None or options == ContainerOptions() else image + options.key()
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"rivet-{safe_job}-{digest}"


class ContainerBackend(Protocol):
    """See the module docstring for the lifecycle contract."""

    def check_image(self, image: str, pull: str | None) -> None: ...

    def start(self, spec: ContainerSpec) -> RunningContainer: ...

    def exec(self, container: RunningContainer, request: ExecRequest) -> ExecResult: ...

    def remove(self, container: RunningContainer) -> None: ...

    def remove_job(self, job_id: str) -> int: ...
