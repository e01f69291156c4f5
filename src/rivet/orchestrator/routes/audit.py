"""``/api/audit``: who changed what, when (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from rivet.orchestrator.deps import PrincipalDep, ServicesDep
from rivet.protocol import AuditEvent

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", summary="The audit trail, newest first (admin)")
def list_audit(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[AuditEvent]:
    """Every change (pipeline push, access and pool changes, secrets, runners,
    registration tokens) and every job launch and cancel, with its actor."""
    return services.audit.list_events(principal, limit)
