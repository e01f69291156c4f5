"""The contract between the executor and a container runtime (Podman now, Kubernetes later).

Lifecycle, per job:

1. ``start(spec)`` creates and starts one long-lived container for an image, with the
   job workspace mounted at ``/workspace`` and the image's entrypoint replaced by an
   idle process, so that later ``exec`` calls run inside it. It raises
   :class:`rivet.errors.ContainerError` naming the image when the image is missing or
   cannot start. Containers carry the labels in :data:`LABEL_MANAGED` and
   :data:`LABEL_JOB` so leftovers can be found.
2. ``exec(container, request)`` runs one command and blocks until it ends; stdout and
   stderr lines are delivered to the request's callbacks *while* it runs. It is
   thread-safe: several execs may run at once in one or several containers.
   On timeout the command is killed and the result has ``exit_code == 124``.
3. ``remove(container)`` stops and deletes it; idempotent, never raises for a
   container that is already gone. ``remove_job(job_id)`` removes every container
   labelled with that job (used on cancel, Ctrl-C and crash recovery).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = [
    "LABEL_IMAGE",
    "LABEL_JOB",
    "LABEL_MANAGED",
    "SECRETS_MOUNT",
    "WORKSPACE",
    "ContainerBackend",
    "ContainerOptions",
    "ContainerSpec",
    "ExecRequest",
    "ExecResult",
    "RunningContainer",
    "container_name",
]

WORKSPACE = "/workspace"
SECRETS_MOUNT = "/run/rivet/secrets"
LABEL_MANAGED = "rivet.managed"
LABEL_JOB = "rivet.job"
LABEL_IMAGE = "rivet.image"

LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class ContainerOptions:
    """How a container is run; part of its identity (one container per image+options).

    ``memory`` uses podman's syntax (``512m``, ``2g``); ``pull`` is podman's
    ``--pull`` policy (never / missing / always); ``network`` is ``none`` or ``bridge``.
    """

    readonly_workspace: bool = False
    network: str | None = None
    memory: str | None = None
    cpus: float | None = None
    pids: int | None = None
    pull: str | None = None

    def key(self) -> str:
        return repr(self)


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


@dataclass(frozen=True)
class RunningContainer:
    id: str
    name: str
    image: str
    job_id: str


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
    # Secret values for the command's environment: a backend must never put them on
    # a command line (visible in `ps`), and refuses names it could only pass that way.
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False


def container_name(job_id: str, image: str, options: ContainerOptions | None = None) -> str:
    """A stable, podman-safe name: one container per (job, image, options)."""
    safe_job = re.sub(r"[^a-zA-Z0-9_.-]", "-", job_id)[:40]
    identity = image if options is None or options == ContainerOptions() else image + options.key()
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"rivet-{safe_job}-{digest}"


class ContainerBackend(Protocol):
    """See the module docstring for the lifecycle contract."""

    def start(self, spec: ContainerSpec) -> RunningContainer: ...

    def exec(self, container: RunningContainer, request: ExecRequest) -> ExecResult: ...

    def remove(self, container: RunningContainer) -> None: ...

    def remove_job(self, job_id: str) -> int: ...
