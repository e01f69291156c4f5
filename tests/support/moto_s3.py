"""A real S3-protocol server for tests: moto's standalone server (``moto[server]``
from PyPI), started on a free loopback port, offline; and an S3 store on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from live_rivet import free_port, port_open

from rivet.blobstore.s3 import S3Store

__all__ = ["make_s3", "s3_endpoint"]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto server did not start: {log.read_text()}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def make_s3(endpoint: str, bucket: str) -> S3Store:
    store = S3Store(
        bucket, endpoint_url=endpoint, access_key="test", secret_key="test", prefix="rivet/"
    )
    store._client.create_bucket(Bucket=bucket)
    return store
