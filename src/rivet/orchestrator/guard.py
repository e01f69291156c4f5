"""Guards at the edge of the API, before any route runs.

- :class:`BodyLimit`, a pure ASGI middleware: a body larger than the limit
  (``RIVET_MAX_BODY_BYTES``) is answered 413 before it is read whole; a declared
  ``Content-Length`` over the limit is refused without reading anything.
- :func:`check_request_text`, an app-wide dependency: every string the request carries
  into the server (path and query parameters, the headers the routes read, every
  string and key of a JSON body) must be text PostgreSQL can store and UTF-8 can
  encode, so no NUL and no lone UTF-16 surrogate; otherwise 422 naming the field. The
  rule is the same for every route, present and future, which is why it lives here
  and not on each model field.

The size caps of the individual fields are on the protocol models
(:mod:`rivet.protocol`, numbers in :mod:`rivet.limits`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rivet.errors import InvalidRequest, RequestTooLarge
from rivet.limits import text_problem, text_problems
from rivet.orchestrator.http_errors import render

__all__ = ["STREAMED", "BodyLimit", "check_request_text"]

SETTING = "RIVET_MAX_BODY_BYTES"

# In JSON text a NUL or a surrogate can only be written as a \u escape (raw control
# characters are invalid JSON, raw surrogates invalid UTF-8), so a body without one
# of these needs no second parse. Escaped backslashes may cause a false alarm, which
# the full check then clears.
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")

# Routes whose raw bodies (application/octet-stream) are streamed to disk by the route
# under its own limit (artifact files, source archives): never buffered here.
STREAMED = re.compile(r"/api/(?:sources|runner/jobs/[^/]+/artifacts/[^/]+/files)")
_RAW = b"application/octet-stream"

# Headers some route reads; the others are never looked at.
_READ_HEADERS = ("authorization", "last-event-id", "x-rivet-api")


class BodyLimit:
    """Reads each HTTP request body into memory up to ``limit`` bytes, then hands it to
    the app; past the limit it answers 413 (the project's error envelope, naming the
    limit and the setting) and reads no further."""

    def __init__(self, app: ASGIApp, limit: int, streamed: re.Pattern[str] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._streams(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = render(RequestTooLarge(self.limit, SETTING))
        # The rest of the body is not read: tell the client the connection ends here.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    def _streams(self, scope: Scope) -> bool:
        """A raw body for a streaming route: passed through unread."""
        if self.streamed is None or not self.streamed.fullmatch(scope.get("path", "")):
            return False
        return _is_raw(scope.get("headers", ()))


def _is_raw(headers: Any) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return bytes(value).split(b";")[0].strip().lower() == _RAW
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11, httptools) refuses it before we see it
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first returns ``messages``, then the real ones (disconnects)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def check_request_text(request: Request) -> None:
    """App-wide dependency: 422 naming every field whose text is not storable."""
    problems: list[tuple[str, str]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and (why := text_problem(value)) is not None:
            problems.append((f"path.{name}", why))
    for name, value in request.query_params.multi_items():
        for part, text in (("the name", name), ("", value)):
            if (why := text_problem(text)) is not None:
                where = f"query.{_shown(name)}"
                problems.append((where, f"{part} {why}".strip()))
    for header in _READ_HEADERS:
        value = request.headers.get(header)
        if value is not None and (why := text_problem(value)) is not None:
            problems.append((f"header.{header}", why))
    if _is_raw(request.scope.get("headers", ())) and STREAMED.fullmatch(request.url.path):
        return  # bytes, not text; the route streams them (never read whole here)
    body = await request.body()
    if body and _SUSPECT.search(body):
        try:
            problems.extend(text_problems(_parse(body), "body"))
        except RecursionError:
            problems.append(("body", "is nested too deeply"))
    if problems:
        raise InvalidRequest(problems)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parsing refuses it


def _shown(name: str) -> str:
    return name.replace("\x00", "\\u0000")
