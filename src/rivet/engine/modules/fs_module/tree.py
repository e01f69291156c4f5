"""Descriptor-relative file operations for the fs module: atomic writes, copying
files and directory trees under write limits, and glob matching.

Everything here works on directory descriptors handed out by
:class:`~rivet.engine.modules.fs_module.jail.Workspace` and never follows a symlink:
trees are walked with ``O_NOFOLLOW`` descriptors, links inside a copied tree are
copied as links, and glob never descends into a linked directory.

Permission bits are kept except the set-user-ID and set-group-ID bits, which are
always dropped: the runner writes as itself (host root, typically), so a copied
set-id binary would otherwise become a set-id binary of the runner's. New entries
belong to the workspace's owner (``owner``; None: the runner).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from rivet.engine.limits import MAX_DIR_ENTRIES
from rivet.engine.modules.fs_module.jail import (
    DIR_FLAGS,
    JailError,
    check_depth,
    check_name,
    display,
    kind,
    open_regular,
)
from rivet.engine.policy.fs_policy import FsPolicy
from rivet.engine.policy.violation import PolicyViolation
from rivet.engine.workspaces import chown_new

Owner = tuple[int, int] | None

__all__ = [
    "MAX_GLOB_RESULTS",
    "TEMP_PREFIX",
    "Budget",
    "copy_file",
    "copy_tree",
    "glob",
    "list_dir",
    "lstat",
    "replace_file",
    "safe_mode",
    "temp_name",
]

TEMP_PREFIX = ".rivet-tmp-"
CHUNK = 1 << 20
_SET_ID = stat.S_ISUID | stat.S_ISGID
# A pattern that matches more is almost certainly a mistake (and a memory hazard).
MAX_GLOB_RESULTS = 100_000
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def temp_name() -> str:
    return TEMP_PREFIX + secrets.token_hex(6)


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def list_dir(dir_fd: int, shown: str) -> list[str]:
    """The names in a directory, refusing one of more than MAX_DIR_ENTRIES entries as
    soon as the count passes it (a container can create millions of files, whose names
    would otherwise all be held at once)."""
    names: list[str] = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            names.append(entry.name)
            if len(names) > MAX_DIR_ENTRIES:
                raise JailError(
                    f"{shown} has more than {MAX_DIR_ENTRIES} entries, more than the fs "
                    "module reads from one directory (use a process to handle it)"
                )
    return names


@dataclass
class Budget:
    """The write limits for one fs call: ``written`` is what the job wrote before it,
    ``used`` what this call has written so far (committed by the caller on success)."""

    policy: FsPolicy
    written: int
    used: int = 0

    def reserve(self, size: int, shown: str) -> None:
        try:
            self.policy.check_file_size(size)
            self.policy.check_job_total(self.written + self.used, size)
        except PolicyViolation as exc:
            raise JailError(f"{shown}: {exc}") from None
        self.used += size


def _write_all(fd: int, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def safe_mode(mode: int) -> int:
    """``mode``'s permission bits without set-user-ID and set-group-ID."""
    return stat.S_IMODE(mode) & ~_SET_ID


def replace_file(
    dir_fd: int, name: str, chunks: Iterable[bytes], mode: int | None, owner: Owner = None
) -> None:
    """Write ``chunks`` to a new temporary file next to ``name`` and rename it over
    ``name``: readers (and a failure half-way) never see a partial file. Renaming
    replaces whatever entry ``name`` is, without following it. ``mode`` loses its
    set-id bits."""
    temp = temp_name()
    fd = os.open(temp, _CREATE, 0o666, dir_fd=dir_fd)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            if mode is not None:
                os.fchmod(fd, safe_mode(mode))
            _write_all(fd, chunks)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _read_chunks(fd: int, size: int) -> Iterator[bytes]:
    """At most ``size`` bytes of ``fd``: a file that grows while it is copied is
    copied as it was when it was measured, so a limit checked up front holds."""
    left = size
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def copy_file(
    src_dir: int,
    src_name: str,
    dst_dir: int,
    dst_name: str,
    budget: Budget,
    shown: str,
    owner: Owner = None,
) -> None:
    """Copy one regular file (content and permission bits but set-id) atomically."""
    fd = open_regular(src_dir, src_name, os.O_RDONLY, shown)
    try:
        info = os.fstat(fd)
        budget.reserve(info.st_size, shown)
        replace_file(dst_dir, dst_name, _read_chunks(fd, info.st_size), info.st_mode, owner)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Copy:
    """What every level of a tree copy needs: the budget, the owner of new entries,
    and where the copy lands (for the path caps)."""

    budget: Budget
    owner: Owner
    dst_rel: str


