"""The archive plugin's Python side: ``create``, ``extract`` and ``list`` on files in
the job workspace, through the fs jail (paths resolved by
:class:`~rivet.engine.modules.fs_module.jail.Workspace`, so nothing outside is read or
written), unpacking with :mod:`rivet.engine.archives` (every unsafe entry refused,
naming it) under the ``[archive]`` policy caps.

Writes count against the ``[fs]`` policy like ``fs`` writes: ``fs.max_file_bytes``
per file (the archive made, each file unpacked) and ``fs.max_job_bytes`` for all the
archive calls of the job together. A stage with ``readonly = true`` refuses create
and extract. ``create`` writes a temporary file and renames it into place; a failed
``extract`` removes what it created.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

import zstandard

from rivet.engine.archives import ArchiveError, check_name, extract, list_entries
from rivet.engine.context import JobContext
from rivet.engine.modules.fs_module.jail import DIR_FLAGS, JailError, Workspace, open_regular
from rivet.engine.modules.fs_module.tree import Budget, lstat, temp_name
from rivet.engine.policy.violation import PolicyViolation
from rivet.lua.lua_values import is_table, raw
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["install"]

WRITE_FORMATS = ("tar", "tar.gz", "tar.zst", "zip")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _Capped:
    """A file object that refuses to grow past ``fs.max_file_bytes`` or the job budget."""

    def __init__(self, fd: int, budget: Budget, shown: str) -> None:
        self.file = os.fdopen(fd, "wb")
        self.budget, self.shown = budget, shown
        self.total = 0

    def write(self, data: bytes) -> int:
        self.total += len(data)
        try:
            self.budget.policy.check_file_size(self.total)
        except PolicyViolation as exc:
            raise JailError(f"{self.shown}: {exc}") from None
        self.budget.reserve(len(data), self.shown)
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class _Archive:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.ws = Workspace(ctx.workspace, ctx.policy.fs)
        self.written = 0

    def _writable(self) -> None:
        stage = self.ctx.stage_def
        if stage is not None and stage.readonly:
            raise JailError(f"stage '{stage.name}' is read-only (readonly = true)")

    def _open(self, path: str) -> IO[bytes]:
        with self.ws.resolve(path) as r:
            if r.name is None:
                raise JailError(f"{r.shown} is a directory")
            return os.fdopen(open_regular(r.dir_fd, r.name, os.O_RDONLY, r.shown), "rb")

    def listing(self, path: str) -> list[dict[str, Any]]:
        with self._open(path) as f:
            entries = list_entries(cast(Any, f), self.ctx.policy.archive.limits())
        return [
            {"name": e.name, "type": e.kind, "size": e.size, "mode": e.mode}
            | ({"target": e.target} if e.target is not None else {})
            for e in entries
        ]

    def extract(self, path: str, to: str) -> list[str]:
        self._writable()
        budget = Budget(self.ctx.policy.fs, self.written)
        with self._open(path) as f, self.ws.resolve(to or ".", make_parents=True) as r:
            if r.name is None:
                dest = os.dup(r.dir_fd)
            else:
                if lstat(r.dir_fd, r.name) is None:
                    os.mkdir(r.name, 0o755, dir_fd=r.dir_fd)
                    if r.owner is not None:
                        os.chown(r.name, *r.owner, dir_fd=r.dir_fd, follow_symlinks=False)
                try:
                    dest = os.open(r.name, DIR_FLAGS, dir_fd=r.dir_fd)
                except OSError:
                    raise JailError(f"{r.shown} is not a directory") from None
            try:
                entries = extract(
                    cast(Any, f),
                    dest,
                    self.ctx.policy.archive.limits(),
                    owner=r.owner,
                    reserve=budget.reserve,
                )
            finally:
                os.close(dest)
        self.written += budget.used
        return [e.name for e in entries]

    def create(self, path: str, sources: list[str], fmt: str) -> int:
        self._writable()
        if fmt not in WRITE_FORMATS:
            raise JailError(f"format '{fmt}' is not one of {', '.join(WRITE_FORMATS)}")
        budget = Budget(self.ctx.policy.fs, self.written)
        with self.ws.resolve(path, make_parents=True) as out:
            if out.name is None:
                raise JailError(f"{out.shown} is a directory")
            temp = temp_name()
            fd = os.open(temp, _CREATE, 0o644, dir_fd=out.dir_fd)
            sink = _Capped(fd, budget, out.shown)
            try:
                try:
                    self._pack(cast(Any, sink), sources, fmt, out.rel_path)
                finally:
                    sink.close()
                if out.owner is not None:
                    os.chown(temp, *out.owner, dir_fd=out.dir_fd, follow_symlinks=False)
                os.rename(temp, out.name, src_dir_fd=out.dir_fd, dst_dir_fd=out.dir_fd)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=out.dir_fd)
                raise
        self.written += budget.used
        return budget.used

    def _pack(self, sink: IO[bytes], sources: list[str], fmt: str, skip: str) -> None:
        if fmt == "zip":
            with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as z:
                for name, info, opener in self._walk(sources, skip):
                    self._zip_one(z, name, info, opener)
            return
        if fmt == "tar.zst":
            zst = zstandard.ZstdCompressor().stream_writer(cast(Any, sink), closefd=False)
            with zst, tarfile.open(fileobj=cast(Any, zst), mode="w|") as tar:
                self._tar_all(tar, sources, skip)
            return
        mode = "w:gz" if fmt == "tar.gz" else "w"
        with tarfile.open(fileobj=sink, mode=mode) as tar:  # type: ignore[call-overload]
            self._tar_all(tar, sources, skip)

    def _tar_all(self, tar: tarfile.TarFile, sources: list[str], skip: str) -> None:
        for name, info, opener in self._walk(sources, skip):
            t = tarfile.TarInfo(name)
            t.mode = stat.S_IMODE(info.st_mode) & 0o777
            t.mtime = int(info.st_mtime)
            if stat.S_ISDIR(info.st_mode):
                t.type = tarfile.DIRTYPE
                tar.addfile(t)
            elif stat.S_ISLNK(info.st_mode):
                t.type, t.linkname = (
                    tarfile.SYMTYPE,
                    opener().read().decode("utf-8", "surrogateescape"),
                )
                tar.addfile(t)
            else:
                t.size = info.st_size
                with opener() as f:
                    tar.addfile(t, f)

    def _zip_one(
        self, z: zipfile.ZipFile, name: str, info: os.stat_result, opener: Callable[[], IO[bytes]]
    ) -> None:
        if stat.S_ISDIR(info.st_mode):
            z.mkdir(name) if hasattr(z, "mkdir") else z.writestr(name + "/", b"")
            return
        zi = zipfile.ZipInfo(name)
        zi.create_system = 3
        zi.compress_type = zipfile.ZIP_DEFLATED
        zi.external_attr = (info.st_mode & 0o170777) << 16
        with opener() as f, z.open(zi, "w") as w:
            while chunk := f.read(1 << 20):
                w.write(chunk)

    def _walk(
        self, sources: list[str], skip: str
    ) -> Iterator[tuple[str, os.stat_result, Callable[[], IO[bytes]]]]:
        """(archive name, lstat, opener) of every entry under the sources, never
        following a link (a link is stored as itself)."""
        for source in sources:
            with self.ws.resolve(source, follow=False) as r:
                if r.name is None:
                    raise JailError(f"{r.shown} is the workspace root; list the entries to archive")
                top = check_name(r.rel_path)
                yield from self._entries(r.dir_fd, r.name, top, skip)

    def _entries(
        self, dir_fd: int, name: str, arc: str, skip: str
    ) -> Iterator[tuple[str, os.stat_result, Callable[[], IO[bytes]]]]:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if arc == skip:
            return
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(name, dir_fd=dir_fd).encode("utf-8", "surrogateescape")
            yield arc, info, lambda: io.BytesIO(target)
        elif stat.S_ISREG(info.st_mode):
            yield (
                arc,
                info,
                lambda: os.fdopen(open_regular(dir_fd, name, os.O_RDONLY, repr(arc)), "rb"),
            )
        elif stat.S_ISDIR(info.st_mode):
            yield arc, info, lambda: io.BytesIO(b"")
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            try:
                for child in sorted(os.listdir(fd)):
                    yield from self._entries(fd, child, f"{arc}/{child}", skip)
            finally:
                os.close(fd)
        else:
            raise JailError(f"{arc!r} is not a file, directory or symlink; not archived")


def _strings(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not is_table(value):
        raise JailError(f"{what} must be a path or a list of paths")
    items = raw(value)
    out = [items[i] for i in range(1, len(items) + 1)]
    if not out or not all(isinstance(v, str) for v in out):
        raise JailError(f"{what} must be a non-empty list of paths (strings)")
    return out


def install(sandbox: Sandbox, ctx: JobContext) -> Any:
    """The ``native`` table of the archive plugin (plain Python functions)."""
    impl = _Archive(ctx)

    def guard(name: str, fn: Callable[..., Any]) -> Any:
        def call(*args: Any) -> Any:
            ctx.require_run_phase(f"archive.{name}")
            try:
                return sandbox.to_lua(fn(*args), f"archive.{name}")
            except (JailError, ArchiveError) as exc:
                raise LuaCallError(f"archive.{name}: {exc}") from None
            except OSError as exc:
                raise LuaCallError(f"archive.{name}: {exc.strerror or exc}") from None

        return sandbox.expose(call, f"archive.{name}")

    def create(path: Any, sources: Any, fmt: Any) -> int:
        return impl.create(str(path), _strings(sources, "from"), str(fmt))

    def extract_(path: Any, to: Any) -> list[str]:
        return impl.extract(str(path), "." if to is None else str(to))

    table = sandbox.table()
    table["create"] = guard("create", create)
    table["extract"] = guard("extract", extract_)
    table["list"] = guard("list", lambda path: impl.listing(str(path)))
    table["formats"] = sandbox.table(list(WRITE_FORMATS))
    return table
