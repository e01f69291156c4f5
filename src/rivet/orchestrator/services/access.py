"""Use cases: who may view, launch and push a pipeline; its access list and pools.

The rules are :mod:`rivet.domain.permissions`; this module reads what they need in
the caller's transaction, raises ``PermissionDeniedError`` naming who, what and
which pipeline, and records every change in the audit trail. Blocking; called from
worker threads.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Connection

from rivet.domain.actors import describe
from rivet.domain.permissions import (
    PipelineLevel,
    check_subject,
    narrowed_out,
    pipeline_level,
)
from rivet.domain.principals import Principal, Role
from rivet.errors import InvalidRequest, NotFoundError, PermissionDeniedError
from rivet.protocol import AccessEntry, PipelineAccessView
from rivet.store import Database, audit
from rivet.store import access as store
from rivet.store import pipelines as pipeline_store
from rivet.store.access import PipelineAccess

__all__ = ["AccessService", "denied", "require_level"]

_VERBS = {
    PipelineLevel.VIEW: "view",
    PipelineLevel.LAUNCH: "launch or cancel jobs of",
    PipelineLevel.PUSH: "push new versions of",
}


def denied(principal: Principal, wanted: PipelineLevel, pipeline: str) -> PermissionDeniedError:
    """The error for ``principal`` lacking ``wanted`` on ``pipeline``, with the way out."""
    verb = _VERBS.get(wanted, wanted.value)
    if narrowed_out(principal, pipeline):
        allowed = ", ".join(f"'{p}'" for p in sorted(principal.pipelines or ())) or "none"
        return PermissionDeniedError(
            f"{principal.display} may not {verb} '{pipeline}': it is limited to the "
            f"pipelines {allowed}"
        )
    return PermissionDeniedError(
        f"{principal.display} may not {verb} '{pipeline}': ask its owner or an admin"
    )


def level_of(principal: Principal, access: PipelineAccess | None, pipeline: str) -> PipelineLevel:
    if access is None:
        return pipeline_level(principal, pipeline, None, {})
    return pipeline_level(principal, access.name, access.owner, access.entries)


def require_level(
    conn: Connection, principal: Principal, pipeline_id: str, wanted: PipelineLevel
) -> PipelineAccess:
    """The pipeline's access when ``principal`` has at least ``wanted`` on it; raises
    ``PermissionDeniedError`` otherwise."""
    access = store.pipeline_access_of(conn, pipeline_id)
    if not level_of(principal, access, access.name).at_least(wanted):
        raise denied(principal, wanted, access.name)
    return access


def _view(principal: Principal, access: PipelineAccess) -> PipelineAccessView:
    return PipelineAccessView(
        pipeline=access.name,
        owner=access.owner,
        entries=dict(access.entries),
        pools=list(access.pools),
        you=level_of(principal, access, access.name).value,
    )


class AccessService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def hidden(self, principal: Principal) -> set[str]:
        """Ids of the pipelines ``principal`` may not view (empty for admins)."""
        if principal.is_admin and principal.pipelines is None:
            return set()
        with self.db.read() as conn:
            everything = store.all_access(conn)
        return {
            access.pipeline_id
            for access in everything.values()
            if not level_of(principal, access, access.name).at_least(PipelineLevel.VIEW)
        }

    def require(self, principal: Principal, ref: str, wanted: PipelineLevel) -> None:
        """Raise unless ``principal`` has ``wanted`` on the pipeline ``ref``."""
        with self.db.read() as conn:
            require_level(conn, principal, pipeline_store.resolve_pipeline(conn, ref), wanted)

    def show(self, principal: Principal, ref: str) -> PipelineAccessView:
        with self.db.read() as conn:
            pipeline_id = pipeline_store.resolve_pipeline(conn, ref)
            return _view(principal, require_level(conn, principal, pipeline_id, PipelineLevel.VIEW))

    def grant(self, principal: Principal, ref: str, entry: AccessEntry) -> PipelineAccessView:
        """Give ``entry.subject`` the level ``entry.level`` (replacing its entry)."""
        subject = check_subject(entry.subject, "body.subject")
        level = _level(entry.level)
        with self.db.write() as tx:
            access = self._changeable(tx.conn, principal, ref)
            store.set_entry(tx.conn, access.pipeline_id, subject, level.value)
            audit.record(
                tx.conn,
                principal.actor,
                "pipeline.access.grant",
                access.name,
                {"subject": subject, "level": level.value},
            )
            return _view(principal, store.pipeline_access_of(tx.conn, access.pipeline_id))

    def revoke(self, principal: Principal, ref: str, subject: str) -> PipelineAccessView:
        """Remove ``subject``'s entry; 404 when it has none."""
        with self.db.write() as tx:
            access = self._changeable(tx.conn, principal, ref)
            if not store.remove_entry(tx.conn, access.pipeline_id, subject):
                raise NotFoundError(
                    f"pipeline '{access.name}' has no access entry for {subject!r} "
                    f"(entries: {', '.join(access.entries) or 'none'})"
                )
            audit.record(
                tx.conn,
                principal.actor,
                "pipeline.access.revoke",
                access.name,
                {"subject": subject},
            )
            return _view(principal, store.pipeline_access_of(tx.conn, access.pipeline_id))

    def set_pools(self, principal: Principal, ref: str, pools: Iterable[str]) -> PipelineAccessView:
        """Admin: restrict the pipeline's jobs to ``pools`` (empty: lift the restriction).
        Queued jobs follow the new rule at their next claim attempt."""
        wanted = sorted(set(pools))
        with self.db.write() as tx:
            pipeline_id = pipeline_store.resolve_pipeline(tx.conn, ref)
            name = store.pipeline_access_of(tx.conn, pipeline_id).name
            if not principal.is_admin or narrowed_out(principal, name):
                raise PermissionDeniedError(
                    f"{principal.display} may not restrict '{name}' to runner pools: "
                    "only an admin may"
                )
            store.set_pools(tx.conn, pipeline_id, wanted)
            audit.record(tx.conn, principal.actor, "pipeline.pools", name, {"pools": wanted})
            return _view(principal, store.pipeline_access_of(tx.conn, pipeline_id))

    def _changeable(self, conn: Connection, principal: Principal, ref: str) -> PipelineAccess:
        access = store.pipeline_access_of(conn, pipeline_store.resolve_pipeline(conn, ref))
        owner = principal.actor == access.owner and principal.role.at_least(Role.USER)
        if narrowed_out(principal, access.name) or not (principal.is_admin or owner):
            raise PermissionDeniedError(
                f"{principal.display} may not change who may use '{access.name}': only its "
                f"owner ({describe(access.owner)}) or an admin may"
            )
        return access


def _level(name: str) -> PipelineLevel:
    try:
        level = PipelineLevel(name)
    except ValueError:
        level = PipelineLevel.NONE
    if level is PipelineLevel.NONE:
        raise InvalidRequest([("body.level", "not a pipeline level: use view, launch or push")])
    return level
