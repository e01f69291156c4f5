"""The blob store contract on both stores: the filesystem store in a temporary
directory and the S3 store against a real S3-protocol server (moto's standalone
server, started here on loopback, offline). Same checks for both."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from live_rivet import free_port as _port
from moto_s3 import make_s3

from rivet.blobstore import BlobStore, FilesystemStore, digest_file
from rivet.blobstore.s3 import S3Store


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return FilesystemStore(tmp_path / "blobs")
    endpoint: str = request.getfixturevalue("s3_endpoint")
    return make_s3(endpoint, f"b{abs(hash(tmp_path)) % 10**9}")


def blob(tmp_path: Path, data: bytes) -> tuple[str, Path]:
    path = tmp_path / f"src-{hashlib.sha256(data).hexdigest()[:8]}"
    path.write_bytes(data)
    digest, size = digest_file(path)
    assert size == len(data)
    return digest, path


def test_put_read_ranges_delete(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than three chunks
    digest, path = blob(tmp_path, data)
    assert store.size(digest) is None
    store.put(digest, path)
    store.put(digest, path)  # again: harmless
    assert store.size(digest) == len(data)
    chunks = list(store.read(digest))
    assert b"".join(chunks) == data and max(len(c) for c in chunks) <= 1024 * 1024
    assert b"".join(store.read(digest, 10, 20)) == data[10:20]
    assert b"".join(store.read(digest, len(data) - 5)) == data[-5:]
    store.delete(digest)
    store.delete(digest)  # idempotent
    assert store.size(digest) is None
    with pytest.raises(FileNotFoundError):
        b"".join(store.read(digest))


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "ab", ""])
def test_a_key_that_is_not_a_digest_is_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256 digest"):
        store.size(key)


def test_filesystem_store_is_private_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "blobs")
    digest, path = blob(tmp_path, b"hello")
    store.put(digest, path)
    assert (tmp_path / "blobs").stat().st_mode & 0o777 == 0o700
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [digest]
    assert files[0].stat().st_mode & 0o777 == 0o600


def test_s3_store_writes_under_its_prefix(s3_endpoint: str, tmp_path: Path) -> None:
    store = make_s3(s3_endpoint, "prefixed")
    digest, path = blob(tmp_path, b"content")
    store.put(digest, path)
    keys = [o["Key"] for o in store._client.list_objects_v2(Bucket="prefixed")["Contents"]]
    assert keys == [f"rivet/blobs/{digest}"]


def test_s3_store_unreachable_is_a_blob_store_error(tmp_path: Path) -> None:
    from rivet.blobstore.base import BlobStoreError

    store = S3Store(
        "nowhere", endpoint_url=f"http://127.0.0.1:{_port()}", access_key="x", secret_key="y"
    )
    digest, path = blob(tmp_path, b"x")
    with pytest.raises(BlobStoreError, match="S3 artifact store s3://nowhere"):
        store.put(digest, path)
