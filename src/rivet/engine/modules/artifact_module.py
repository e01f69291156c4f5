"""``artifact.upload`` and ``artifact.download``: files a job keeps, and files it takes
from an earlier job (docs/artifacts.md).

Files are gathered and written through the fs jail (:mod:`..fs_module.jail`): globs
are the ``fs.glob`` patterns, resolved inside the workspace; a matched directory
contributes every regular file below it; a symlink, FIFO or device is refused with
an error naming it (an artifact holds regular files, never links that would point
somewhere else on another machine). Downloaded files are written under ``to`` with
the paths they were uploaded with (already checked to stay relative, see
:func:`rivet.engine.artifacts.check_artifact_path`), each atomically, owned like every
file the fs module writes, never with set-id bits; a read-only stage cannot download.
Where the bytes go is the job's :class:`~rivet.engine.artifacts.JobArtifacts`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

from rivet.engine.artifacts import (
    ArtifactError,
    ArtifactManifest,
    StoredFile,
    UploadFile,
    check_artifact_name,
)
from rivet.engine.context import JobContext
from rivet.engine.modules.fs_module.jail import (
    JailError,
    Workspace,
    check_path,
    display,
    open_regular,
    split_path,
)
from rivet.engine.modules.fs_module.tree import glob, lstat, replace_file
from rivet.engine.policy.violation import PolicyViolation
from rivet.lua.lua_values import is_table, raw, render, type_name
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["install"]

MAX_FILES = 10_000


def _patterns(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if is_table(value):
        items = raw(value).array()
        if (
            items
            and len(items) == len(raw(value).keys())
            and all(isinstance(p, str) for p in items)
        ):
            return list(items)
    raise JailError(
        'the files must be a glob pattern or a list of them, like { "dist/*.whl" }, '
        f"got {type_name(value)}"
    )


class _Artifacts:
    def __init__(self, sandbox: Sandbox, ctx: JobContext) -> None:
        self.sandbox = sandbox
        self.ctx = ctx
        self.ws = Workspace(ctx.workspace, ctx.policy.fs)

    # --- upload ---------------------------------------------------------------------

    def _glob(self, pattern: str) -> list[str]:
        segments = split_path(pattern)
        policy = self.ctx.policy.fs
        check_path(policy, pattern, segments)
        with self.ws.resolve(".") as r:
            return glob(r.dir_fd, segments, display(pattern), False, policy.max_depth)

    def _opener(self, path: str) -> Any:
        def open_file() -> BinaryIO:
            with self.ws.resolve(path, follow=False) as r:
                fd = open_regular(r.dir_fd, r.name or "", os.O_RDONLY, r.shown)
            return os.fdopen(fd, "rb")

        return open_file

    def gather(self, patterns: list[str]) -> list[UploadFile]:
        files: dict[str, UploadFile] = {}
        for pattern in patterns:
            found = self._glob(pattern)
            if found == ["."]:  # the workspace itself: everything in it
                found = self._glob("**")
            if not found:
                raise JailError(f"{display(pattern)} matches no file")
            for path in found:
                with self.ws.resolve(path, follow=False) as r:
                    info = lstat(r.dir_fd, r.name) if r.name is not None else None
                if info is None:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    for inner in self._glob(path + "/**"):
                        with self.ws.resolve(inner, follow=False) as r:
                            sub = lstat(r.dir_fd, r.name or "")
                        if sub is not None and not stat.S_ISDIR(sub.st_mode):
                            self._add(files, inner, sub)
                else:
                    self._add(files, path, info)
        return list(files.values())

    def _add(self, files: dict[str, UploadFile], path: str, info: os.stat_result) -> None:
        if stat.S_ISLNK(info.st_mode):
            raise JailError(
                f"{display(path)} is a symlink: an artifact holds regular files only "
                "(upload what it points to)"
            )
        if not stat.S_ISREG(info.st_mode):
            raise JailError(f"{display(path)} is not a regular file")
        if path not in files:
            if len(files) >= MAX_FILES:
                raise JailError(f"more than {MAX_FILES} files: narrow the patterns")
            mode = stat.S_IMODE(info.st_mode) & 0o777
            files[path] = UploadFile(path, info.st_size, mode, self._opener(path))

    def upload(self, name: Any, patterns: Any) -> Any:
        name = check_artifact_name(name)
        files = self.gather(_patterns(patterns))
        manifest = self.ctx.artifacts.upload(name, files)
        total = manifest.size
        self.ctx.log(
            "info", f"artifact '{name}': uploaded {len(manifest.files)} files ({total} bytes)"
        )
        return self._result(manifest)

    # --- download -------------------------------------------------------------------

    def download(self, name: Any, opts: Any) -> Any:
        name = check_artifact_name(name)
        job, to = self._download_options(opts)
        stage = self.ctx.stage_def
        if stage is not None and stage.readonly:
            raise JailError(
                f"stage '{stage.name}' is read-only (readonly = true): it cannot download "
                "into the workspace"
            )
        manifest = self.ctx.artifacts.download(
            name, job, lambda f, chunks: self._write(to, f, chunks)
        )
        self.ctx.log(
            "info",
            f"artifact '{name}' of job {manifest.job_id}: downloaded {len(manifest.files)} "
            f"files ({manifest.size} bytes) into {to or '.'}",
        )
        return self._result(manifest)

    def _download_options(self, opts: Any) -> tuple[str, str]:
        if not is_table(opts):
            raise JailError(
                'the options must be a table like { job = "latest:build", to = "deps" }, '
                f"got {type_name(opts)}"
            )
        table = raw(opts)
        for key in table:
            if key not in ("job", "to"):
                raise JailError(f"unknown option {render(key)} (known: job, to)")
        job, to = table.get("job"), table.get("to", "")
        if not isinstance(job, str) or not job:
            raise JailError(
                f"option 'job' must be a job id or \"latest:PIPELINE\", got {type_name(job)}"
            )
        if not isinstance(to, str):
            raise JailError(f"option 'to' must be a string, got {type_name(to)}")
        return job, to.strip("/")

    def _write(self, to: str, file: StoredFile, chunks: Iterator[bytes]) -> None:
        target = f"{to}/{file.path}" if to else file.path
        try:
            self.ctx.policy.fs.check_file_size(file.size)
        except PolicyViolation as exc:
            raise ArtifactError(f"{display(target)}: {exc}") from None
        with self.ws.resolve(target, make_parents=True) as r:
            if r.name is None:
                raise JailError(f"{r.shown} is a directory")
            existing = lstat(r.dir_fd, r.name)
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise JailError(f"{r.shown} is a directory")
            replace_file(r.dir_fd, r.name, chunks, file.mode & 0o777, r.owner)

    def _result(self, manifest: ArtifactManifest) -> Any:
        return self.sandbox.table(
            {
                "name": manifest.name,
                "job": manifest.job_id,
                "size": manifest.size,
                "files": [
                    {"path": f.path, "size": f.size, "sha256": f.sha256} for f in manifest.files
                ],
            }
        )


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    impl = _Artifacts(sandbox, ctx)

    def guarded(fname: str, fn: Any) -> Any:
        def call(name: Any = None, arg: Any = None) -> Any:
            ctx.require_run_phase(f"artifact.{fname}")
            try:
                return fn(name, arg)
            except (JailError, ArtifactError) as exc:
                raise LuaCallError(f"artifact.{fname}: {exc}") from None
            except OSError as exc:
                raise LuaCallError(f"artifact.{fname}: {exc.strerror or exc}") from None

        return call

    sandbox.module(
        "artifact",
        {"upload": guarded("upload", impl.upload), "download": guarded("download", impl.download)},
    )
