"""Both ways the Podman backend runs a command, for tests that must hold on each:
through the container's exec agent (the default) and with one ``podman exec`` per
command (``PodmanBackend(exec_agent=False)``).

``exec_agent`` parametrizes a test over the two; :func:`assert_path` proves afterwards
that the commands really took that path (none fell back from the agent to podman
exec), so that the agent run of a test cannot pass on the old path.
"""

from __future__ import annotations

import subprocess

import pytest

from rivet.child_env import child_env
from rivet.engine.backends.podman import PodmanBackend

__all__ = ["agent_processes", "assert_path", "exec_agent"]


@pytest.fixture(params=[True, False], ids=["agent", "podman-exec"])
def exec_agent(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def assert_path(backend: PodmanBackend, agent: bool) -> None:
    counts = backend.exec_counts()
    if agent:
        assert counts["fallback"] == 0, counts
        assert counts["agent"] > 0 or counts["podman exec"] == 0, counts
    else:
        assert counts["agent"] == 0, counts


def agent_processes(podman: str, container: str) -> list[tuple[int, int]]:
    """``(pid in the container, pid on the host)`` of each exec agent in it."""
    out = subprocess.run(
        [podman, "top", container, "pid", "hpid", "args"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=child_env(where="podman top"),  # not the caller's (a test may fill it with canaries)
    ).stdout
    found = []
    for line in out.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[2].strip() == "/.rivet-agent":
            found.append((int(parts[0]), int(parts[1])))
    return found
