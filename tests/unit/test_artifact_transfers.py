"""The client sides of artifact downloads: the runner checks each file's SHA-256 as
it streams (a mismatch fails the call, nothing renamed into place), and the CLI's
download resumes an interrupted transfer with a Range request and checks the whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from rivet.client.artifacts import ArtifactClient
from rivet.engine.artifacts import ArtifactError, StoredFile
from rivet.errors import ApiError
from rivet.protocol import ArtifactFileView
from rivet.runner.artifacts import _verified

DATA = bytes(range(256)) * 12_288  # 3 MiB: more than one 1 MiB chunk arrives first


def test_the_runner_refuses_bytes_that_do_not_match() -> None:
    good = StoredFile("f", len(DATA), hashlib.sha256(DATA).hexdigest())
    assert b"".join(_verified(iter([DATA[:10], DATA[10:]]), good)) == DATA
    bad = StoredFile("f", len(DATA), "0" * 64)
    with pytest.raises(ArtifactError, match="do not match the artifact's size"):
        b"".join(_verified(iter([DATA]), bad))


class _Dropping(httpx.BaseTransport):
    """Serves DATA; the first answer breaks off half-way (a dropped connection)."""

    def __init__(self) -> None:
        self.ranges: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("range")
        self.ranges.append(header)
        if header is None:
            half = len(DATA) // 2

            def broken():  # type: ignore[no-untyped-def]
                yield DATA[:half]
                raise httpx.ReadError("connection reset")

            return httpx.Response(200, stream=_Stream(broken()))
        start = int(header.removeprefix("bytes=").rstrip("-"))
        return httpx.Response(206, content=DATA[start:])


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks) -> None:  # type: ignore[no-untyped-def]
        self.chunks = chunks

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self.chunks


def test_the_cli_download_resumes_with_a_range_and_checks_the_whole(tmp_path: Path) -> None:
    transport = _Dropping()
    client = ArtifactClient("http://rivet.test", transport=transport)
    file = ArtifactFileView(path="dist/x", size=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())
    target = tmp_path / "x"
    client.download("job1", "wheel", file, target)
    assert target.read_bytes() == DATA
    # Resumed from the last whole chunk that reached the file (1 MiB of the 1.5 sent).
    assert transport.ranges == [None, f"bytes={1024 * 1024}-"]
    wrong = file.model_copy(update={"sha256": "f" * 64})
    with pytest.raises(ApiError, match="nothing was written"):
        client.download("job1", "wheel", wrong, tmp_path / "y")
    assert not (tmp_path / "y").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x"]  # no .part file left
