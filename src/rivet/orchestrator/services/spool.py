"""Streaming an upload to a temporary file: the body is never held in memory.

An upload (an artifact file, a source archive) arrives as a stream of chunks. Each
chunk goes to a private temporary file (written from a worker thread, so the event
loop never blocks on the disk) and into a SHA-256, and the count is checked against
the limit as it grows: a body over the limit is refused with
:class:`~rivet.errors.RequestTooLarge` naming the setting as soon as it passes it.
The caller hands the file to the blob store and then removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from rivet.errors import RequestTooLarge

__all__ = ["Spooled", "spool"]


@dataclass(frozen=True)
class Spooled:
    path: Path
    sha256: str
    size: int

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def spool(
    chunks: AsyncIterator[bytes], limit: int, setting: str, directory: Path | None = None
) -> Spooled:
    """Write ``chunks`` to a new temporary file (in ``directory``, default the
    system's); RequestTooLarge once more than ``limit`` bytes came."""
    if directory is not None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".upload-", dir=directory)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise RequestTooLarge(limit, setting)
                digest.update(chunk)
                await anyio.to_thread.run_sync(out.write, chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return Spooled(path, digest.hexdigest(), size)
