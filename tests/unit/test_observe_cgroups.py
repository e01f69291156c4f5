"""Reading a container's CPU and memory from cgroup files. These build small
cgroup-like trees in a temporary directory (a stand-in for /sys/fs/cgroup with the
files' real formats); the real cgroups of real Podman containers are read in
tests/e2e/test_observability.py."""

from __future__ import annotations

from pathlib import Path

from rivet.observe.cgroups import ContainerUsage, container_usage

ID = "30324c5f61667197246be266a733298df9fd2352db752144ca8aa940d845fe4e"


def put(root: Path, relative: str, name: str, text: str) -> None:
    directory = root / relative
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)


def test_cgroups_v2_with_the_systemd_manager(tmp_path: Path) -> None:
    scope = f"machine.slice/libpod-{ID}.scope"
    put(tmp_path, scope, "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\n")
    put(tmp_path, scope, "memory.current", "7340032\n")
    assert container_usage(ID, tmp_path) == ContainerUsage(2.5, 7340032)


def test_a_hybrid_host_takes_cpu_from_v2_and_memory_from_v1(tmp_path: Path) -> None:
    group = f"libpod_parent/libpod-{ID}"
    put(tmp_path / "unified", group, "cpu.stat", "usage_usec 1000\n")
    put(tmp_path / "memory", group, "memory.usage_in_bytes", "4096\n")
    put(tmp_path / "cpuacct", group, "cpuacct.usage", "999999999999\n")  # v2 wins
    assert container_usage(ID, tmp_path) == ContainerUsage(0.001, 4096)


def test_cgroups_v1_only(tmp_path: Path) -> None:
    group = f"libpod_parent/libpod-{ID}"
    put(tmp_path / "cpuacct", group, "cpuacct.usage", "3000000000\n")
    put(tmp_path / "memory", group, "memory.usage_in_bytes", "123\n")
    assert container_usage(ID, tmp_path) == ContainerUsage(3.0, 123)


def test_no_readable_cgroup_and_odd_ids_give_nothing(tmp_path: Path) -> None:
    assert container_usage(ID, tmp_path) is None
    put(tmp_path, "escape", "memory.current", "1\n")
    assert container_usage("../escape", tmp_path) is None
    assert container_usage("", tmp_path) is None
