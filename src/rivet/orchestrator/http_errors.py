"""The one place where errors become HTTP statuses and ``{"error": ErrorBody}`` JSON.

Services raise :class:`~rivet.errors.RivetError` subclasses and know nothing about
HTTP; the table below picks status and code by the most specific class in the MRO.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rivet.domain.secret_rules import SecretRuleError
from rivet.errors import (
    AmbiguousIdError,
    AuthenticationError,
    ConfigError,
    ConflictError,
    DefinitionError,
    InputError,
    InvalidRequest,
    LuaError,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLarge,
    RivetError,
    StorageFull,
    StorageUnavailable,
)
from rivet.orchestrator.services.endings import AttemptEnded
from rivet.orchestrator.services.runners import RunnerRemoved
from rivet.protocol import ErrorBody, ErrorResponse

__all__ = ["ERROR_RESPONSES", "RETRY_AFTER", "error_response", "install_error_handlers", "render"]

log = logging.getLogger(__name__)

_STATUS: dict[type[RivetError], tuple[int, str]] = {
    DefinitionError: (422, "invalid_definition"),
    InputError: (422, "invalid_inputs"),
    InvalidRequest: (422, "invalid_request"),
    SecretRuleError: (422, "invalid_request"),
    RequestTooLarge: (413, "request_too_large"),
    StorageUnavailable: (503, "storage_unavailable"),
    StorageFull: (507, "storage_full"),
    LuaError: (422, "lua_error"),
    NotFoundError: (404, "not_found"),
    AmbiguousIdError: (409, "ambiguous_id"),
    AttemptEnded: (409, "attempt_ended"),
    ConflictError: (409, "conflict"),
    RunnerRemoved: (401, "runner_removed"),
    AuthenticationError: (401, "unauthorized"),
    PermissionDeniedError: (403, "forbidden"),
    ConfigError: (500, "server_misconfigured"),
    RivetError: (400, "bad_request"),
}

# For the OpenAPI document: every route may answer with these.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": HTTPStatus(status).phrase}
    for status in (400, 401, 403, 404, 409, 413, 422, 503, 507)
}

# Seconds a client should wait before retrying after a 503 (a database restart or
# fail-over usually takes a few seconds).
RETRY_AFTER = 5


def _details(exc: RivetError) -> Any:
    if isinstance(exc, DefinitionError):
        return exc.to_dict()
    if isinstance(exc, InputError):
        return {"problems": exc.problems}
    if isinstance(exc, AmbiguousIdError):
        return {"kind": exc.kind, "prefix": exc.prefix, "matches": exc.matches}
    if isinstance(exc, InvalidRequest):
        return [{"loc": field.split("."), "msg": why} for field, why in exc.problems]
    if isinstance(exc, SecretRuleError):
        return [{"loc": exc.field.split("."), "msg": str(exc)}]
    if isinstance(exc, RequestTooLarge):
        return {"limit": exc.limit, "setting": exc.setting}
    return None


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (503, 507):
        headers["Retry-After"] = str(RETRY_AFTER)
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers or None)


def render(exc: RivetError) -> JSONResponse:
    """The answer for ``exc``: status and code by the most specific class in its MRO.
    Also used by the ASGI middleware, which runs outside FastAPI's handlers."""
    status, code = _STATUS[RivetError]
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            status, code = _STATUS[cls]
            break
    if isinstance(exc, StorageUnavailable):
        log.warning("answering 503: %s (%s)", exc, exc.reason)
    elif status >= 500:
        log.error("server error: %s", exc)
    return error_response(status, code, str(exc), _details(exc))


def _rivet_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RivetError)
    return render(exc)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()
    ]
    return error_response(
        422,
        "invalid_request",
        "invalid request: " + "; ".join(problems),
        jsonable_encoder(exc.errors(), custom_encoder={Exception: str}),
    )


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return error_response(exc.status_code, code, str(exc.detail))


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RivetError, _rivet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
