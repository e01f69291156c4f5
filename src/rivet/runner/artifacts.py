"""The runner's side of artifacts and sources: :class:`RemoteArtifacts` (the job's
``artifact.*`` calls, sent to the server over the runner's token, for the attempt it
holds) and :func:`source_filler` (downloads the job's source archive and unpacks it
into the workspace before the first stage).

Bytes stream both ways in chunks: an upload reads its workspace file as it sends
(``Content-Length`` first, so the server refuses an oversized file before reading
it), a download writes into the workspace as it receives and checks the SHA-256 at
the end (a mismatch fails the call; the half-written file is never renamed into
place). A call that finds the server unavailable is retried a few times with
backoff; every other refusal (not found, not permitted, too large, the attempt
ended) becomes an :class:`~rivet.engine.artifacts.ArtifactError` with the server's
message, i.e. a Lua error at the pipeline's line.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar

from rivet.engine.artifacts import (
    ArtifactError,
    ArtifactManifest,
    FileWriter,
    StoredFile,
    UploadFile,
    check_artifact_path,
)
from rivet.engine.source_archive import unpack_source
from rivet.protocol import ArtifactFileView, ArtifactList, SourceInfo
from rivet.runner.client import RunnerClient, RunnerClientError, ServerUnavailable
from rivet.runner.retry import Backoff

__all__ = ["SOURCE_UNPACK_MAX", "RemoteArtifacts", "source_filler"]

T = TypeVar("T")
CHUNK = 1024 * 1024
TRIES = 5
# The most a source archive may unpack to on this runner (also at most 200 times its
# compressed size: rivet.engine.source_archive).
SOURCE_UNPACK_MAX = 8 * 1024**3


def _retried(call: Callable[[], T], give_up: threading.Event) -> T:
    backoff = Backoff(0.5, 10.0)
    for attempt in range(TRIES):
        try:
            return call()
        except ServerUnavailable as exc:
            if attempt == TRIES - 1 or give_up.is_set():
                raise ArtifactError(f"the server is unavailable: {exc}") from None
            give_up.wait(max(backoff.next_delay(), min(exc.retry_after or 0, 10.0)))
        except RunnerClientError as exc:
            raise ArtifactError(str(exc)) from None
    raise AssertionError("unreachable")


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


class RemoteArtifacts:
    def __init__(
        self,
        client: RunnerClient,
        job_id: str,
        attempt: int,
        give_up: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.attempt = attempt
        self.give_up = give_up or threading.Event()

    def _base(self) -> str:
        return f"/api/runner/jobs/{self.job_id}"

    def upload(self, name: str, files: Sequence[UploadFile]) -> ArtifactManifest:
        stored: list[StoredFile] = []
        for file in files:
            view = _retried(functools.partial(self._upload_one, name, file), self.give_up)
            stored.append(StoredFile(view.path, view.size, view.sha256, view.mode))
        return ArtifactManifest(self.job_id, name, stored)

    def _upload_one(self, name: str, file: UploadFile) -> ArtifactFileView:
        handle = file.open()
        size = os.fstat(handle.fileno()).st_size
        params: dict[str, str | int] = {
            "path": file.path,
            "mode": file.mode,
            "attempt": self.attempt,
        }
        response = self.client.upload_raw(
            f"{self._base()}/artifacts/{name}/files",
            params,
            _chunks(handle),
            size,
            f"artifact upload of {file.path}",
        )
        return ArtifactFileView.model_validate_json(response.content)

    def download(self, name: str, job: str, write: FileWriter) -> ArtifactManifest:
        params: dict[str, str | int] = {"name": name, "job": job, "attempt": self.attempt}
        found = _retried(
            lambda: self.client.get_json(
                f"{self._base()}/artifacts", params, ArtifactList, f"artifact lookup of '{name}'"
            ),
            self.give_up,
        )
        if not found.artifacts:
            raise ArtifactError(f"job {found.job_id} has no artifact '{name}'")
        files = [
            StoredFile(check_artifact_path(f.path), f.size, f.sha256, f.mode)
            for f in found.artifacts[0].files
        ]
        for file in files:
            one = functools.partial(self._download_one, found.job_id, name, file, write)
            _retried(one, self.give_up)
        return ArtifactManifest(found.job_id, name, files)

    def _download_one(self, source: str, name: str, file: StoredFile, write: FileWriter) -> None:
        params: dict[str, str | int] = {
            "job": source,
            "name": name,
            "path": file.path,
            "attempt": self.attempt,
        }
        with self.client.download_raw(
            f"{self._base()}/artifact-files", params, f"artifact download of {file.path}"
        ) as response:
            write(file, _verified(response.iter_bytes(CHUNK), file))


def _verified(chunks: Iterator[bytes], file: StoredFile) -> Iterator[bytes]:
    """``chunks``, raising at the end when they are not the file's bytes."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    if size != file.size or digest.hexdigest() != file.sha256:
        raise ArtifactError(
            f"{file.path}: the bytes received ({size}) do not match the artifact's "
            f"size {file.size} and sha256 {file.sha256[:12]}"
        )


def source_filler(
    client: RunnerClient, job_id: str, attempt: int, source: SourceInfo, spool_dir: Path
) -> Callable[[Path], str | None]:
    """The executor's ``fill_workspace`` for a job launched with a source archive."""

    def fill(workspace: Path) -> str | None:
        spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".source-", suffix=".tar.gz", dir=spool_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                file = StoredFile("source.tar.gz", source.size, source.sha256)
                params: dict[str, str | int] = {"attempt": attempt}

                def fetch() -> None:
                    out.seek(0)
                    out.truncate()
                    with client.download_raw(
                        f"/api/runner/jobs/{job_id}/source", params, "source download"
                    ) as response:
                        for chunk in _verified(response.iter_bytes(CHUNK), file):
                            out.write(chunk)

                _retried(fetch, threading.Event())
            files, size = unpack_source(path, workspace, SOURCE_UNPACK_MAX)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        commit = f", git {source.git_commit[:12]}" if source.git_commit else ""
        dirty = " with uncommitted changes" if source.git_dirty else ""
        return f"source: unpacked {files} files ({size} bytes{commit}{dirty}) into the workspace"

    return fill
