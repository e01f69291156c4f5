"""The blob store contract, shared by every store.

A blob is named by the lowercase hex SHA-256 of its bytes. ``put`` takes a local file
that the caller has already hashed (the server spools an upload to a temporary file,
hashing as it streams, so no store ever holds a whole blob in memory) and makes the
blob appear atomically: a reader sees the whole blob or none. ``read`` yields chunks
of ``[start, end)`` so that downloads stream and Range requests cost only the range.
``delete`` is idempotent. Which blobs may be deleted is the database's decision
(``rivet.store.artifacts``), never the store's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from rivet.errors import StorageUnavailable

__all__ = ["CHUNK", "BlobStore", "BlobStoreError", "check_digest", "digest_file"]

CHUNK = 1024 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobStoreError(StorageUnavailable):
    """The artifact store did not answer or refused (disk full, S3 down): retry later.
    The message names the store; ``reason`` says why (for the server log)."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(store, reason)
        self.args = (f"the {store} cannot be used right now; try again shortly ({reason})",)


def check_digest(digest: str) -> str:
    """``digest`` if it is a lowercase hex SHA-256; ValueError otherwise (a key never
    comes from a user without this check, so it cannot name another path)."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"not a SHA-256 digest: {digest[:80]!r}")
    return digest


def digest_file(path: Path) -> tuple[str, int]:
    """SHA-256 and size of the file at ``path``, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class BlobStore(Protocol):
    """Where blobs live. Thread-safe; every method may raise :class:`BlobStoreError`."""

    description: str

    def put(self, digest: str, source: Path) -> None:
        """Store the file ``source`` (whose SHA-256 is ``digest``) as that blob,
        atomically; storing a blob that exists already is harmless."""
        ...

    def size(self, digest: str) -> int | None:
        """The blob's size, None when it is absent."""
        ...

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of the blob in chunks of at most :data:`CHUNK`;
        ``FileNotFoundError`` when it is absent."""
        ...

    def delete(self, digest: str) -> None:
        """Remove the blob; nothing happens when it is absent."""
        ...
