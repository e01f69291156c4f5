"""Resolving pipeline paths inside the job workspace without ever leaving it.

Containers share the workspace and can plant anything in it at any moment: a
symlink to ``/etc``, a symlinked parent directory, a FIFO, a device node, or a
swap of a checked file for a link between two system calls. Resolving with
``os.path.realpath`` and then opening the result is a race (the path is looked up
again by the kernel, following whatever links exist by then), so this module never
lets the kernel follow a symlink at all. It is a user-space ``openat2(RESOLVE_BENEATH)``:

- the walk starts from an open descriptor of the workspace root and opens one
  component at a time relative to its parent's descriptor, with ``O_NOFOLLOW`` and
  ``O_DIRECTORY``; what a later step sees is exactly the directory the earlier step
  checked, whatever is renamed meanwhile;
- a symlink met on the way is read (``readlinkat``) and its target spliced into the
  remaining components; relative targets continue from the link's directory, an
  absolute target is allowed only under ``/workspace`` (the container's view) and
  restarts from the root; anything else is refused, naming the link;
- ``..`` pops the stack of descriptors the walk came through; popping the root is
  an escape and is refused;
- the caller gets ``(directory descriptor, final name)`` and performs its one
  system call relative to that descriptor (``O_NOFOLLOW`` again, so a link swapped
  in after the walk makes the call fail rather than follow it);
- files are opened through ``O_PATH`` first and checked to be regular files before
  they are really opened (via ``/proc/self/fd``), so a FIFO or a device node planted
  by a container is refused without being opened at all.

Hard links need no check: link(2) never crosses a mount, and the workspace is a
bind mount in every container, so a container cannot link a file from elsewhere
into it.

Paths are capped by the ``[fs]`` policy (``max_path_bytes``, ``max_name_bytes``,
``max_depth``), both as written and as resolved through links, so no call works on
or makes a path the kernel or the tools run on the workspace could not use.

What the walk creates (``make_parents``) belongs to the workspace's owner, which is
the root of the job's user namespace when it has one (see ``workspaces.owner_of``).

Every error is a :class:`JailError` whose message names the path as the pipeline
wrote it; the fs module prefixes the function name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rivet.engine.backends.base import WORKSPACE
from rivet.engine.policy.fs_policy import FsPolicy
from rivet.engine.workspaces import chown_new, owner_of

__all__ = [
    "DIR_FLAGS",
    "MAX_SYMLINKS",
    "JailError",
    "MissingError",
    "Resolved",
    "Workspace",
    "check_depth",
    "check_name",
    "check_path",
    "display",
    "kind",
    "open_regular",
    "split_path",
]

# The kernel's own limit for symlinks followed in one lookup (ELOOP beyond it).
MAX_SYMLINKS = 40
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_PATH = getattr(os, "O_PATH", 0)
_PROC_FD = Path("/proc/self/fd")


class JailError(Exception):
    """A path that may not be used, with a message for the pipeline author."""


class MissingError(JailError):
    """A directory on the way to the path does not exist (``fs.exists`` says false)."""


# Longer paths are shortened in messages (the head and the tail say which one).
_SHOWN_CHARS = 160


def display(path: str) -> str:
    """A path quoted for a message; undecodable bytes shown as ``\\xNN``."""
    raw = os.fsencode(path)
    text = raw.decode("utf-8", "backslashreplace")
    if len(text) > _SHOWN_CHARS:
        text = f"{text[:100]}…({len(raw)} bytes)…{text[-40:]}"
    return repr(text) if text.isprintable() else ascii(text)


def check_path(policy: FsPolicy, path: str, parts: list[str]) -> None:
    """The policy's caps on a path as written (its bytes, each name, its depth)."""
    size = len(os.fsencode(path))
    if size > policy.max_path_bytes:
        raise JailError(
            f"{display(path)} is {size} bytes long, over policy fs.max_path_bytes "
            f"({policy.max_path_bytes})"
        )
    depth = deepest = 0
    for part in parts:
        check_name(policy, part, display(path))
        depth += -1 if part == ".." else 1
        deepest = max(deepest, depth)
    check_depth(policy, deepest, display(path))


