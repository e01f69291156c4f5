"""Safe reading and unpacking of tar and zip archives from untrusted sources.

Used by the ``archive`` plugin (``archive.extract``, ``archive.list``) and meant for
anything else that unpacks an archive a pipeline or a user made (an uploaded job
source, a downloaded artifact). The contract, for every entry, *before anything is
written* (the whole archive is checked first, then unpacked):

- its name is relative and stays inside: an absolute name (``/etc/x``), a ``..``
  component, a NUL byte, a backslash or a drive letter (``C:``) is refused;
- a symlink's target is relative, never absolute, and its ``..`` components come only
  at its start and do not climb above the destination from the link's directory, so
  whatever other links of the archive lie on its way, it resolves inside;
- a hard link names a regular file extracted earlier from the same archive;
- device nodes, FIFOs, sockets and any entry with the set-user-ID, set-group-ID (or
  sticky) bit are refused;
- an entry never replaces a directory with something else, and never goes *through*
  a symlink (one from the archive or one already in the destination: the walk opens
  each component with ``O_NOFOLLOW``, so nothing is ever written outside);
- bombs: the number of entries, the total of the unpacked sizes and its ratio to the
  archive's own size are capped (:class:`ArchiveLimits`), and the bytes really
  written are counted again while unpacking (a lying header cannot pass).

Every refusal is an :class:`ArchiveError` naming the entry (``entry '../x': …``).
What one call created is removed again when unpacking fails half-way (disk full, a
caller's ``reserve`` refusing); files it replaced keep their new content.

The destination is a directory *descriptor*; new entries are created relative to it
and chowned to ``owner`` when given (the root of a job's user namespace). Formats:
``tar``, ``tar.gz``, ``tar.bz2``, ``tar.xz``, ``tar.zst`` (with the ``zstandard``
package) and ``zip``, detected from the content, not the name.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from rivet.errors import RivetError

__all__ = [
    "FORMATS",
    "ArchiveError",
    "ArchiveLimits",
    "Entry",
    "detect_format",
    "extract",
    "list_entries",
    "open_zstd",
]

FORMATS = ("tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip")
GiB = 1 << 30
CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
_TEMP = ".rivet-unpack-"

Reserve = Callable[[int, str], None]


class ArchiveError(RivetError):
    """An archive is refused: an unsafe entry, a cap exceeded, an unknown format."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps against decompression bombs; 0 means no cap.

    ``max_total_bytes``: the unpacked sizes of all entries together.
    ``max_ratio``: that total divided by the archive's own size (gzip rarely passes
    10, a bomb reaches thousands). ``max_entries``: entries in the archive."""

    max_total_bytes: int = 1 * GiB
    max_ratio: int = 200
    max_entries: int = 100_000


@dataclass(frozen=True)
class Entry:
    """One checked entry: ``kind`` is ``file``, ``dir``, ``symlink`` or ``hardlink``;
    ``name`` is normalised (no ``./``, no trailing ``/``); ``target`` is the link's."""

    name: str
    kind: str
    size: int
    mode: int
    target: str | None = None


def _shown(name: str) -> str:
    text = name if len(name) <= 200 else name[:120] + "…" + name[-60:]
    return repr(text) if text.isprintable() else ascii(text)


def _refuse(name: str, why: str) -> ArchiveError:
    return ArchiveError(f"entry {_shown(name)}: {why}")


def check_name(name: str) -> str:
    """The normalised relative name, or an ArchiveError saying why it is unsafe."""
    if "\0" in name:
        raise _refuse(name, "contains a NUL byte")
    if "\\" in name:
        raise _refuse(name, "contains a backslash (a Windows path?); refused")
    if name.startswith("/"):
        raise _refuse(name, "is an absolute path; entries must stay inside the destination")
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        raise _refuse(name, "starts with a drive letter; entries must be relative")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(name, "has a '..' component, which would leave the destination")
    if not parts:
        raise _refuse(name, "names the destination itself")
    return "/".join(parts)


