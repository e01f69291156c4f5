"""Artifacts and job sources as client methods, on top of the CLI's ``RivetClient``.

Bytes stream both ways: :meth:`ArtifactClient.upload_source` sends an open file in
chunks (``progress`` is told each chunk's size), :meth:`ArtifactClient.download`
writes a file into a temporary file beside its target as it arrives, checks its
size and SHA-256, and only then renames it into place; an interrupted download is
resumed with a Range request from where it stopped."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from rivet.client.api import RivetClient, ServerUnreachableError
from rivet.errors import ApiError
from rivet.protocol import ArtifactFileView, ArtifactList, SourceUploaded

__all__ = ["ArtifactClient"]

CHUNK = 1024 * 1024
RESUMES = 3
Progress = Callable[[int], None]


def _chunks(f: BinaryIO, progress: Progress | None) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        if progress is not None:
            progress(len(chunk))
        yield chunk


class ArtifactClient(RivetClient):
    def __enter__(self) -> ArtifactClient:
        return self

    def upload_source(
        self, f: BinaryIO, size: int, progress: Progress | None = None
    ) -> SourceUploaded:
        headers = self._credentials(
            {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        )
        try:
            response = self._http.post(
                "/api/sources", content=_chunks(f, progress), headers=headers, timeout=None
            )
        except httpx.TransportError as exc:
            raise ServerUnreachableError(self.base_url, str(exc) or type(exc).__name__) from None
        if response.is_error:
            raise self._error(response)
        return SourceUploaded.model_validate_json(response.content)

    def list_artifacts(self, ref: str) -> ArtifactList:
        return self._get(f"/api/jobs/{quote(ref, safe='')}/artifacts", ArtifactList)

    def download(
        self,
        ref: str,
        name: str,
        file: ArtifactFileView,
        target: Path,
        progress: Progress | None = None,
    ) -> None:
        """Fetch ``file`` of artifact ``name`` of job ``ref`` to ``target`` (checked)."""
        url = f"/api/jobs/{quote(ref, safe='')}/artifacts/{quote(name, safe='')}/files/" + quote(
            file.path, safe="/"
        )
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        digest = hashlib.sha256()
        got = 0
        try:
            with temp.open("xb") as out:
                for attempt in range(RESUMES + 1):
                    try:
                        # From what arrived so far (digest holds exactly those bytes).
                        got = self._fetch(url, out.tell(), out, digest, progress)
                        break
                    except ServerUnreachableError:
                        if attempt == RESUMES:
                            raise
            if got != file.size or digest.hexdigest() != file.sha256:
                raise ApiError(
                    0,
                    f"{file.path}: received {got} bytes that do not match the artifact's "
                    f"size {file.size} and sha256 {file.sha256[:12]}; nothing was written",
                )
            os.chmod(temp, (file.mode & 0o755) | 0o600)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _fetch(
        self, url: str, start: int, out: BinaryIO, digest: Any, progress: Progress | None
    ) -> int:
        headers = self._credentials({"Range": f"bytes={start}-"} if start else {}) or {}
        got = start
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                if response.is_error:
                    response.read()
                    raise self._error(response)
                if start and response.status_code != 206:
                    raise ApiError(0, f"{url}: the server ignored the resume request")
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
        except httpx.TransportError as exc:
            out.flush()
            raise ServerUnreachableError(self.base_url, str(exc) or type(exc).__name__) from None
        return got
