"""Use case: reading the audit trail (admin). Writing happens in each use case's own
transaction (:func:`rivet.store.audit.record`)."""

from __future__ import annotations

from rivet.domain.principals import Principal
from rivet.errors import PermissionDeniedError
from rivet.protocol import AuditEvent
from rivet.store import Database
from rivet.store import audit as store

__all__ = ["AuditService"]


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list_events(self, principal: Principal, limit: int) -> list[AuditEvent]:
        """The newest ``limit`` events, newest first; admins only (the trail names
        everyone's actions)."""
        if not principal.is_admin:
            raise PermissionDeniedError(
                f"{principal.display} may not read the audit trail: only an admin may"
            )
        with self.db.read() as conn:
            return store.list_events(conn, limit)