def check_link_target(name: str, target: str) -> None:
    """A symlink at ``name`` pointing to ``target`` must resolve inside (see module)."""
    if not target or "\0" in target:
        raise _refuse(name, "is a symlink with an empty or NUL-holding target")
    if target.startswith("/"):
        raise _refuse(name, f"is a symlink to the absolute path {_shown(target)} (outside)")
    parts = [p for p in target.split("/") if p not in ("", ".")]
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    if ".." in parts[ups:]:
        raise _refuse(name, f"is a symlink to {_shown(target)}: '..' after a name is refused")
    if ups > name.count("/"):
        raise _refuse(name, f"is a symlink to {_shown(target)}, which points outside")


def _zstd_reader(raw: BinaryIO) -> BinaryIO:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - the package is a dependency
        raise ArchiveError("tar.zst needs the Python package 'zstandard'") from None
    reader: BinaryIO = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
    return reader


def open_zstd(raw: BinaryIO) -> BinaryIO:
    """A decompressing reader over a zstd stream (for tarfile's stream mode)."""
    return _zstd_reader(raw)


def detect_format(head: bytes) -> str:
    """The format of an archive from its first 512 bytes (or an ArchiveError)."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(b"BZh"):
        return "tar.bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "tar.xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "tar.zst"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    raise ArchiveError("not a tar, tar.gz, tar.bz2, tar.xz, tar.zst or zip archive")


@contextlib.contextmanager
def _members(fileobj: BinaryIO) -> Iterator[Iterator[tuple[Entry, Callable[[], BinaryIO]]]]:
    """(entry, opener of its content) for every entry, unchecked but normalised kinds."""
    fileobj.seek(0)
    fmt = detect_format(fileobj.read(512))
    fileobj.seek(0)
    if fmt == "zip":
        try:
            archive = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"not a readable zip archive: {exc}") from None
        with archive:
            yield (_zip_entry(archive, info) for info in archive.infolist())
        return
    stream: BinaryIO = _zstd_reader(fileobj) if fmt == "tar.zst" else fileobj
    mode = "r|" if fmt == "tar.zst" else "r:*"
    try:
        tar = tarfile.open(fileobj=stream, mode=mode)  # type: ignore[call-overload]  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a readable {fmt} archive: {exc}") from None
    try:
        yield _tar_entries(tar)
    except (tarfile.TarError, EOFError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"the archive is damaged: {exc}") from None
    finally:
        tar.close()


def _tar_entries(tar: tarfile.TarFile) -> Iterator[tuple[Entry, Callable[[], BinaryIO]]]:
    for member in tar:
        if member.isreg():
            kind = "file"
        elif member.isdir():
            kind = "dir"
        elif member.issym():
            kind = "symlink"
        elif member.islnk():
            kind = "hardlink"
        elif member.isfifo():
            kind = "fifo"
        elif member.ischr() or member.isblk():
            kind = "device"
        else:
            kind = f"type {member.type!r}"
        entry = Entry(
            member.name,
            kind,
            member.size if kind == "file" else 0,
            member.mode,
            member.linkname if kind in ("symlink", "hardlink") else None,
        )

        def opener(m: tarfile.TarInfo = member) -> BinaryIO:
            f = tar.extractfile(m)
            return cast(BinaryIO, f) if f is not None else io.BytesIO()

        yield entry, opener


def _zip_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo
) -> tuple[Entry, Callable[[], BinaryIO]]:
    unix = info.external_attr >> 16 if info.create_system == 3 else 0
    fmt = stat.S_IFMT(unix)
    if info.is_dir():
        kind = "dir"
    elif fmt == stat.S_IFLNK:
        kind = "symlink"
    elif fmt in (0, stat.S_IFREG):
        kind = "file"
    elif fmt == stat.S_IFIFO:
        kind = "fifo"
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        kind = "device"
    else:
        kind = "socket"
    mode = stat.S_IMODE(unix) if unix else (0o755 if kind == "dir" else 0o644)
    target = None
    if kind == "symlink":
        if info.file_size > 4096:
            raise _refuse(info.filename, "is a symlink with a target over 4096 bytes")
        target = archive.read(info).decode("utf-8", "surrogateescape")
    size = info.file_size if kind == "file" else 0

    def opener() -> BinaryIO:
        return cast(BinaryIO, archive.open(info))  # reads at most file_size bytes, checks the CRC

    return Entry(info.filename, kind, size, mode, target), opener


@dataclass
class _Checker:
    """The checks that need the entries seen so far (hard links, dir/file clashes)."""

    limits: ArchiveLimits
    archive_bytes: int
    count: int = 0
    total: int = 0
    kinds: dict[str, str] = field(default_factory=dict)

    def check(self, raw: Entry) -> Entry:
        name = check_name(raw.name)
        self.count += 1
        if self.limits.max_entries and self.count > self.limits.max_entries:
            raise ArchiveError(
                f"entry {_shown(name)}: the archive has more than {self.limits.max_entries} "
                "entries, over policy archive.max_entries"
            )
        if raw.kind not in ("file", "dir", "symlink", "hardlink"):
            raise _refuse(name, f"is a {raw.kind}; only files, directories and links are unpacked")
        if raw.mode & _SPECIAL_BITS:
            bits = stat.filemode(raw.mode)[1:]
            raise _refuse(name, f"has the set-user-ID, set-group-ID or sticky bit ({bits})")
        for i in range(name.count("/")):
            parent = name.rsplit("/", name.count("/") - i)[0]
            if self.kinds.get(parent, "dir") != "dir":
                raise _refuse(name, f"goes through {_shown(parent)}, a {self.kinds[parent]}")
        before = self.kinds.get(name)
        if before == "dir" and raw.kind != "dir":
            raise _refuse(name, f"would replace a directory with a {raw.kind}")
        target = raw.target
        if raw.kind == "symlink":
            check_link_target(name, target or "")
        elif raw.kind == "hardlink":
            try:
                target = check_name(target or "")
            except ArchiveError as exc:
                raise _refuse(name, f"is a hard link whose target {exc}") from None
            if self.kinds.get(target) != "file":
                raise _refuse(
                    name, f"is a hard link to {_shown(target)}, not a file earlier in the archive"
                )
        self.total += raw.size
        self._caps(name)
        self.kinds[name] = "file" if raw.kind == "hardlink" else raw.kind
        return Entry(name, raw.kind, raw.size, stat.S_IMODE(raw.mode) & 0o777, target)

    def _caps(self, name: str) -> None:
        cap = self.limits.max_total_bytes
        if cap and self.total > cap:
            raise _refuse(
                name,
                f"brings the unpacked size to {self.total} bytes, over policy "
                f"archive.max_total_bytes ({cap})",
            )
        ratio = self.limits.max_ratio
        if ratio and self.total > ratio * max(self.archive_bytes, 1) and self.total > CHUNK:
            raise _refuse(
                name,
                f"brings the unpacked size to {self.total} bytes, over "
                f"{ratio} times the archive's {self.archive_bytes} bytes "
                "(policy archive.max_ratio; a decompression bomb?)",
            )


def _size_of(fileobj: BinaryIO) -> int:
    fileobj.seek(0, os.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


def list_entries(fileobj: BinaryIO, limits: ArchiveLimits | None = None) -> list[Entry]:
    """Every entry, checked as :func:`extract` checks them (the first unsafe one
    raises). ``fileobj`` must be seekable; nothing is written."""
    checker = _Checker(limits or ArchiveLimits(), _size_of(fileobj))
    with _members(fileobj) as members:
        return [checker.check(raw) for raw, _ in members]


@dataclass
class _Unpack:
    dest_fd: int
    owner: tuple[int, int] | None
    reserve: Reserve | None
    created: list[tuple[str, bool]] = field(default_factory=list)  # (name, is_dir)
    written: int = 0

    @contextlib.contextmanager
    def parent(self, entry: Entry) -> Iterator[tuple[int, str]]:
        """(descriptor of the entry's directory, last name), making directories."""
        parts = entry.name.split("/")
        fds: list[int] = []
        try:
            fd = self.dest_fd
            for i, part in enumerate(parts[:-1]):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    self._made(fd, part, "/".join(parts[: i + 1]), True)
                except FileExistsError:
                    pass
                try:
                    fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    where = _shown("/".join(parts[: i + 1]))
                    raise _refuse(
                        entry.name,
                        f"goes through {where}, which is not a directory "
                        "in the destination (a symlink is never followed)",
                    ) from None
                fds.append(fd)
            yield fd, parts[-1]
        finally:
            for opened in fds:
                os.close(opened)

    def _made(self, dir_fd: int, name: str, rel: str, is_dir: bool) -> None:
        self.created.append((rel, is_dir))
        if self.owner is not None:
            os.chown(name, *self.owner, dir_fd=dir_fd, follow_symlinks=False)

    def unpack(self, entry: Entry, opener: Callable[[], BinaryIO]) -> None:
        with self.parent(entry) as (fd, name):
            existing = _lstat(fd, name)
            if entry.kind == "dir":
                if existing is None:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    self._made(fd, name, entry.name, True)
                elif not stat.S_ISDIR(existing.st_mode):
                    raise _refuse(entry.name, "would replace a non-directory in the destination")
                return
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise _refuse(entry.name, "would replace a directory in the destination")
            if entry.kind == "file":
                if self.reserve is not None:
                    self.reserve(entry.size, entry.name)
                self._file(fd, name, entry, opener)
            elif entry.kind == "symlink":
                temp = _TEMP + os.urandom(6).hex()
                os.symlink(entry.target or "", temp, dir_fd=fd)
                os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            else:
                self._hardlink(fd, name, entry)
            if existing is None:
                self._made(fd, name, entry.name, False)

    def _file(self, fd: int, name: str, entry: Entry, opener: Callable[[], BinaryIO]) -> None:
        temp = _TEMP + os.urandom(6).hex()
        out = os.open(temp, _CREATE, 0o600, dir_fd=fd)
        try:
            try:
                with opener() as src:
                    left = entry.size
                    while chunk := src.read(min(CHUNK, left + 1)):
                        left -= len(chunk)
                        if left < 0:
                            raise _refuse(entry.name, "holds more bytes than its header says")
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(out, view) :]
                os.fchmod(out, entry.mode)
            finally:
                os.close(out)
            os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=fd)
            raise
        self.written += entry.size

    def _hardlink(self, fd: int, name: str, entry: Entry) -> None:
        source = Entry(entry.target or "", "file", 0, 0)
        with self.parent(source) as (src_fd, src_name):
            found = _lstat(src_fd, src_name)
            if found is None or not stat.S_ISREG(found.st_mode):
                raise _refuse(entry.name, f"is a hard link to {_shown(source.name)}, not a file")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
            os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=fd, follow_symlinks=False)

    def undo(self) -> None:
        for rel, is_dir in reversed(self.created):
            entry = Entry(rel, "dir" if is_dir else "file", 0, 0)
            with contextlib.suppress(OSError, ArchiveError), self.parent(entry) as (fd, name):
                if is_dir:
                    os.rmdir(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def extract(
    fileobj: BinaryIO,
    dest_fd: int,
    limits: ArchiveLimits | None = None,
    *,
    owner: tuple[int, int] | None = None,
    reserve: Reserve | None = None,
) -> list[Entry]:
    """Check every entry of ``fileobj`` (seekable), then unpack them under the
    directory ``dest_fd``; returns the entries. ``reserve(size, name)`` is called
    before each file is written and may raise to refuse it (a write budget); its
    exception propagates after what this call created was removed."""
    entries = list_entries(fileobj, limits)
    job = _Unpack(dest_fd, owner, reserve)
    try:
        with _members(fileobj) as members:
            for checked, (_, opener) in zip(entries, members, strict=False):
                job.unpack(checked, opener)
    except BaseException:
        job.undo()
        raise
    return entries
