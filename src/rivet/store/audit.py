"""The audit trail: one row per change and per launch/cancel, written in the same
transaction as what it records (so a change without its row, or a row without its
change, cannot be committed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from rivet.limits import scrub
from rivet.protocol import AuditEvent
from rivet.store.ids import new_id
from rivet.store.portable import utcnow
from rivet.store.tables import audit_events

__all__ = ["list_events", "record"]


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """``actor`` (:mod:`rivet.domain.actors`) did ``action`` (``pipeline.push``…) on
    ``target`` (a name or id). ``details`` must never hold a secret value."""
    conn.execute(
        audit_events.insert().values(
            id=new_id(),
            at=utcnow(),
            actor=actor,
            action=action,
            target=target[:300],
            details=dict(details or {}),
        )
    )


def list_events(conn: Connection, limit: int) -> list[AuditEvent]:
    """The newest ``limit`` events, newest first."""
    query = select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
    return [
        AuditEvent(
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            details=scrub(row.details),
        )
        for row in conn.execute(query.limit(limit))
    ]
