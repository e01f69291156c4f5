"""The default store: files under a directory (``$RIVET_HOME/artifacts``).

Layout ``ab/cd/abcd…`` (two levels of fan-out keep directories small). A blob is
written to a temporary file in its final directory, fsynced and renamed into place,
so a crash leaves a temporary file (``.tmp-*``, never read) rather than a torn blob.
The directory is private (0700) like the rest of RIVET_HOME: artifacts may hold
anything a job built.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rivet.blobstore.base import CHUNK, BlobStoreError, check_digest

__all__ = ["FilesystemStore"]


class FilesystemStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"filesystem store at {root}"

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, digest: str, source: Path) -> None:
        target = self._path(digest)
        try:
            if target.exists():
                return
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
            temp = target.parent / f".tmp-{uuid.uuid4().hex}"
            try:
                with source.open("rb") as src, temp.open("xb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.chmod(temp, 0o600)
                os.replace(temp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
        except OSError as exc:
            raise BlobStoreError(
                self.description, f"cannot store {digest}: {exc.strerror}"
            ) from None

    def size(self, digest: str) -> int | None:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        f = self._path(digest).open("rb")  # FileNotFoundError before the first chunk
        return _chunks(f, start, end)

    def delete(self, digest: str) -> None:
        try:
            self._path(digest).unlink(missing_ok=True)
        except OSError as exc:
            raise BlobStoreError(
                self.description, f"cannot delete {digest}: {exc.strerror}"
            ) from None


def _chunks(f: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with f:
        f.seek(start)
        left = None if end is None else max(0, end - start)
        while left is None or left > 0:
            chunk = f.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk
