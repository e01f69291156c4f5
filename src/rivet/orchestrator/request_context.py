"""``RequestIds``: the outermost ASGI middleware. Each HTTP request gets an id — the
client's ``X-Request-ID`` when it is a short token (letters, digits, ``._-``, at
most 64), else a new one —, answered in ``X-Request-ID`` and carried by every log
line written while the request is served (:func:`rivet.observe.logs.bind`, also in
the worker threads routes use). Every answer is counted in the HTTP metrics
(:class:`rivet.orchestrator.metrics.HttpMetrics`) by method, route template and
status, with its duration."""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rivet.observe.logs import bind

__all__ = ["RequestIds"]

_CLIENT_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _CLIENT_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex[:16]


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        status = 500
        start = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with bind(request_id=request_id):
                await self.app(scope, receive, sending)
        finally:
            metrics = getattr(scope["app"].state, "http_metrics", None)
            if metrics is not None:
                metrics.observe(scope, status, time.perf_counter() - start)
