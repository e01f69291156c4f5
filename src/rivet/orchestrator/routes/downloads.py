"""Streamed file answers with HTTP Range support (RFC 9110 §14), for artifact files
and source archives: one range per request (``bytes=A-B``, ``bytes=A-``,
``bytes=-N``), 206 with ``Content-Range``; a range past the end is 416; anything
else in the header is ignored and the whole file is sent (what the RFC allows). The
bytes come from the blob store in chunks, never read whole."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

__all__ = ["BYTES", "RAW_BODY", "file_response"]

# The OpenAPI description of a streamed file answer.
BYTES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}},
    206: {"description": "the range asked for"},
    416: {"description": "the range is past the end"},
}

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

# The OpenAPI description of a raw upload body.
RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) exclusive; None: the whole file; "unsatisfiable"."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # the last N bytes
        suffix = int(match[2])
        if suffix == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size
    start = int(match[1])
    end = min(int(match[2]) + 1, size) if match[2] else size
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end


def file_response(
    request: Request,
    read: Callable[[str, int, int | None], Iterator[bytes]],
    sha256: str,
    size: int,
    filename: str,
) -> Response:
    """The answer for the blob ``sha256`` of ``size`` bytes, whose chunks
    ``read(sha256, start, end)`` gives (``ArtifactService.read``)."""
    quoted = filename.replace('"', "")
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{sha256}"',
        "X-Rivet-Sha256": sha256,
        "Content-Disposition": f'attachment; filename="{quoted}"',
    }
    wanted = _range(request.headers.get("range"), size)
    if wanted == "unsatisfiable":
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    if wanted is None or not isinstance(wanted, tuple):
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            read(sha256, 0, None), media_type="application/octet-stream", headers=headers
        )
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        read(sha256, start, end),
        status_code=206,
        media_type="application/octet-stream",
        headers=headers,
    )