def copy_tree(
    src_dir: int,
    src_name: str,
    dst_dir: int,
    dst_name: str,
    budget: Budget,
    owner: Owner = None,
    dst_rel: str = "",
) -> None:
    """Copy the directory ``src_name`` to the new name ``dst_name``, all or nothing:
    the tree is built under a temporary name and renamed into place at the end.
    ``dst_rel`` is the destination's workspace path, for the policy's path caps."""
    temp = temp_name()
    src_fd = os.open(src_name, DIR_FLAGS, dir_fd=src_dir)
    job = _Copy(budget, owner, dst_rel or dst_name)
    try:
        os.mkdir(temp, 0o700, dir_fd=dst_dir)
        try:
            chown_new(owner, temp, dst_dir)
            out_fd = os.open(temp, DIR_FLAGS, dir_fd=dst_dir)
            try:
                _copy_children(src_fd, out_fd, src_name, job, job.dst_rel)
                os.fchmod(out_fd, safe_mode(os.fstat(src_fd).st_mode))
            finally:
                os.close(out_fd)
            if lstat(dst_dir, dst_name) is not None:
                raise JailError(f"{display(dst_name)} appeared while it was being copied")
            os.rename(temp, dst_name, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
        except BaseException:
            shutil.rmtree(temp, dir_fd=dst_dir, ignore_errors=True)
            raise
    finally:
        os.close(src_fd)


def _copy_children(src_fd: int, dst_fd: int, rel: str, job: _Copy, dst: str) -> None:
    policy = job.budget.policy
    for name in sorted(list_dir(src_fd, display(rel))):
        shown = display(f"{rel}/{name}")
        target = f"{dst}/{name}"
        # The copy must obey the path caps where it lands: checked before making it.
        check_name(policy, name, shown)
        check_depth(policy, target.count("/") + 1, f"{shown} copied to {display(target)}")
        if len(os.fsencode(target)) > policy.max_path_bytes:
            raise JailError(
                f"{shown} copied to {display(target)} would be a path over policy "
                f"fs.max_path_bytes ({policy.max_path_bytes})"
            )
        info = lstat(src_fd, name)
        if info is None:
            continue  # removed meanwhile
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            chown_new(job.owner, name, dst_fd)
            child_src = os.open(name, DIR_FLAGS, dir_fd=src_fd)
            try:
                child_dst = os.open(name, DIR_FLAGS, dir_fd=dst_fd)
                try:
                    _copy_children(child_src, child_dst, f"{rel}/{name}", job, target)
                    os.fchmod(child_dst, safe_mode(info.st_mode))
                finally:
                    os.close(child_dst)
            finally:
                os.close(child_src)
        elif stat.S_ISREG(info.st_mode):
            copy_file(src_fd, name, dst_fd, name, job.budget, shown, job.owner)
        elif stat.S_ISLNK(info.st_mode):
            # Copied as a link, like cp -r: it stays just as jailed where it lands.
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
            chown_new(job.owner, name, dst_fd)
        else:
            raise JailError(f"{shown} is a {kind(info.st_mode)}, which fs.copy does not copy")


# --- glob -----------------------------------------------------------------------------


def _magic(segment: str) -> bool:
    return any(c in segment for c in "*?[")


def _visible(name: str, segment: str) -> bool:
    # As in the shell: a leading dot must be matched explicitly.
    return not name.startswith(".") or segment.startswith(".")


class _Glob:
    def __init__(self, shown: str, dirs_only: bool, max_depth: int) -> None:
        self.shown = shown
        self.dirs_only = dirs_only
        self.max_depth = max_depth
        self.found: set[str] = set()

    def add(self, prefix: tuple[str, ...], name: str, info: os.stat_result) -> None:
        if self.dirs_only and not stat.S_ISDIR(info.st_mode):
            return
        self.found.add("/".join((*prefix, name)))
        if len(self.found) > MAX_GLOB_RESULTS:
            raise JailError(
                f"{self.shown} matches more than {MAX_GLOB_RESULTS} entries; narrow the pattern"
            )

    def where(self, prefix: tuple[str, ...]) -> str:
        return f"{self.shown}: {display('/'.join(prefix) or '.')}"

    def walk(self, dir_fd: int, prefix: tuple[str, ...], segments: tuple[str, ...]) -> None:
        if len(prefix) >= self.max_depth:
            raise JailError(
                f"{self.shown}: the tree is more than {self.max_depth} levels deep, over "
                f"policy fs.max_depth ({self.max_depth})"
            )
        segment, rest = segments[0], segments[1:]
        if segment == "**":
            if rest:
                self.walk(dir_fd, prefix, rest)  # ** matches zero directories too
            for name in list_dir(dir_fd, self.where(prefix)):
                info = lstat(dir_fd, name)
                if info is None or not _visible(name, ""):
                    continue
                if not rest:
                    self.add(prefix, name, info)
                if stat.S_ISDIR(info.st_mode):
                    self.descend(dir_fd, prefix, name, segments)
            return
        if _magic(segment):
            names = [
                n
                for n in list_dir(dir_fd, self.where(prefix))
                if _visible(n, segment) and fnmatchcase(n, segment)
            ]
        else:
            names = [segment]
        for name in names:
            info = lstat(dir_fd, name)
            if info is None:
                continue
            if not rest:
                self.add(prefix, name, info)
            elif stat.S_ISDIR(info.st_mode):  # never a symlink: lstat
                self.descend(dir_fd, prefix, name, rest)

    def descend(
        self, dir_fd: int, prefix: tuple[str, ...], name: str, segments: tuple[str, ...]
    ) -> None:
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return  # replaced by a link or removed meanwhile: not part of the tree
        try:
            self.walk(fd, (*prefix, name), segments)
        finally:
            os.close(fd)


def glob(
    root_fd: int, segments: list[str], shown: str, dirs_only: bool, max_depth: int
) -> list[str]:
    """Workspace-relative paths matching ``segments`` (``*``, ``?``, ``[...]`` within
    a name, ``**`` for any number of directories), sorted by their bytes; a walk that
    would go deeper than ``max_depth`` levels is an error."""
    if ".." in segments:
        raise JailError(f"{shown}: '..' is not allowed in a glob pattern")
    if not segments:
        return ["."]
    matcher = _Glob(shown, dirs_only, max_depth)
    matcher.walk(root_fd, (), tuple(segments))
    return sorted(matcher.found, key=os.fsencode)
