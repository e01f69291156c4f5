"""``GET /metrics``: the orchestrator's Prometheus metrics, text exposition format.

Outside ``/api`` (where Prometheus looks by default) and outside the API schema. Open
to the addresses of ``server.metrics_allow`` (loopback by default) and to whoever
presents ``server.metrics_token`` as a bearer token; see docs/observability.md."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from rivet.orchestrator.deps import ServicesDep
from rivet.orchestrator.metrics import check_metrics_access

__all__ = ["router"]

router = APIRouter(tags=["metrics"])

_bearer = HTTPBearer(auto_error=False, description="metrics token")


@router.get("/metrics", include_in_schema=False)
async def metrics(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    server = services.settings.server
    expected = server.metrics_token.get_secret_value() if server.metrics_token else None
    check_metrics_access(
        request.client.host if request.client else None,
        credentials.credentials if credentials else None,
        server.metrics_allow,
        expected,
    )
    body = await anyio.to_thread.run_sync(services.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