def check_name(policy: FsPolicy, name: str, shown: str) -> None:
    size = len(os.fsencode(name))
    if size > policy.max_name_bytes:
        raise JailError(
            f"{shown}: the name {display(name)} is {size} bytes long, over policy "
            f"fs.max_name_bytes ({policy.max_name_bytes})"
        )


def check_depth(policy: FsPolicy, depth: int, shown: str) -> None:
    if depth > policy.max_depth:
        raise JailError(
            f"{shown} is {depth} levels deep, over policy fs.max_depth ({policy.max_depth})"
        )


def split_path(path: str) -> list[str]:
    """The components of a pipeline path, relative to the workspace root.

    ``/workspace/x`` (the container's view) means ``x``; any other absolute path is
    outside the workspace. ``.`` and empty components are dropped; ``..`` is kept
    for the walk to resolve against the real directories (never lexically)."""
    if "\0" in path:
        raise JailError(f"{display(path)} contains a NUL byte")
    parts = _components(path)
    if path.startswith("/"):
        rest = _under_workspace(parts)
        if rest is None:
            raise JailError(
                f"{display(path)} is outside the workspace (paths are relative to "
                f"the workspace, or absolute under {WORKSPACE})"
            )
        parts = rest
    # Climbing above the root as written is refused outright, even where a symlink
    # on the way would bring the walk back: the clearer message, and no guessing.
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise JailError(f"{display(path)} is outside the workspace ('..' leaves it)")
    return parts


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _under_workspace(parts: list[str]) -> list[str] | None:
    """The rest of an absolute path's components when it starts with /workspace."""
    top = WORKSPACE.strip("/")
    if not parts or parts[0] != top:
        return None
    return parts[1:]


@dataclass
class Resolved:
    """Where a path ends up: ``name`` inside the directory ``dir_fd`` (the walk's
    descriptor, owned by the walk), or the directory itself when ``name`` is None
    (the root, or a path ending in ``..`` or in a link to a directory's parent).

    ``rel`` is the physical path from the workspace root (links expanded), for
    messages and for checks such as "is the destination inside the source"."""

    dir_fd: int
    name: str | None
    rel: str
    shown: str
    # Who new entries must belong to (None: the runner itself); see owner_of.
    owner: tuple[int, int] | None = None

    @property
    def rel_path(self) -> str:
        return posixpath.join(self.rel, self.name) if self.name else self.rel


@dataclass
class _Walk:
    root_fd: int
    shown: str
    owner: tuple[int, int] | None
    fds: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def top(self) -> int:
        return self.fds[-1] if self.fds else self.root_fd

    def pop(self, via: str | None) -> None:
        if not self.fds:
            if via is None:
                raise JailError(f"{self.shown} is outside the workspace ('..' leaves it)")
            raise JailError(f"{self.shown} leads outside the workspace ({via})")
        os.close(self.fds.pop())
        self.names.pop()

    def reset(self) -> None:
        while self.fds:
            os.close(self.fds.pop())
        self.names.clear()

    def close(self) -> None:
        self.reset()

    def result(self, name: str | None) -> Resolved:
        return Resolved(self.top, name, "/".join(self.names), self.shown, self.owner)


