"""Reading a response body under the ``http.max_response_bytes`` cap.

The cap applies to the *decoded* body (what the pipeline would get), so a small
gzip bomb is stopped as surely as a large plain body. The body is read from the
network in chunks and decompressed with a bounded output size per step, so memory
stays within the cap plus one chunk whatever the server sends; nothing partial is
ever returned. Only the codings Rivet asks for (``gzip``, ``deflate``) are decoded.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx

from rivet.engine.policy.violation import PolicyViolation

__all__ = ["ACCEPT_ENCODING", "UnsupportedEncoding", "read_capped"]

ACCEPT_ENCODING = "gzip, deflate"
CHUNK = 64 * 1024


class UnsupportedEncoding(Exception):
    """The server used a Content-Encoding Rivet cannot decode within bounds."""


class _Inflater:
    """zlib decompression that never produces more than ``CHUNK`` bytes per step."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding in ("gzip", "x-gzip")
        # deflate is meant to be zlib-wrapped but some servers send it raw: try the
        # wrapped form first and fall back, as browsers (and httpx) do.
        self._raw_fallback = not self._gzip
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        pending = data
        while pending:
            try:
                out = self._zlib.decompress(pending, CHUNK)
            except zlib.error:
                if self._raw_fallback and not self._started:
                    self._raw_fallback = False
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            self._started = True
            pending = self._zlib.unconsumed_tail
            if out:
                yield out
            if self._zlib.eof:
                return

    def flush(self) -> bytes:
        return self._zlib.flush()


def _too_large(cap: int, what: str) -> PolicyViolation:
    return PolicyViolation(
        "http.max_response_bytes",
        f"response body {what} exceeds policy http.max_response_bytes ({cap} bytes); "
        "nothing was returned",
    )


def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The whole decoded body, or :class:`PolicyViolation` as soon as it passes ``cap``."""
    coding = response.headers.get("content-encoding", "").strip().lower()
    inflater: _Inflater | None = None
    if coding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(coding)
    elif coding not in ("", "identity"):
        raise UnsupportedEncoding(
            f"the server answered with Content-Encoding '{coding}', which Rivet does "
            f"not decode (it asks for '{ACCEPT_ENCODING}')"
        )
    declared = response.headers.get("content-length", "")
    if inflater is None and declared.isdigit() and int(declared) > cap:
        raise _too_large(cap, f"of {int(declared)} bytes (Content-Length)")
    parts: list[bytes] = []
    total = 0
    try:
        for raw in response.iter_raw(CHUNK):
            pieces = inflater.feed(raw) if inflater is not None else iter((raw,))
            for piece in pieces:
                total += len(piece)
                if total > cap:
                    raise _too_large(cap, f"of more than {cap} bytes")
                parts.append(piece)
        if inflater is not None:
            tail = inflater.flush()
            total += len(tail)
            if total > cap:
                raise _too_large(cap, f"of more than {cap} bytes")
            parts.append(tail)
    except zlib.error as exc:
        raise UnsupportedEncoding(f"the {coding} body is corrupt: {exc}") from None
    return b"".join(parts)
