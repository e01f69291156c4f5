"""What a runner's earlier life left behind, removed before it claims anything.

A runner killed mid-job (SIGKILL, OOM, power) leaves the job's containers running,
its workspace on disk and its secret files in ``/dev/shm``. On start, once it knows
its id, the runner removes:

- containers labelled ``rivet.runner=<its id>`` (every container it starts carries it);
- job workspaces in its workspace root (``jobs.workspace_root`` belongs to one runner:
  it runs nothing yet, so every job directory there is from an earlier life);
- secret directories ``rivet-secrets-<its id>-*`` it owns in the secrets root.

and returns the ids of the jobs they belonged to, which it logs and reports to the
server (``POST /api/runner/restarted``), which ends their attempts as lost at once.
A runner process holds ``<workspace root>/.runner.lock`` (``flock``) from then on; when
another live process holds it (a runner of the same home still draining), nothing is
cleaned and nothing reported. The kernel releases the lock of a killed process.
Every failure here is a warning: cleanup must never keep a runner from starting.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rivet.engine.backends.base import LABEL_RUNNER
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.job_secrets import SECRETS_PREFIX, default_secrets_root
from rivet.engine.workspaces import remove_tree
from rivet.errors import RivetError

__all__ = ["RUNNER_LOCK", "Leftovers", "clean_earlier_lives", "hold_lock"]

# In the workspace root: held (flock) by the live runner process using that root.
RUNNER_LOCK = ".runner.lock"

log = logging.getLogger("rivet.runner")

_JOB_DIR = re.compile(r"[0-9a-f]{32}")


@dataclass
class Leftovers:
    jobs: set[str] = field(default_factory=set)
    containers: int = 0
    workspaces: int = 0
    secret_dirs: int = 0

    @property
    def any(self) -> bool:
        return bool(self.containers or self.workspaces or self.secret_dirs)


def hold_lock(path: Path) -> int | None:
    """An exclusive ``flock`` on ``path`` (created 0600, its directory 0700 if missing),
    as an open descriptor to keep; None when another open file (another live process)
    holds it, or the file cannot be opened (then nothing can be told apart: no cleanup)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.warning("cleanup: cannot open %s: %s", path, exc.strerror)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def clean_earlier_lives(
    runner_id: str,
    workspace_root: Path,
    backend: PodmanBackend | None,
    secrets_root: Path | None = None,
) -> Leftovers:
    found = Leftovers()
    if backend is not None:
        try:
            containers = backend.leftovers_of(LABEL_RUNNER, runner_id)
            backend.remove_containers(list(containers))
            found.containers = len(containers)
            found.jobs.update(job for job in containers.values() if job)
        except RivetError as exc:
            log.warning("cleanup: could not remove earlier containers: %s", exc)
    try:
        entries = sorted(workspace_root.iterdir()) if workspace_root.is_dir() else []
    except OSError as exc:
        log.warning("cleanup: cannot read %s: %s", workspace_root, exc.strerror)
        entries = []
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink() and _JOB_DIR.fullmatch(entry.name):
            problems = remove_tree(entry)
            for problem in problems:
                log.warning("cleanup: %s", problem)
            found.workspaces += not problems
            found.jobs.add(entry.name)
    root = secrets_root or default_secrets_root()
    # Named with this runner's id (unguessable); the files may belong to the job's
    # user-namespace range by now, so no owner check, and the removal never follows
    # a link (remove_tree works on descriptors).
    for entry in sorted(root.glob(f"{SECRETS_PREFIX}{runner_id}-*")):
        if entry.is_dir() and not entry.is_symlink():
            problems = remove_tree(entry)
            for problem in problems:
                log.warning("cleanup: %s", problem)
            found.secret_dirs += not problems
    return found
