"""Where artifact and source bytes live: one interface (:class:`BlobStore`), a
filesystem store under RIVET_HOME (the default) and an S3-compatible object store for
several orchestrators (docs/artifacts.md). Blobs are content-addressed: the key is the
SHA-256 of the bytes, so two uploads of the same file are stored once."""

from __future__ import annotations

from rivet.blobstore.base import (
    CHUNK,
    BlobStore,
    check_digest,
    digest_file,
)
from rivet.blobstore.filesystem import FilesystemStore

__all__ = ["CHUNK", "BlobStore", "FilesystemStore", "check_digest", "digest_file"]
