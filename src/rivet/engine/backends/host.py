"""Host-side helpers for the Podman backend: finding a usable init binary and
killing container processes through the host's ``/proc``."""

from __future__ import annotations

import os
import shutil
import signal
import struct
from pathlib import Path

__all__ = ["find_static_catatonit", "is_static_elf", "kill_marked_processes"]

_CATATONIT_CANDIDATES = (
    "/usr/bin/catatonit",
    "/usr/libexec/podman/catatonit",
    "/usr/libexec/catatonit/catatonit",
    "/usr/local/libexec/podman/catatonit",
)
_PT_INTERP = 3
_KILL_ROUNDS = 5


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP).

    It is bind-mounted into arbitrary images, which may have no dynamic loader or
    libc at all, so only a statically linked binary can be trusted to run there.
    """
    try:
        with path.open("rb") as f:
            ident = f.read(64)
            if len(ident) < 64 or ident[:4] != b"\x7fELF":
                return False
            is64 = ident[4] == 2
            order = "<" if ident[5] == 1 else ">"
            if is64:
                phoff, phentsize, phnum = struct.unpack_from(order + "Q10xHH", ident, 0x20)
            else:
                phoff, phentsize, phnum = struct.unpack_from(order + "I10xHH", ident, 0x1C)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                header = f.read(4)
                if len(header) < 4:
                    return False
                if struct.unpack(order + "I", header)[0] == _PT_INTERP:
                    return False
            return True
    except OSError:
        return False


def find_static_catatonit() -> Path | None:
    """The host's statically linked ``catatonit``, resolved, or None."""
    found = shutil.which("catatonit")
    for candidate in (*_CATATONIT_CANDIDATES, *([found] if found else [])):
        path = Path(candidate).resolve()
        if path.is_file() and os.access(path, os.X_OK) and is_static_elf(path):
            return path
    return None


def kill_marked_processes(marker: str) -> int:
    """SIGKILL every host-visible process whose environment holds ``marker``
    (``NAME=value``), together with its descendants; return how many were signalled.

    Killing the ``podman exec`` client leaves the command running in the container,
    so the command itself is found via an environment marker. Descendants are
    included because a child may have replaced its environment. Several rounds
    catch processes forked while the previous round was killing.
    """
    needle = marker.encode() + b"\0"
    killed = 0
    for _ in range(_KILL_ROUNDS):
        pinned = _pin_marked_trees(needle)
        if not pinned:
            break
        for fd in pinned:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return killed


def _pin_marked_trees(needle: bytes) -> list[int]:
    """Pidfds of the marked processes and their descendants.

    Each process is re-checked after its pidfd is opened, so a PID recycled since
    the scan is never signalled. Nothing is killed yet, so parents are still alive
    and a descendant's parent PID is a reliable check.
    """
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if _has_marker(pid, needle):
            roots.append(pid)
        ppid = _parent_pid(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    pinned: list[int] = []
    seen: set[int] = set()
    stack: list[tuple[int, int | None]] = [(pid, None) for pid in roots]
    while stack:
        pid, parent = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        still = _has_marker(pid, needle) if parent is None else _parent_pid(pid) == parent
        if still:
            pinned.append(fd)
            stack.extend((child, pid) for child in children.get(pid, ()))
        else:
            os.close(fd)
    return pinned


def _has_marker(pid: int, needle: bytes) -> bool:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return data.startswith(needle) or b"\0" + needle in data


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        # The command name may contain spaces and parentheses; fields follow the last ')'.
        return int(stat[stat.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None
