"""Killing a command that runs in a container from the host, through ``/proc``.

Killing the ``podman exec`` client leaves its command running inside the container,
so every command Rivet starts carries a unique environment marker
(``RIVET_EXEC_ID=…``), and on a timeout, a capture overflow or Ctrl-C the backend
finds the processes holding it (and their descendants) in the host's ``/proc`` and
SIGKILLs them through pidfds, so a recycled PID is never hit.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["kill_marked_processes"]

_KILL_ROUNDS = 5


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
