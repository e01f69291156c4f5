"""The Podman backend's host-side helpers, on this host: which binaries count as a
static init, and killing a command (and its children) by its environment marker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from rivet.engine.backends.catatonit import is_static_elf
from rivet.engine.backends.marked_processes import kill_marked_processes


def test_a_dynamically_linked_binary_is_not_a_static_init() -> None:
    assert not is_static_elf(Path(sys.executable).resolve())


def test_a_statically_linked_binary_is_a_static_init(tmp_path: Path) -> None:
    static = [Path(p) for p in ("/bin/busybox", "/usr/bin/catatonit") if Path(p).is_file()]
    found = [p for p in static if is_static_elf(p)]
    # setup.sh installs busybox-static (and catatonit), so one of them is here.
    assert found, f"no static binary among {static}"


def test_a_file_that_is_not_elf_is_not_a_static_init(tmp_path: Path) -> None:
    script = tmp_path / "init"
    script.write_text("#!/bin/sh\nexec sleep infinity\n")
    script.chmod(0o755)
    assert not is_static_elf(script)
    assert not is_static_elf(tmp_path / "missing")


def test_the_marked_command_and_its_children_are_killed_and_nothing_else() -> None:
    marker = f"RIVET_EXEC_ID={uuid.uuid4().hex}"
    name, _, value = marker.partition("=")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    # The child drops its environment, as a command may: found as a descendant.
    marked = subprocess.Popen(
        ["sh", "-c", "env -i sleep 600 & wait"],
        env={**env, name: value},
        stdin=subprocess.DEVNULL,
    )
    bystander = subprocess.Popen(["sleep", "600"], env=env, stdin=subprocess.DEVNULL)
    try:
        killed = kill_marked_processes(marker)
        assert killed >= 1
        assert marked.wait(timeout=60) == -9
        assert bystander.poll() is None
        assert kill_marked_processes(marker) == 0
    finally:
        for proc in (marked, bystander):
            proc.kill()
            proc.wait()
