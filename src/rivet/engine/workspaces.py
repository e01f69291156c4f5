"""Job workspaces on the runner host: the private root, one directory per job, and a
removal that never gives up half-way silently.

Why the modes matter: under rootful Podman a container's root can be host root, so
anything a job leaves in its workspace (a setuid-root binary, a device node) would be
usable by every account on the runner host that can reach it. The root of all
workspaces and every job workspace are therefore mode 0700 and owned by the runner:
no other account can even traverse into them, whatever modes a job gives the files
inside (the containers additionally mount the workspace ``nosuid,nodev``, see the
Podman backend). An existing root with a wider mode is tightened to 0700 (its
contents are the runner's own job workspaces, which no one else has any business
reading); a root owned by another account is refused, because its owner could swap
the directories under the runner.

Removal (:func:`remove_tree`) works on directory descriptors, one level at a time,
without recursion and without building paths, so neither a tree thousands of levels
deep nor paths longer than ``PATH_MAX`` stop it; it never follows a symlink. Every
error is caught and returned as a message, so a job that succeeded is not turned into
a runner error by a workspace it could not fully remove.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from rivet.errors import ConfigError

__all__ = [
    "MAX_REPORTED",
    "WORKSPACE_MODE",
    "adopt_tree",
    "chown_new",
    "make_workspace",
    "owner_of",
    "prepare_root",
    "remove_at",
    "remove_tree",
]

WORKSPACE_MODE = 0o700
# A tree that fails everywhere would otherwise flood the job log.
MAX_REPORTED = 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_PATH = getattr(os, "O_PATH", 0)


def prepare_root(root: Path) -> str | None:
    """Make sure ``root`` exists, is a directory owned by the runner and has mode 0700.

    Returns a note when an existing root was tightened (for the log), None otherwise;
    raises :class:`ConfigError` naming the root when it cannot be used safely. The
    root's own path comes from the runner's configuration and is trusted (it may be
    a symlink to another disk)."""
    try:
        root.mkdir(mode=WORKSPACE_MODE, parents=True, exist_ok=True)
        info = root.stat()
    except OSError as exc:
        raise ConfigError(f"{root}: cannot create the workspace root: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{root}: the workspace root is not a directory")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{root}: the workspace root is owned by uid {info.st_uid}, not by the runner "
            f"(uid {os.geteuid()}); its owner could tamper with job workspaces. Use a "
            "directory of the runner's own (or chown this one)"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode == WORKSPACE_MODE:
        return None
    try:
        os.chmod(root, WORKSPACE_MODE)
    except OSError as exc:
        raise ConfigError(
            f"{root}: the workspace root has mode {mode:04o} and cannot be tightened to "
            f"0700: {exc.strerror}"
        ) from None
    return (
        f"workspace root {root} had mode {mode:04o}; tightened to 0700 so that no other "
        "account on this host can reach job workspaces"
    )


def make_workspace(root: Path, name: str) -> Path:
    """Create the job's directory ``root/name`` with mode 0700 (fails if it exists)."""
    path = root / name
    os.mkdir(path, WORKSPACE_MODE)
    os.chmod(path, WORKSPACE_MODE)  # the umask can only narrow; this also undoes ACL defaults
    return path


class _Report:
    def __init__(self, top: str) -> None:
        self.top = top
        self.messages: list[str] = []
        self.count = 0

    def add(self, names: list[str], name: str | None, exc: OSError | str) -> None:
        self.count += 1
        if self.count > MAX_REPORTED:
            return
        where = _shown(self.top, names if name is None else [*names, name])
        reason = exc if isinstance(exc, str) else (exc.strerror or str(exc))
        self.messages.append(f"could not remove {where}: {reason}")

    def result(self) -> list[str]:
        if self.count > MAX_REPORTED:
            more = self.count - MAX_REPORTED
            return [*self.messages, f"... and {more} more entries could not be removed"]
        return self.messages


def _shown(top: str, names: list[str]) -> str:
    """A path for a message, shortened when it is very deep."""
    if len(names) > 6:
        return f"{top}/{'/'.join(names[:2])}/…({len(names) - 4} levels)…/{'/'.join(names[-2:])}"
    return "/".join([top, *names]) if top else "/".join(names)


def remove_tree(path: Path) -> list[str]:
    """Remove ``path`` (a directory tree, a file or a link) and everything under it.

    Returns the problems met, as messages naming the entries left behind; an empty list
    means the path is gone (or was never there). Never raises ``OSError``."""
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"could not remove {path}: {exc.strerror or exc}"]
    try:
        return remove_at(parent, path.name, str(path.parent))
    finally:
        os.close(parent)


