"""Liveness (``/api/health``) and readiness (``/api/ready``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rivet import __version__
from rivet.orchestrator.deps import ServicesDep
from rivet.orchestrator.http_errors import error_response

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    summary="Readiness: the database (and the read database) answer and wake-ups are connected",
)
def ready(services: ServicesDep) -> JSONResponse:
    try:
        services.db.ping()
    except Exception as exc:
        return error_response(503, "not_ready", f"database unavailable: {exc}")
    try:
        services.db.ping_reader()
    except Exception as exc:
        return error_response(503, "not_ready", f"read database unavailable: {exc}")
    if not services.queue.ready:
        return error_response(503, "not_ready", "database notification listener not connected")
    return JSONResponse({"status": "ready", "database": services.db.dialect})
