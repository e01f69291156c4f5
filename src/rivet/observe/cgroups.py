"""CPU and memory of a container, read from its cgroup's files.

Podman puts a container in ``libpod_parent/libpod-<id>`` (cgroupfs manager) or
``machine.slice/libpod-<id>.scope`` (systemd manager), the same relative path in
every hierarchy. cgroups v2 (one unified hierarchy, ``/sys/fs/cgroup`` or
``/sys/fs/cgroup/unified`` on a hybrid host) has ``cpu.stat`` (``usage_usec``) and
``memory.current``; cgroups v1 has ``cpuacct/…/cpuacct.usage`` (ns) and
``memory/…/memory.usage_in_bytes``. Each figure is taken from v2 when the file is
there, else from v1: on a hybrid host (the CI machines) the unified hierarchy holds
no memory controller, so CPU comes from v2 and memory from v1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CGROUP_ROOT", "ContainerUsage", "container_usage"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ContainerUsage:
    cpu_seconds: float | None
    memory_bytes: int | None


def _candidates(container_id: str) -> tuple[str, ...]:
    return (f"libpod_parent/libpod-{container_id}", f"machine.slice/libpod-{container_id}.scope")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _cpu(root: Path, relative: str) -> float | None:
    for unified in (root, root / "unified"):
        text = _read(unified / relative / "cpu.stat")
        if text is not None:
            for line in text.splitlines():
                key, _, number = line.partition(" ")
                if key == "usage_usec" and number.strip().isdigit():
                    return int(number) / 1e6
    text = _read(root / "cpuacct" / relative / "cpuacct.usage")
    if text is not None and text.strip().isdigit():
        return int(text) / 1e9
    return None


def _memory(root: Path, relative: str) -> int | None:
    for path in (
        root / relative / "memory.current",
        root / "unified" / relative / "memory.current",
        root / "memory" / relative / "memory.usage_in_bytes",
    ):
        text = _read(path)
        if text is not None and text.strip().isdigit():
            return int(text)
    return None


def container_usage(container_id: str, root: Path = CGROUP_ROOT) -> ContainerUsage | None:
    """The container's usage, or ``None`` when no cgroup of it is readable here (a
    rootless Podman under another slice, a container already gone)."""
    if not container_id.isalnum():
        return None  # ids are hex: never a path of our making
    for relative in _candidates(container_id):
        cpu, memory = _cpu(root, relative), _memory(root, relative)
        if cpu is not None or memory is not None:
            return ContainerUsage(cpu, memory)
    return None
