"""Containers cannot hand privileges to anyone (issue 7, item 4), on real Podman.

A job is container root, which under rootful Podman can be host root. Whatever it
leaves in the workspace must give nobody anything: not a user inside a container
(``nosuid``, ``no-new-privileges``), not an account on the runner host (0700 root and
workspaces), not through device nodes (``nodev``), and not after the job (the
workspace is removed; the fs module strips set-id bits from what it copies).
Each hostile test runs in both user-namespace modes and on both exec paths (the exec
agent, one podman exec per command); a control run without the hardening shows that
the same payload does escalate, so the test can fail.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from exec_paths import assert_path

from rivet.engine.backends.base import (
    ContainerOptions,
    ContainerSpec,
    ExecRequest,
    RunningContainer,
    container_name,
)
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.workspaces import make_workspace, prepare_root

pytestmark = pytest.mark.podman

DEBIAN = "localhost/rivet/debian-git:latest"
BUSYBOX = "localhost/rivet/busybox:latest"
NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
# Run as nobody inside the container (debian has setpriv): the payload reports its
# effective ids.
PAYLOAD = (
    "cp /usr/bin/python3 /workspace/py && chmod u+s,g+s /workspace/py && chmod 755 /workspace"
    " && setpriv --reuid=65534 --regid=65534 --clear-groups /workspace/py -c"
    " 'import os; print(os.geteuid(), os.getegid())'"
)


@pytest.fixture
def backend(podman_available: str, exec_agent: bool) -> Iterator[PodmanBackend]:
    backend = PodmanBackend(podman_available, exec_agent=exec_agent)
    yield backend
    assert_path(backend, exec_agent)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "workspaces"
    prepare_root(path)
    return path


@pytest.fixture(params=["host", "auto"])
def userns(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start(
    backend: PodmanBackend, root: Path, userns: str
) -> Iterator[Callable[..., RunningContainer]]:
    jobs: list[str] = []

    def go(image: str = DEBIAN, readonly: bool = False) -> RunningContainer:
        job = f"harden-{uuid.uuid4().hex[:8]}"
        jobs.append(job)
        options = ContainerOptions(userns=userns, readonly_workspace=readonly)
        spec = ContainerSpec(
            job_id=job,
            image=image,
            workspace=make_workspace(root, job),
            name=container_name(job, image, options),
            options=options,
        )
        return backend.start(spec)

    yield go
    for job in jobs:
        backend.remove_job(job)


def sh(backend: PodmanBackend, ctr: RunningContainer, script: str) -> tuple[int, str]:
    request = ExecRequest(
        argv=["sh", "-c", script], capture_stdout=True, capture_stderr=True, timeout=120
    )
    result = backend.exec(ctr, request)
    return result.exit_code, result.stdout + result.stderr


def test_control_without_the_hardening_the_payload_becomes_root(
    podman_available: str, tmp_path: Path
) -> None:
    """Proves the payload escalates where nothing stops it, so the tests below can fail."""
    bare = tmp_path / "bare"
    bare.mkdir()
    proc = subprocess.run(
        [podman_available, "run", "--rm", "-v", f"{bare}:/workspace", DEBIAN, "sh", "-c", PAYLOAD],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.stdout.split() == ["0", "0"], proc.stderr  # set-uid and set-gid root


def test_mounts_are_nosuid_nodev_and_nothing_gains_privileges(
    backend: PodmanBackend, start: Callable[..., RunningContainer]
) -> None:
    ctr = start(BUSYBOX)
    code, out = sh(
        backend, ctr, "grep ' /workspace ' /proc/mounts; grep NoNewPrivs /proc/self/status"
    )
    assert code == 0, out
    mount_line, nnp = out.splitlines()
    options = mount_line.split()[3].split(",")
    assert "nosuid" in options and "nodev" in options
    assert nnp.split() == ["NoNewPrivs:", "1"]


def test_a_setuid_copy_in_the_workspace_gives_a_user_nothing(
    backend: PodmanBackend, start: Callable[..., RunningContainer]
) -> None:
    ctr = start()
    code, out = sh(backend, ctr, PAYLOAD)
    assert code == 0, out
    assert out.split() == [str(NOBODY), str(NOBODY)]  # neither set-uid nor set-gid took


def test_device_nodes_in_the_workspace_do_not_work(
    backend: PodmanBackend, start: Callable[..., RunningContainer], root: Path
) -> None:
    ctr = start(BUSYBOX)
    # The job itself cannot make one (no CAP_MKNOD)...
    code, out = sh(backend, ctr, "mknod /workspace/mine c 1 3")
    assert code != 0 and "not permitted" in out
    # ...and one that appears there anyway (made on the host, here /dev/null's
    # numbers) cannot be opened in the container: nodev.
    os.mknod(root / ctr.job_id / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    code, out = sh(backend, ctr, "echo x > /workspace/null")
    assert code != 0 and "Permission denied" in out, out


def test_no_other_host_account_can_reach_the_workspace(
    backend: PodmanBackend, start: Callable[..., RunningContainer], root: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to try as another account")
    ctr = start()
    # The job opens its workspace wide and leaves a set-id binary in it.
    code, out = sh(backend, ctr, PAYLOAD + " && chmod 777 /workspace && ls -l /workspace/py")
    assert code == 0, out
    workspace = root / ctr.job_id
    binary = workspace / "py"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert os.stat(root).st_uid == os.geteuid()
    assert os.stat(binary).st_mode & stat.S_ISUID  # it is there, for the host's root
    # The root of all workspaces stays 0700, so nobody cannot even reach it.
    for argv in (["stat", str(binary)], [str(binary), "-c", "print('ran')"]):
        proc = subprocess.run(
            # Through sh: setpriv itself still holds root's capabilities when it execs
            # its argument; sh (a plain exec as nobody) has none left.
            [*AS_NOBODY, "sh", "-c", 'exec "$@"', "sh", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, proc
        assert "ran" not in proc.stdout


def test_a_read_only_workspace_is_also_nosuid_nodev(
    backend: PodmanBackend, start: Callable[..., RunningContainer]
) -> None:
    ctr = start(BUSYBOX, readonly=True)
    code, out = sh(backend, ctr, "grep ' /workspace ' /proc/mounts; touch /workspace/x")
    assert code != 0
    options = out.splitlines()[0].split()[3].split(",")
    assert {"ro", "nosuid", "nodev"} <= set(options)
