"""Both ways the Podman backend runs a command, for tests that must hold on each:
through the container's exec agent (the default) and with one ``podman exec`` per
command (``PodmanBackend(exec_agent=False)``).

``exec_agent`` parametrizes a test over the two; :func:`assert_path` proves afterwards
that the commands really took that path (none fell back from the agent to podman
exec), so that the agent run of a test cannot pass on the old path.

:func:`every_command_takes_its_path` (autouse) does the same for every Podman test,
whichever way it makes its backends: after the test, each ``PodmanBackend`` it made
with the agent on must have sent no command of a container it started to
``podman exec`` (a command for a container it does not know, or no longer knows
because it was removed, goes there to fail as before). So every existing
process and container test is a test of the agent path, and one cannot pass by
falling back quietly. A test that makes the agent unusable on purpose says so with
``@pytest.mark.exec_fallback``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from rivet.child_env import child_env
from rivet.engine.backends.podman import PodmanBackend

__all__ = ["agent_processes", "assert_path", "every_command_takes_its_path", "exec_agent"]


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


@pytest.fixture(autouse=True)
def every_command_takes_its_path(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    node = request.node
    if node.get_closest_marker("podman") is None or node.get_closest_marker("exec_fallback"):
        yield
        return
    made: list[PodmanBackend] = []
    original = PodmanBackend.__init__

    def recording_init(self: PodmanBackend, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(PodmanBackend, "__init__", recording_init)
    yield
    for backend in made:
        counts = backend.exec_counts()
        if backend.agent_enabled:
            assert counts["fallback"] == 0, (
                f"commands fell back to podman exec although the agent was on: {counts}"
            )