class Workspace:
    """The jail: one workspace directory on the host, seen as ``/workspace`` in containers."""

    def __init__(self, root: Path, policy: FsPolicy | None = None) -> None:
        self.root = root
        self.policy = policy or FsPolicy()

    @contextlib.contextmanager
    def resolve(
        self, path: str, *, follow: bool = True, make_parents: bool = False
    ) -> Iterator[Resolved]:
        """Resolve ``path``; the descriptors stay open for the ``with`` block.

        ``follow``: whether a symlink as the *final* component is followed (inside
        the jail) or returned as itself (stat, remove, the source of a move).
        ``make_parents``: create missing intermediate directories (``mkdir -p``)."""
        shown = display(path)
        parts = split_path(path)
        check_path(self.policy, path, parts)
        try:
            # The root's own path comes from the runner, not the pipeline: trusted.
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise JailError(f"the job workspace is not available ({exc.strerror})") from None
        try:
            walk = _Walk(root_fd, shown, owner_of(root_fd))
        except BaseException:
            os.close(root_fd)
            raise
        try:
            yield self._walk(walk, parts, follow, make_parents)
        finally:
            walk.close()
            os.close(root_fd)

    def _walk(self, walk: _Walk, parts: list[str], follow: bool, make_parents: bool) -> Resolved:
        # A stack of (component, the link it came from): the next one is pending[-1].
        pending: list[tuple[str, str | None]] = [(p, None) for p in reversed(parts)]
        links = 0
        while pending:
            part, via = pending.pop()
            last = not pending
            if part == "..":
                walk.pop(via)
                continue
            here = posixpath.join(*walk.names, part) if walk.names else part
            self._check_resolved(walk, here, part, linked=links > 0)
            try:
                info = os.stat(part, dir_fd=walk.top, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return walk.result(part)
                if not make_parents:
                    raise MissingError(
                        f"{walk.shown}: directory {display(here)} does not exist"
                    ) from None
                _mkdir(part, walk.top, walk.owner)
                info = os.stat(part, dir_fd=walk.top, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode) and (follow or not last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise JailError(f"{walk.shown}: too many levels of symbolic links")
                target = os.readlink(part, dir_fd=walk.top)
                link = f"symlink {display(here)} -> {display(target)}"
                spliced = _components(target)
                if target.startswith("/"):
                    rest = _under_workspace(spliced)
                    if rest is None:
                        raise JailError(f"{walk.shown} leads outside the workspace ({link})")
                    walk.reset()
                    spliced = rest
                pending.extend((p, link) for p in reversed(spliced))
                continue
            if last:
                return walk.result(part)
            if not stat.S_ISDIR(info.st_mode):
                raise MissingError(f"{walk.shown}: {display(here)} is not a directory")
            try:
                fd = os.open(part, DIR_FLAGS, dir_fd=walk.top)
            except OSError as exc:
                # A link or a file swapped in after the stat: refuse rather than guess.
                raise JailError(
                    f"{walk.shown}: {display(here)} changed while it was being resolved "
                    f"({exc.strerror})"
                ) from None
            walk.fds.append(fd)
            walk.names.append(part)
        return walk.result(None)

    def _check_resolved(self, walk: _Walk, here: str, part: str, *, linked: bool) -> None:
        """The caps again on the physical path: links splice in components (and
        depth) that the as-written check never saw."""
        shown = f"{walk.shown} (through links: {display(here)})" if linked else walk.shown
        check_name(self.policy, part, shown)
        check_depth(self.policy, len(walk.names) + 1, shown)
        size = len(os.fsencode(here))
        if size > self.policy.max_path_bytes:
            raise JailError(
                f"{shown} is {size} bytes long, over policy fs.max_path_bytes "
                f"({self.policy.max_path_bytes})"
            )


def _mkdir(name: str, dir_fd: int, owner: tuple[int, int] | None) -> None:
    # Made meanwhile (by a container)? Fine: the walk stats it again before using it.
    try:
        os.mkdir(name, 0o777, dir_fd=dir_fd)
    except FileExistsError:
        return
    chown_new(owner, name, dir_fd)


def open_regular(dir_fd: int, name: str, flags: int, shown: str) -> int:
    """Open the regular file ``name`` in ``dir_fd`` with ``flags``, refusing symlinks,
    directories, FIFOs, sockets and device nodes without opening them."""
    if _O_PATH and _PROC_FD.is_dir():
        try:
            path_fd = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            raise JailError(f"{shown} does not exist") from None
        try:
            _require_regular(os.fstat(path_fd), shown)
            # Reopening the O_PATH descriptor opens exactly the inode just checked.
            return os.open(_PROC_FD / str(path_fd), flags | os.O_CLOEXEC)
        finally:
            os.close(path_fd)
    # Without O_PATH (not Linux): check, open without following, check it is the same.
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise JailError(f"{shown} does not exist") from None
    _require_regular(before, shown)
    try:
        fd = os.open(
            name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JailError(f"{shown} changed into a symlink while being opened") from None
        raise
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise JailError(f"{shown} changed while being opened")
    return fd


def _require_regular(info: os.stat_result, shown: str) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    if stat.S_ISDIR(info.st_mode):
        raise JailError(f"{shown} is a directory")
    if stat.S_ISLNK(info.st_mode):
        raise JailError(f"{shown} changed into a symlink while being opened")
    raise JailError(f"{shown} is not a regular file ({kind(info.st_mode)})")


def kind(mode: int) -> str:
    """The ``fs.stat`` type name of a mode."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        return "device"
    return "other"
