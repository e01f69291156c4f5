"""A job's source: the files of a directory on this machine, for ``--source DIR``.

Which files: in a git work tree, what ``git ls-files`` lists — the tracked files and
the untracked ones ``.gitignore`` does not exclude (``--cached --others
--exclude-standard``), so a build sees what a fresh commit of the tree would hold and
never ``.venv/``, ``node_modules/`` or build output — plus the commit (``HEAD``) and
whether the tree had uncommitted changes (``git status --porcelain``). Anything else:
every file under the directory. Either way only regular files and symlinks that
stay inside the directory are taken; ``.git/`` never is.

How they reach the job: ``rivet run`` *copies* them into the job's fresh workspace
(:func:`copy_into`; never a bind mount, so a job cannot change the user's tree), and
``rivet job launch`` packs them into a tar.gz (:func:`pack`) that the server stores
and the runner unpacks. The archive is reproducible — entries sorted, owner 0, times
0, modes 0644/0755 — so the same tree has the same digest, which the job records.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rivet.child_env import child_env, resolve_program
from rivet.errors import RivetError

__all__ = ["PackedSource", "SourceTree", "copy_into", "list_source", "pack"]

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SourceTree:
    root: Path
    files: list[str]  # relative, "/"-separated, sorted
    git_commit: str | None = None
    git_dirty: bool | None = None

    @property
    def is_git(self) -> bool:
        return self.git_commit is not None or self.git_dirty is not None

    def describe(self) -> str:
        if self.git_commit:
            dirty = ", with uncommitted changes" if self.git_dirty else ""
            return f"{len(self.files)} files of {self.root} (git {self.git_commit[:12]}{dirty})"
        if self.is_git:
            return f"{len(self.files)} files of {self.root} (git, no commit yet)"
        return f"{len(self.files)} files of {self.root}"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    try:
        return subprocess.run(
            [resolve_program("git"), "-C", str(root), *args],
            capture_output=True,
            env=child_env(where="--source"),
            timeout=120,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None


def list_source(directory: Path) -> SourceTree:
    """The files ``--source directory`` sends (module docstring). Raises RivetError
    naming the directory when it is not one."""
    root = directory.resolve()
    if not root.is_dir():
        raise RivetError(f"--source {directory}: not a directory")
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside is not None and inside.returncode == 0 and inside.stdout.strip() == b"true":
        listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        if listed is None or listed.returncode != 0:
            why = listed.stderr.decode(errors="replace").strip() if listed else "git not found"
            raise RivetError(f"--source {directory}: git ls-files failed: {why}")
        names = sorted({os.fsdecode(n) for n in listed.stdout.split(b"\0") if n})
        head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
        commit = head.stdout.decode().strip() if head and head.returncode == 0 else None
        status = _git(root, "status", "--porcelain", "--untracked-files=normal", ".")
        dirty = bool(status.stdout.strip()) if status and status.returncode == 0 else None
        files = [n for n in names if _takeable(root, n)]
        return SourceTree(root, files, commit or None, dirty if dirty is not None else False)
    files = []
    for top, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git" and not os.path.islink(Path(top, d)))
        for name in names:
            rel = Path(top, name).relative_to(root).as_posix()
            if _takeable(root, rel):
                files.append(rel)
    return SourceTree(root, sorted(files))


def _takeable(root: Path, rel: str) -> bool:
    """A regular file, or a symlink whose target stays inside ``root``; not under .git."""
    if rel.split("/", 1)[0] == ".git":
        return False
    path = root / rel
    try:
        info = path.lstat()
    except OSError:
        return False  # listed by git but deleted in the work tree
    if stat.S_ISREG(info.st_mode):
        return True
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path)
        if os.path.isabs(target):
            return False
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
        return not (resolved == ".." or resolved.startswith("../"))
    return False


def copy_into(tree: SourceTree, workspace: Path, max_bytes: int) -> str:
    """Copy ``tree``'s files into the fresh ``workspace`` (nothing has run there yet),
    keeping the executable bit and relative symlinks; at most ``max_bytes`` in all.
    Returns the note for the job's log."""
    total = 0
    for rel in tree.files:
        src = tree.root / rel
        dst = workspace / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        info = src.lstat()
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(src), dst)
            continue
        total += info.st_size
        if total > max_bytes:
            raise RivetError(
                f"--source {tree.root}: the files are over {max_bytes} bytes "
                "(setting artifacts.max_source_bytes × 8)"
            )
        with src.open("rb") as fin, dst.open("xb") as fout:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
        os.chmod(dst, 0o755 if info.st_mode & 0o111 else 0o644)
    return f"source: copied {tree.describe()} into the workspace"


@dataclass(frozen=True)
class PackedSource:
    sha256: str
    size: int
    files: int


class _Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what goes through it to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        self.out.write(view)
        self.hash.update(view)
        self.size += len(view)
        return len(view)


def pack(
    tree: SourceTree,
    out: BinaryIO,
    max_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PackedSource:
    """Write ``tree`` to ``out`` as a reproducible tar.gz (module docstring); its
    SHA-256 and size. ``progress`` gets the bytes of each file as it is packed."""
    hashing = _Hashing(out)
    with (
        gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in tree.files:
            path = tree.root / rel
            info = path.lstat()
            entry = tarfile.TarInfo(rel)
            entry.mtime = 0
            entry.uid = entry.gid = 0
            entry.uname = entry.gname = ""
            if stat.S_ISLNK(info.st_mode):
                entry.type = tarfile.SYMTYPE
                entry.linkname = os.readlink(path)
                entry.mode = 0o777
                tar.addfile(entry)
                continue
            entry.size = info.st_size
            entry.mode = 0o755 if info.st_mode & 0o111 else 0o644
            with path.open("rb") as f:
                tar.addfile(entry, f)
            if progress is not None:
                progress(info.st_size)
            if max_bytes is not None and hashing.size > max_bytes:
                raise RivetError(
                    f"--source {tree.root}: the archive is over the server's limit of "
                    f"{max_bytes} bytes (server setting artifacts.max_source_bytes)"
                )
    return PackedSource(hashing.hash.hexdigest(), hashing.size, len(tree.files))
