"""An S3-compatible object store (AWS S3, MinIO, Ceph RGW…), for several orchestrators
that share no disk.

Objects are ``<prefix>blobs/<digest>``. ``put`` uploads with boto3's managed transfer
(multipart above 8 MiB, read from the spooled file in parts: never the whole blob in
memory); S3 makes an object visible only once its upload completed, which is the
atomic write. ``read`` asks for a byte range and streams the body. boto3 is an
optional dependency (``pip install 'rivet[s3]'``), imported only when this store is
configured. Tested against moto's standalone server (S3 protocol, offline, loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rivet.blobstore.base import CHUNK, BlobStoreError, check_digest
from rivet.errors import ConfigError

__all__ = ["S3Store"]


class S3Store:
    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError(
                "artifacts.store = 's3' needs boto3: pip install 'rivet[s3]'"
            ) from None
        self.bucket = bucket
        self.prefix = prefix
        where = endpoint_url or "AWS"
        self.description = f"S3 artifact store s3://{bucket}/{prefix} at {where}"
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def _key(self, digest: str) -> str:
        return f"{self.prefix}blobs/{check_digest(digest)}"

    def _fail(self, what: str, exc: Exception) -> BlobStoreError:
        return BlobStoreError(self.description, f"{what}: {type(exc).__name__}: {exc}")

    def put(self, digest: str, source: Path) -> None:
        key = self._key(digest)
        try:
            if self.size(digest) is not None:
                return
            self._client.upload_file(str(source), self.bucket, key)
        except BlobStoreError:
            raise
        except Exception as exc:  # botocore's errors have no common public base
            raise self._fail(f"cannot store {digest}", exc) from None

    def size(self, digest: str) -> int | None:
        from botocore.exceptions import ClientError

        key = self._key(digest)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail(f"cannot look up {digest}", exc) from None
        except Exception as exc:
            raise self._fail(f"cannot look up {digest}", exc) from None
        return int(head["ContentLength"])

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        if end is not None and end <= start:
            return iter(())
        options: dict[str, str] = {}
        if start or end is not None:
            options["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        key = self._key(digest)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key, **options)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(digest) from None
            raise self._fail(f"cannot read {digest}", exc) from None
        except Exception as exc:
            raise self._fail(f"cannot read {digest}", exc) from None
        body = answer["Body"]
        return _stream(body)

    def delete(self, digest: str) -> None:
        key = self._key(digest)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self._fail(f"cannot delete {digest}", exc) from None


def _stream(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
