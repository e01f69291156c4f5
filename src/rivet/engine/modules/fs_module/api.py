"""``fs.*``: files in the job workspace, jailed there.

Every path is relative to the workspace (``/workspace/x``, the containers' view, is
accepted too) and resolved by :mod:`rivet.engine.modules.fs_module.jail`, which never
lets the kernel follow a symlink: ``..`` past the root, absolute paths elsewhere and
symlinks leading out — also ones a container plants at any moment — are refused
with an error naming the path. See that module for how races are excluded.

Paths are capped by the ``[fs]`` policy (bytes, name length, depth); copies keep
permission bits but never the set-user-ID or set-group-ID bits; new entries belong to
the workspace's owner (the root of the job's user namespace when it has one).

Writes (write, append, copy) go to a temporary file in the destination directory
that is renamed into place, and the per-file and per-job limits of the ``[fs]``
policy are checked before the first byte is written, so a refused or failed write
leaves nothing behind. ``append`` writes in place and truncates back on failure.
In a stage with ``readonly = true`` every call that changes the workspace fails.

Contents are byte strings both ways, binary included: see
:mod:`rivet.engine.modules.fs_module.glue` for how they cross lupa's UTF-8 boundary.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Any

from rivet.engine.context import JobContext
from rivet.engine.modules.fs_module.glue import GLUE
from rivet.engine.modules.fs_module.jail import (
    DIR_FLAGS,
    JailError,
    MissingError,
    Resolved,
    Workspace,
    check_path,
    display,
    kind,
    open_regular,
    split_path,
)
from rivet.engine.modules.fs_module.tree import (
    Budget,
    copy_file,
    copy_tree,
    glob,
    list_dir,
    lstat,
    replace_file,
)
from rivet.engine.policy.violation import PolicyViolation
from rivet.engine.workspaces import chown_new, remove_at
from rivet.lua.lua_values import is_table, raw, render, type_name
from rivet.lua.sandbox import LuaCallError, Sandbox
from rivet.lua.surface import RUNTIME_MODULES

__all__ = ["FUNCTIONS", "install"]

FUNCTIONS = RUNTIME_MODULES["fs"]


def _path(value: Any) -> str:
    """A path from the glue: a str, or ``{ latin1 }`` for bytes that are not UTF-8
    (decoded the way Python decodes such file names: surrogateescape)."""
    if isinstance(value, str):
        return value
    return os.fsdecode(str(raw(value)[1]).encode("latin-1"))


def _content(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(raw(value)[1]).encode("latin-1")


def _last_name(path: str, what: str) -> str:
    parts = split_path(path)
    if not parts or parts[-1] == "..":
        raise JailError(f"{display(path)}: the {what} must name a file or directory")
    return parts[-1]


def _inside(child: str, parent: str) -> bool:
    return parent == "" or child == parent or child.startswith(parent + "/")


class _Fs:
    def __init__(self, sandbox: Sandbox, ctx: JobContext) -> None:
        self.sandbox = sandbox
        self.ctx = ctx
        self.ws = Workspace(ctx.workspace, ctx.policy.fs)
        self.written = 0  # bytes this job wrote through fs (the per-job limit)

    # --- checks -------------------------------------------------------------------------

    def writable(self) -> None:
        stage = self.ctx.stage_def
        if stage is not None and stage.readonly:
            raise JailError(
                f"stage '{stage.name}' is read-only (readonly = true): "
                "it cannot change the workspace"
            )

    def budget(self) -> Budget:
        return Budget(self.ctx.policy.fs, self.written)

    def precheck(self, fname: Any, path: Any, size: Any) -> None:
        """Called by the glue before it transcodes a non-UTF-8 content."""
        try:
            self.writable()
            self.budget().reserve(int(size), display(_path(path)))
        except JailError as exc:
            raise LuaCallError(f"fs.{fname}: {exc}") from None

    def bytes_table(self, values: list[bytes]) -> Any:
        return self.sandbox.table(values)

    # --- reading ------------------------------------------------------------------------

    def read(self, path: Any) -> Any:
        with self.ws.resolve(_path(path)) as r:
            if r.name is None:
                raise JailError(f"{r.shown} is a directory")
            fd = open_regular(r.dir_fd, r.name, os.O_RDONLY, r.shown)
        with os.fdopen(fd, "rb") as f:
            policy = self.ctx.policy.fs
            try:
                policy.check_read_size(os.fstat(f.fileno()).st_size)
                data = f.read(policy.max_read_bytes + 1 if policy.max_read_bytes else -1)
                policy.check_read_size(len(data))  # it grew while being read
            except PolicyViolation as exc:
                raise JailError(f"{r.shown}: {exc}") from None
        return self.bytes_table([data])

    def exists(self, path: Any) -> bool:
        try:
            with self.ws.resolve(_path(path)) as r:
                return r.name is None or lstat(r.dir_fd, r.name) is not None
        except MissingError:
            return False

    def list(self, path: Any) -> Any:
        with self.ws.resolve(_path(path) if path is not None else ".") as r:
            if r.name is None:
                names = list_dir(r.dir_fd, r.shown)
            else:
                info = lstat(r.dir_fd, r.name)
                if info is None:
                    raise JailError(f"{r.shown} does not exist")
                if not stat.S_ISDIR(info.st_mode):
                    raise JailError(f"{r.shown} is not a directory")
                fd = os.open(r.name, DIR_FLAGS, dir_fd=r.dir_fd)
                try:
                    names = list_dir(fd, r.shown)
                finally:
                    os.close(fd)
        return self.bytes_table(sorted(os.fsencode(n) for n in names))

    def stat(self, path: Any) -> Any:
        try:
            with self.ws.resolve(_path(path), follow=False) as r:
                if r.name is None:
                    info = os.fstat(r.dir_fd)
                    target = None
                else:
                    found = lstat(r.dir_fd, r.name)
                    if found is None:
                        return None
                    info = found
                    link = stat.S_ISLNK(info.st_mode)
                    target = os.readlink(r.name, dir_fd=r.dir_fd) if link else None
        except MissingError:
            return None
        fields: dict[str, Any] = {
            "type": kind(info.st_mode),
            "size": info.st_size,
            "mtime": int(info.st_mtime),
            "mode": stat.S_IMODE(info.st_mode),
        }
        if target is not None:
            fields["target"] = os.fsencode(target)
        return self.sandbox.table(fields)

    def glob(self, pattern: Any) -> Any:
        text = _path(pattern)
        if not text:
            raise JailError("the pattern is empty")
        segments = split_path(text)
        policy = self.ctx.policy.fs
        check_path(policy, text, segments)
        with self.ws.resolve(".") as r:
            found = glob(r.dir_fd, segments, display(text), text.endswith("/"), policy.max_depth)
        return self.bytes_table([os.fsencode(p) for p in found])

    # --- writing ------------------------------------------------------------------------

    def _target(self, r: Resolved) -> os.stat_result | None:
        """The existing entry a write replaces: None, a regular file (or a link that
        appeared after the walk, which the rename replaces without following)."""
        if r.name is None:
            raise JailError(f"{r.shown} is a directory")
        info = lstat(r.dir_fd, r.name)
        if info is not None:
            if stat.S_ISDIR(info.st_mode):
                raise JailError(f"{r.shown} is a directory")
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                raise JailError(f"{r.shown} is not a regular file ({kind(info.st_mode)})")
        return info

    def write(self, path: Any, content: Any) -> None:
        self.writable()
        text, data = _path(path), _content(content)
        budget = self.budget()
        budget.reserve(len(data), display(text))
        with self.ws.resolve(text) as r:
            info = self._target(r)
            mode = info.st_mode if info is not None and stat.S_ISREG(info.st_mode) else None
            replace_file(r.dir_fd, r.name or "", [data], mode, r.owner)
        self.written += budget.used

    def append(self, path: Any, content: Any) -> None:
        self.writable()
        text, data = _path(path), _content(content)
        with self.ws.resolve(text) as r:
            info = self._target(r)
            budget = self.budget()
            if info is not None and stat.S_ISLNK(info.st_mode):
                raise JailError(f"{r.shown} changed into a symlink while being opened")
            if info is None:
                budget.reserve(len(data), r.shown)
                replace_file(r.dir_fd, r.name or "", [data], None, r.owner)
            else:
                fd = open_regular(r.dir_fd, r.name or "", os.O_WRONLY | os.O_APPEND, r.shown)
                try:
                    size = os.fstat(fd).st_size
                    try:
                        self.ctx.policy.fs.check_file_size(size + len(data))
                    except PolicyViolation as exc:
                        raise JailError(f"{r.shown}: {exc}") from None
                    budget.reserve(len(data), r.shown)
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
                    except BaseException:
                        os.ftruncate(fd, size)  # no partial append
                        raise
                finally:
                    os.close(fd)
        self.written += budget.used

    def mkdir(self, path: Any, opts: Any) -> None:
        parents = _flags("mkdir", opts, ("parents",))["parents"]
        self.writable()
        with self.ws.resolve(_path(path), make_parents=parents) as r:
            if r.name is None:
                if parents:
                    return
                raise JailError(f"{r.shown} already exists")
            try:
                os.mkdir(r.name, 0o777, dir_fd=r.dir_fd)
            except FileExistsError:
                info = lstat(r.dir_fd, r.name)
                if parents and info is not None and stat.S_ISDIR(info.st_mode):
                    return
                raise JailError(f"{r.shown} already exists") from None
            chown_new(r.owner, r.name, r.dir_fd)

    def remove(self, path: Any, opts: Any) -> None:
        recursive = _flags("remove", opts, ("recursive",))["recursive"]
        self.writable()
        with self.ws.resolve(_path(path), follow=False) as r:
            if r.name is None:
                raise JailError(f"{r.shown} is the workspace root (or leads to it): not removed")
            info = lstat(r.dir_fd, r.name)
            if info is None:
                raise JailError(f"{r.shown} does not exist")
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(r.name, dir_fd=r.dir_fd)  # a symlink itself, never its target
            elif recursive:
                # Descriptor-based and iterative: follows no link, any depth.
                problems = remove_at(r.dir_fd, r.name, r.rel)
                if problems:
                    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                    raise JailError(f"{r.shown}: {problems[0]}{more}")
            else:
                try:
                    os.rmdir(r.name, dir_fd=r.dir_fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise JailError(
                            f"{r.shown} is a directory that is not empty "
                            "(use { recursive = true } to remove it with its contents)"
                        ) from None
                    raise

    def _destination(self, dst: str, src: str, what: str) -> str:
        """``dst``, or ``dst/<last name of src>`` when ``dst`` is an existing directory
        (as cp and mv do); the result is resolved again by the caller."""
        with self.ws.resolve(dst) as d:
            if d.name is not None:
                info = lstat(d.dir_fd, d.name)
                if info is None or not stat.S_ISDIR(info.st_mode):
                    if dst.endswith("/"):
                        raise JailError(f"{d.shown} is not an existing directory")
                    return dst
        return dst.rstrip("/") + "/" + _last_name(src, what)

    def copy(self, src: Any, dst: Any) -> None:
        self.writable()
        source, dest = _path(src), _path(dst)
        target = self._destination(dest, source, "source")
        budget = self.budget()
        with self.ws.resolve(source) as s, self.ws.resolve(target) as d:
            src_dir, src_name = s.dir_fd, s.name
            if src_name is None:
                raise JailError(f"{s.shown} is the workspace root (or leads to it): not copied")
            info = lstat(src_dir, src_name)
            if info is None:
                raise JailError(f"{s.shown} does not exist")
            if stat.S_ISDIR(info.st_mode):
                if _inside(d.rel_path, s.rel_path):
                    raise JailError(f"cannot copy {s.shown} into itself ({display(dest)})")
                if d.name is None or lstat(d.dir_fd, d.name) is not None:
                    raise JailError(f"{display(target)} already exists")
                copy_tree(src_dir, src_name, d.dir_fd, d.name, budget, d.owner, d.rel_path)
            else:
                self._target(d)
                copy_file(src_dir, src_name, d.dir_fd, d.name or "", budget, s.shown, d.owner)
        self.written += budget.used

    def move(self, src: Any, dst: Any) -> None:
        self.writable()
        source, dest = _path(src), _path(dst)
        target = self._destination(dest, source, "source")
        with self.ws.resolve(source, follow=False) as s, self.ws.resolve(target) as d:
            if s.name is None:
                raise JailError(f"{s.shown} is the workspace root (or leads to it): not moved")
            if lstat(s.dir_fd, s.name) is None:
                raise JailError(f"{s.shown} does not exist")
            if d.name is None:
                raise JailError(f"{display(target)} is an existing directory")
            if _inside(d.rel_path, s.rel_path) and d.rel_path != s.rel_path:
                raise JailError(f"cannot move {s.shown} into itself ({display(dest)})")
            # rename(2) moves the entry itself: a moved symlink stays a symlink.
            os.rename(s.name, d.name, src_dir_fd=s.dir_fd, dst_dir_fd=d.dir_fd)


def _flags(fname: str, opts: Any, names: tuple[str, ...]) -> dict[str, bool]:
    found = dict.fromkeys(names, False)
    if opts is None:
        return found
    if not is_table(opts):
        example = ", ".join(f"{n} = true" for n in names)
        raise JailError(f"options must be a table like {{ {example} }}, got {type_name(opts)}")
    for key, value in opts.items():
        if key not in names:
            raise JailError(f"unknown option {render(key)} (known: {', '.join(names)})")
        if not isinstance(value, bool):
            raise JailError(f"option '{key}' must be a boolean, got {type_name(value)}")
        found[key] = value
    return found


def _describe(name: str, args: tuple[Any, ...]) -> str:
    """The path arguments of a call, for an OS error message."""
    count = 2 if name in ("copy", "move") else 1
    shown = []
    for value in args[:count]:
        if isinstance(value, str) or is_table(value):
            shown.append(display(_path(value)))
    return " -> ".join(shown)


def _guard(name: str, ctx: JobContext, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run one fs function: run phase only; every failure a LuaCallError 'fs.<name>: …'."""

    def call(*args: Any) -> Any:
        ctx.require_run_phase(f"fs.{name}")
        try:
            return fn(*args)
        except JailError as exc:
            raise LuaCallError(f"fs.{name}: {exc}") from None
        except OSError as exc:
            where = _describe(name, args)
            reason = exc.strerror or str(exc)
            raise LuaCallError(f"fs.{name}: {where + ': ' if where else ''}{reason}") from None

    return call


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    impl = _Fs(sandbox, ctx)
    table = sandbox.table()
    for name in FUNCTIONS:
        fn = _guard(name, ctx, getattr(impl, name))
        table[name] = sandbox.expose(fn, f"fs.{name}", raw=True)
    table["precheck"] = sandbox.expose(impl.precheck, "fs.write", raw=True)
    sandbox.env["fs"] = sandbox.eval_lua(GLUE, table)