def remove_at(dir_fd: int, name: str, shown_parent: str) -> list[str]:
    """:func:`remove_tree` for the entry ``name`` of the directory ``dir_fd``;
    messages show paths under ``shown_parent``."""
    report = _Report(shown_parent)
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            _remove_dir(dir_fd, name, report)
        else:
            os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        report.add([name], None, exc)
    return report.result()


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _open_dir(dir_fd: int, name: str) -> int:
    """Open the directory ``name`` without following a link; a directory the runner
    may not read (mode 000 made by a job, seen by a non-root runner) is made readable
    first, through an ``O_PATH`` descriptor so that exactly that inode is changed."""
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except PermissionError:
        if not _O_PATH or os.geteuid() == 0:
            raise
    path_fd = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
    finally:
        os.close(path_fd)
    return os.open(name, _DIR, dir_fd=dir_fd)


def _unlink(dir_fd: int, name: str, *, directory: bool) -> None:
    """unlink/rmdir ``name``; when the directory itself forbids it (a job made it
    read-only and the runner is not root), open it up once and try again."""
    remove = os.rmdir if directory else os.unlink
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except PermissionError:
        if os.geteuid() == 0:  # root is refused only by immutable entries: no retry
            raise
        os.fchmod(dir_fd, 0o700)
        remove(name, dir_fd=dir_fd)


def _remove_dir(top_parent: int, top_name: str, report: _Report) -> None:
    """Depth-first without recursion: hold one descriptor (the current directory),
    a stack of names and of (device, inode) identities. Going up opens ``..`` and
    checks it is the directory the walk came from, so a tree moved by a process still
    running in it can never lead the walk outside the tree being removed."""
    fd = _open_dir(top_parent, top_name)
    idents = [_identity(top_parent), _identity(fd)]
    names = [top_name]
    skipped: list[set[str]] = [set()]
    try:
        while True:
            child = _clear_files(fd, names, skipped[-1], report)
            if child is not None:
                try:
                    child_fd = _open_dir(fd, child)
                except OSError as exc:
                    report.add(names, child, exc)
                    skipped[-1].add(child)
                    continue
                os.close(fd)
                fd = child_fd
                names.append(child)
                idents.append(_identity(fd))
                skipped.append(set())
                continue
            up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            if _identity(up) != idents[-2]:
                os.close(up)
                report.add(names, None, "the tree was moved while it was being removed")
                return
            os.close(fd)
            fd = up
            name = names.pop()
            idents.pop()
            left = skipped.pop()
            try:
                _unlink(fd, name, directory=True)
            except OSError as exc:
                if not left:  # a non-empty directory was already reported by its entries
                    report.add(names, name, exc)
                if not names:
                    return
                skipped[-1].add(name)
                continue
            if not names:
                return
    finally:
        os.close(fd)


def _clear_files(fd: int, names: list[str], skipped: set[str], report: _Report) -> str | None:
    """Unlink every non-directory in ``fd``; the first subdirectory not yet given up
    on, or None when only given-up entries are left."""
    # scandir works on its own duplicate of fd (rewound when it closes): fd stays ours.
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.name in skipped:
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                return entry.name
            try:
                _unlink(fd, entry.name, directory=False)
            except OSError as exc:
                if exc.errno == errno.EISDIR:  # replaced by a directory meanwhile
                    return entry.name
                report.add(names, entry.name, exc)
                skipped.add(entry.name)
    return None


def adopt_tree(path: Path, uid: int, gid: int) -> None:
    """Give ``path`` and every entry under it that the runner owns to ``uid:gid``
    (the root of a container's user namespace), never following a link.

    Called when a job's first container with a private user namespace starts: until
    then only the runner (the fs module, secret files) has written there, so the tree
    is small and bounded by the fs limits. Raises ``OSError`` when ``path`` itself
    cannot be handed over; entries that vanish or refuse are left as they are."""
    me = os.geteuid()
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchown(top, uid, gid)
    finally:
        os.close(top)
    with contextlib.suppress(OSError, RecursionError):
        for _dir, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
            for name in (*dirs, *files):
                with contextlib.suppress(OSError):
                    if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_uid == me:
                        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def owner_of(dir_fd: int) -> tuple[int, int] | None:
    """Who should own what the runner creates under the directory ``dir_fd``: its own
    owner, or None when that is the runner itself (no user namespace: nothing to do).
    With a private user namespace the workspace belongs to the namespace's root, and
    a file the fs module writes must be that root's too, or the job's commands could
    not change it."""
    info = os.fstat(dir_fd)
    if info.st_uid == os.geteuid() and info.st_gid == os.getegid():
        return None
    return info.st_uid, info.st_gid


def chown_new(owner: tuple[int, int] | None, name: str, dir_fd: int) -> None:
    """Give the just-created entry ``name`` in ``dir_fd`` to ``owner`` (no link followed)."""
    if owner is not None:
        os.chown(name, owner[0], owner[1], dir_fd=dir_fd, follow_symlinks=False)
