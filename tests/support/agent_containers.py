"""Busybox containers for the exec-agent tests: start them through the real Podman
backend (agent on), run shell in them, list what runs in them. Shared by
test_exec_agent.py, test_exec_agent_hostile.py and test_exec_agent_isolation.py;
each keeps its own fixtures (``root``, ``backend``, ``start``) around ``starter``."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from rivet.engine.backends.base import (
    ContainerOptions,
    ContainerSpec,
    ExecRequest,
    ExecResult,
    RunningContainer,
    container_name,
)
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.workspaces import make_workspace, prepare_root

BUSYBOX = "localhost/rivet/busybox:latest"
Start = Callable[..., RunningContainer]


def workspace_root(tmp_path: Path) -> Path:
    path = tmp_path / "workspaces"
    prepare_root(path)
    return path


def starter(backend: PodmanBackend, root: Path, jobs: list[str], prefix: str = "agent") -> Start:
    """A function starting one container per call (a job of its own, id appended to
    ``jobs`` so the caller removes it), on ``image`` with ``userns``."""

    def start(
        image: str = BUSYBOX, userns: str = "host", job: str | None = None
    ) -> RunningContainer:
        job = job or f"{prefix}-{uuid.uuid4().hex[:8]}"
        jobs.append(job)
        options = ContainerOptions(userns=userns)
        spec = ContainerSpec(
            job_id=job,
            image=image,
            workspace=make_workspace(root, job),
            name=container_name(job, image, options),
            options=options,
        )
        return backend.start(spec)

    return start


def sh(backend: PodmanBackend, ctr: RunningContainer, script: str, **request: object) -> ExecResult:
    """``sh -c script`` in ``ctr``, both streams captured; ``request`` adds fields."""
    return backend.exec(
        ctr,
        ExecRequest(
            argv=["sh", "-c", script],
            capture_stdout=True,
            capture_stderr=True,
            **request,  # type: ignore[arg-type]
        ),
    )


def container_processes(podman: str, ctr: RunningContainer) -> list[str]:
    """The command lines running in ``ctr`` (``podman top``), header dropped."""
    out = subprocess.run(
        [podman, "top", ctr.id, "args"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return out.splitlines()[1:]
