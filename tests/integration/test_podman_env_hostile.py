"""Hostile, at the backend contract: PodmanBackend started in a process whose every
environment variable holds a canary never lets one reach a container, for any name a
caller passes, and refuses every name outside the environment-name rule.

The crafted name of the original report is here: ``" AWS_SECRET_ACCESS_KEY"`` (a
leading blank). podman trimmed it and copied the runner's own value of
``AWS_SECRET_ACCESS_KEY`` into the container, because it read bare ``--env NAME``
values from an environment that was a copy of the runner's.

Both exec paths: through the exec agent (whose own environment, unreadable to the
job, is read from the host) and with one ``podman exec`` per command."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from canaries import HOST, ODD, leaks, new_canary
from exec_paths import agent_processes, assert_path

from rivet.engine.backends.base import ContainerSpec, ExecRequest, RunningContainer
from rivet.engine.backends.podman import PodmanBackend
from rivet.errors import ContainerError

pytestmark = pytest.mark.podman

BUSYBOX = "localhost/rivet/busybox:latest"
SECRETS = ["AWS_SECRET_ACCESS_KEY", "RIVET_ADMIN_TOKEN", "RIVET_RUNNER_TOKEN", "GITHUB_TOKEN"]
# Every process's environment the job can read; the exec agent's is not readable by
# the job (the agent is non-dumpable), so unreadable ones are named, and checked.
DUMP = (
    "env; tr '\\0' '\\n' < /proc/self/environ; tr '\\0' '\\n' < /proc/1/environ; "
    "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\" 2>/dev/null "
    '|| echo "unreadable $f"; done'
)
HOSTILE = [
    " AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY ", "\tAWS_SECRET_ACCESS_KEY", "AWS_*",
    "AWS_SECRET_ACCESS_KEY*", "*", "*x", "A*B", "RIVET*", "=", "A=B", "", "-e", "--env",
    "1A", "A-B", "AWS_SECRET_ACCESS_KEY\n", "é", "\u212a", "A\0B",
]  # fmt: skip


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A canary in every variable of this process (keeping PATH working: the backend
    finds podman with it), set before the backend is made."""
    values: dict[str, str] = {}
    for name in {*os.environ, *SECRETS, *HOST, *ODD} - {"PATH", "PYTEST_CURRENT_TEST"}:
        values[name] = new_canary()
        monkeypatch.setenv(name, values[name])
    for name in ("HTTP_PROXY", "https_proxy", "ALL_PROXY"):  # podman copies these by default
        monkeypatch.setenv(name, f"http://{values[name]}.invalid:9")
    values["PATH"] = new_canary()
    monkeypatch.setenv("PATH", f"/{values['PATH']}:{os.environ['PATH']}")
    return values


@pytest.fixture
def container(
    canaries: dict[str, str], tmp_path: Path, exec_agent: bool
) -> Iterator[tuple[PodmanBackend, RunningContainer]]:
    backend = PodmanBackend(exec_agent=exec_agent)
    job = f"envtest-{uuid.uuid4().hex[:10]}"
    spec = ContainerSpec(job_id=job, image=BUSYBOX, workspace=tmp_path, name=f"rivet-{job}")
    try:
        yield backend, backend.start(spec)
    finally:
        backend.remove_job(job)
    assert_path(backend, exec_agent)


def dump(backend: PodmanBackend, container: RunningContainer, **request: object) -> str:
    result = backend.exec(
        container,
        ExecRequest(argv=["sh", "-c", DUMP], capture_stdout=True, capture_stderr=True, **request),  # type: ignore[arg-type]
    )
    assert result.exit_code == 0, result.stderr
    agents = agent_processes("podman", container.id)
    unreadable = {
        int(line.split("/")[2])
        for line in result.stdout.splitlines()
        if line.startswith("unreadable /proc/")
    }
    assert unreadable <= {pid for pid, _ in agents}, (unreadable, agents)
    # What the job cannot read is read from the host: the agents' own environments.
    hosts = "".join(Path(f"/proc/{hpid}/environ").read_text(errors="replace") for _, hpid in agents)
    return result.stdout + result.stderr + hosts.replace("\0", "\n")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_by_the_backend(
    container: tuple[PodmanBackend, RunningContainer], name: str
) -> None:
    backend, running = container
    for field in ("env", "secret_env"):
        with pytest.raises(ContainerError, match="variable name"):
            backend.exec(running, ExecRequest(argv=["true"], **{field: {name: "x"}}))  # type: ignore[arg-type]


def test_no_canary_reaches_the_container_whatever_the_names(
    container: tuple[PodmanBackend, RunningContainer], canaries: dict[str, str]
) -> None:
    backend, running = container
    # Valid names the runner's environment also holds: the container sees the job's
    # values (empty or not), never the runner's.
    texts = [
        dump(backend, running),
        dump(backend, running, env={n: "" for n in SECRETS}),
        dump(
            backend,
            running,
            env={"AWS_SECRET_ACCESS_KEY": "job"},
            secret_env={"GITHUB_TOKEN": "job-secret"},
        ),
        dump(
            backend,
            running,
            env={
                "PATH": "/bin",
                "HOME": "/job",
                "HTTP_PROXY": "http://job",
                "XDG_RUNTIME_DIR": "/x",
            },
        ),
    ]
    assert "AWS_SECRET_ACCESS_KEY=job" in texts[2] and "GITHUB_TOKEN=job-secret" in texts[2]
    assert "HOME=/job" in texts[3] and "container=podman" in texts[0]
    assert leaks(texts, canaries) == {}


def test_podman_itself_runs_without_the_callers_environment(
    container: tuple[PodmanBackend, RunningContainer], canaries: dict[str, str]
) -> None:
    backend, running = container
    # CONTAINERS_CONF, REGISTRY_AUTH_FILE, proxies… hold canaries (nonexistent paths):
    # podman would fail or misbehave had it seen them.
    assert os.environ["CONTAINERS_CONF"] == canaries["CONTAINERS_CONF"]
    assert backend.exec(running, ExecRequest(argv=["true"])).exit_code == 0
    assert backend.remove_job(running.job_id) == 1
