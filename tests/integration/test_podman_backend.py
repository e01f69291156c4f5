"""PodmanBackend against real Podman and the local rivet images, every test on both
exec paths: through the exec agent and with one ``podman exec`` per command."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from exec_paths import assert_path

from rivet.engine.backends.base import (
    ContainerSpec,
    ExecRequest,
    RunningContainer,
    container_name,
)
from rivet.engine.backends.podman import PodmanBackend
from rivet.errors import ContainerError

pytestmark = pytest.mark.podman

BUSYBOX = "localhost/rivet/busybox:latest"
ENTRYPOINT_IMAGE = "localhost/rivet/entrypoint-test:latest"


@pytest.fixture
def backend(podman_available: str, exec_agent: bool) -> Iterator[PodmanBackend]:
    backend = PodmanBackend(podman_available, exec_agent=exec_agent)
    yield backend
    assert_path(backend, exec_agent)


@pytest.fixture
def job_id(backend: PodmanBackend) -> Iterator[str]:
    job = f"test-{uuid.uuid4().hex[:10]}"
    yield job
    backend.remove_job(job)


@pytest.fixture
def start(backend: PodmanBackend, job_id: str, tmp_path: Path) -> Callable[..., RunningContainer]:
    def start(image: str = BUSYBOX, job: str = job_id, **labels: str) -> RunningContainer:
        spec = ContainerSpec(
            job_id=job,
            image=image,
            workspace=tmp_path,
            name=container_name(job, image),
            labels=labels,
        )
        return backend.start(spec)

    return start


@pytest.fixture
def container(start: Callable[..., RunningContainer]) -> RunningContainer:
    return start()


def run(
    backend: PodmanBackend,
    ctr: RunningContainer,
    *argv: str,
    env: dict[str, str] | None = None,
    cwd: str = "/workspace",
) -> tuple[int, str]:
    """Exit code and captured stdout+stderr of one command."""
    request = ExecRequest(
        argv=argv, env=env or {}, cwd=cwd, capture_stdout=True, capture_stderr=True
    )
    result = backend.exec(ctr, request)
    return result.exit_code, result.stdout + result.stderr


def inspect(podman: str, name: str) -> dict[str, object] | None:
    proc = subprocess.run(
        [podman, "inspect", "--type", "container", name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        return None
    data: list[dict[str, object]] = json.loads(proc.stdout)
    return data[0]


def container_commands(podman: str, ctr: RunningContainer) -> list[str]:
    out = subprocess.run(
        [podman, "top", ctr.id, "args"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return out.splitlines()[1:]


def job_containers(podman: str, job: str) -> list[str]:
    out = subprocess.run(
        [podman, "ps", "-a", "-q", "--filter", f"label=rivet.job={job}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return out.split()


# -- lifecycle ------------------------------------------------------------------------


def test_start_exec_remove(
    backend: PodmanBackend, container: RunningContainer, podman_available: str, tmp_path: Path
) -> None:
    (tmp_path / "hello.txt").write_text("from host\n")
    assert run(backend, container, "cat", "hello.txt") == (0, "from host\n")
    assert run(backend, container, "sh", "-c", "echo made > out.txt") == (0, "")
    assert (tmp_path / "out.txt").read_text() == "made\n"

    backend.remove(container)
    assert inspect(podman_available, container.name) is None
    backend.remove(container)  # idempotent


def test_labels_are_set(start: Callable[..., RunningContainer], podman_available: str) -> None:
    ctr = start(team="infra")
    info = inspect(podman_available, ctr.id)
    assert info is not None
    labels = info["Config"]["Labels"]  # type: ignore[index]
    assert labels["rivet.managed"] == "true"
    assert labels["rivet.job"] == ctr.job_id
    assert labels["rivet.image"] == BUSYBOX
    assert labels["team"] == "infra"


def test_reserved_labels_cannot_be_overridden(
    start: Callable[..., RunningContainer], podman_available: str, job_id: str
) -> None:
    ctr = start(**{"rivet.job": "someone-else", "rivet.managed": "false"})
    info = inspect(podman_available, ctr.id)
    assert info is not None
    labels = info["Config"]["Labels"]  # type: ignore[index]
    assert (labels["rivet.job"], labels["rivet.managed"]) == (job_id, "true")


def test_start_replaces_leftover_with_same_name(
    start: Callable[..., RunningContainer], podman_available: str
) -> None:
    first = start()
    second = start()
    assert first.name == second.name and first.id != second.id
    assert inspect(podman_available, first.id) is None


def test_image_with_its_own_entrypoint_stays_up(
    backend: PodmanBackend,
    start: Callable[..., RunningContainer],
    podman_image: Callable[[str], str],
) -> None:
    ctr = start(podman_image(ENTRYPOINT_IMAGE))
    assert run(backend, ctr, "echo", "alive") == (0, "alive\n")


def test_missing_image_raises_and_leaves_nothing(
    start: Callable[..., RunningContainer], podman_available: str, job_id: str
) -> None:
    image = f"rivet-missing-{uuid.uuid4().hex[:8]}:latest"
    with pytest.raises(ContainerError) as info:
        start(image)
    message = str(info.value)
    assert f"'{image}'" in message and "not available locally" in message
    assert "\n" not in message
    assert job_containers(podman_available, job_id) == []


def test_remove_is_idempotent(backend: PodmanBackend, container: RunningContainer) -> None:
    backend.remove(container)
    backend.remove(container)
    backend.remove(RunningContainer(id="rivet-never-existed", name="x", image=BUSYBOX, job_id="x"))


def test_remove_job_removes_only_that_jobs_containers(
    backend: PodmanBackend,
    start: Callable[..., RunningContainer],
    job_id: str,
    podman_available: str,
) -> None:
    # A job id that is a prefix of the other proves the label filter is exact.
    other_job = f"{job_id}-other"
    try:
        start(BUSYBOX)
        start("alpine:latest")
        other = start(BUSYBOX, job=other_job)
        assert len(job_containers(podman_available, job_id)) == 2
        assert other.name in backend.list_leftovers()

        assert backend.remove_job(job_id) == 2
        assert job_containers(podman_available, job_id) == []
        assert job_containers(podman_available, other_job) == [other.id[:12]]
        assert backend.remove_job(job_id) == 0
    finally:
        backend.remove_job(other_job)


def test_missing_podman_binary_is_a_clear_error() -> None:
    backend = PodmanBackend("/nonexistent/podman")
    with pytest.raises(ContainerError, match=re.escape("podman not found; run scripts/setup.sh")):
        backend.remove_job("x")
    ctr = RunningContainer(id="x", name="x", image=BUSYBOX, job_id="x")
    with pytest.raises(ContainerError, match="podman not found"):
        backend.exec(ctr, ExecRequest(argv=["true"]))


# -- exec -----------------------------------------------------------------------------


def test_output_is_streamed_while_the_command_runs(
    backend: PodmanBackend, container: RunningContainer
) -> None:
    seen: list[tuple[str, str, float]] = []
    result = backend.exec(
        container,
        ExecRequest(
            argv=["sh", "-c", "echo first; sleep 1; echo second >&2; sleep 1; printf 'no newline'"],
            on_stdout=lambda line: seen.append(("out", line, time.monotonic())),
            on_stderr=lambda line: seen.append(("err", line, time.monotonic())),
        ),
    )
    ended = time.monotonic()
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    # Two pipes carry no order between writes that come at the same moment, but lines
    # written a second apart arrive in the order they were written, on both paths.
    assert [(s, line) for s, line, _ in seen] == [
        ("out", "first"),
        ("err", "second"),
        ("out", "no newline"),
    ]
    first_at = seen[0][2]
    assert ended - first_at > 0.7, "first line arrived only when the command ended"


def test_capture_collects_instead_of_calling_back(
    backend: PodmanBackend, container: RunningContainer
) -> None:
    lines: list[str] = []
    result = backend.exec(
        container,
        ExecRequest(
            argv=["sh", "-c", "echo out1; echo err1 >&2; printf out2"],
            on_stdout=lines.append,
            on_stderr=lines.append,
            capture_stdout=True,
        ),
    )
    assert result.stdout == "out1\nout2"
    assert lines == ["err1"]  # stderr was not captured, so it was streamed


def test_invalid_utf8_is_replaced(backend: PodmanBackend, container: RunningContainer) -> None:
    lines: list[str] = []
    backend.exec(
        container, ExecRequest(argv=["printf", "caf\\303\\251 \\377\\n"], on_stdout=lines.append)
    )
    assert lines == ["café \ufffd"]


def test_env_is_passed_without_putting_values_on_the_command_line(
    backend: PodmanBackend, container: RunningContainer
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    env = {"SECRET_VALUE": secret, "MULTI": "a b\nc", "EMPTY": "", "PATH": "/bin"}
    argvs: list[str] = []

    def watch() -> None:
        # While the command runs, collect the argv of every process on the host that
        # runs it: podman exec (which names the variables), or the command itself.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not argvs:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if "SECRET_VALUE" in text:
                    argvs.append(text)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    code, out = run(
        backend,
        container,
        "sh",
        "-c",
        'sleep 0.5; printf "%s|%s|%s|%s" "$SECRET_VALUE" "$MULTI" "${EMPTY-unset}" "$PATH"',
        env=env,
    )
    watcher.join()
    assert (code, out) == (0, f"{secret}|a b\nc||/bin")
    assert argvs, "never saw the command's process"
    assert all(secret not in argv for argv in argvs)


def test_cwd(backend: PodmanBackend, container: RunningContainer, tmp_path: Path) -> None:
    (tmp_path / "sub" / "dir").mkdir(parents=True)
    assert run(backend, container, "pwd") == (0, "/workspace\n")
    assert run(backend, container, "pwd", cwd="/workspace/sub/dir") == (0, "/workspace/sub/dir\n")


def test_exit_codes_are_returned(backend: PodmanBackend, container: RunningContainer) -> None:
    assert run(backend, container, "sh", "-c", "exit 3")[0] == 3
    assert run(backend, container, "false")[0] == 1


def test_command_not_found(backend: PodmanBackend, container: RunningContainer) -> None:
    code, out = run(backend, container, "no-such-command", "arg")
    assert code == 127
    assert "no-such-command" in out
    code, out = run(backend, container, "/workspace")
    assert code == 126


def test_timeout_kills_the_process_inside_the_container(
    backend: PodmanBackend, container: RunningContainer, podman_available: str
) -> None:
    began = time.monotonic()
    result = backend.exec(
        container, ExecRequest(argv=["sh", "-c", "sleep 30 | cat; sleep 31"], timeout=1)
    )
    assert (result.exit_code, result.timed_out) == (124, True)
    assert time.monotonic() - began < 5
    leftover = [cmd for cmd in container_commands(podman_available, container) if "sleep" in cmd]
    assert leftover == []
    assert run(backend, container, "echo", "still usable") == (0, "still usable\n")


def test_concurrent_execs(backend: PodmanBackend, container: RunningContainer) -> None:
    # Each command waits (up to 30 s) until all 8 have started: only execs that really
    # run at the same time print "together" (proven by the workspace, not the clock).
    barrier = (
        'touch "/workspace/started-$N"; i=0; '
        "while [ $(ls /workspace | grep -c started-) -lt 8 ] && [ $i -lt 600 ]; "
        "do sleep 0.05; i=$((i+1)); done; "
        '[ $(ls /workspace | grep -c started-) -ge 8 ] && echo "$N together" || echo "$N alone"'
    )
    results: dict[int, tuple[int, str]] = {}

    def one(n: int) -> None:
        results[n] = run(backend, container, "sh", "-c", barrier, env={"N": str(n)})

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: (0, f"{n} together\n") for n in range(8)}


def test_exec_returns_when_the_container_is_removed(
    backend: PodmanBackend, container: RunningContainer
) -> None:
    timer = threading.Timer(0.5, backend.remove, args=(container,))
    timer.start()
    began = time.monotonic()
    code, _ = run(backend, container, "sleep", "20")
    timer.join()
    assert code != 0
    assert time.monotonic() - began < 10
    assert run(backend, container, "true")[0] != 0


def test_callback_error_is_raised_after_the_command_finishes(
    backend: PodmanBackend, container: RunningContainer
) -> None:
    def boom(line: str) -> None:
        raise RuntimeError(f"callback failed on {line}")

    with pytest.raises(RuntimeError, match="callback failed on 1"):
        backend.exec(container, ExecRequest(argv=["seq", "1", "20000"], on_stdout=boom))
