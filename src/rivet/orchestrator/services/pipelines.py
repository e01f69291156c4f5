"""Use cases: create a pipeline version from Lua source, list, show, versions, archive
and restore; each under the pipeline permissions of :mod:`.access`."""

from __future__ import annotations

from datetime import datetime

from rivet.domain.permissions import PipelineLevel
from rivet.domain.principals import Principal
from rivet.errors import ConflictError, PermissionDeniedError
from rivet.orchestrator.services.access import AccessService, denied, level_of
from rivet.orchestrator.services.secret_service import unusable_secrets
from rivet.protocol import PipelineCreate, PipelinePage, PipelineView
from rivet.settings import LuaGroup
from rivet.store import Database, audit
from rivet.store import access as access_store
from rivet.store import pipelines as store
from rivet.store import sealed_secrets as secret_store
from rivet.store.pipelines import ArchivedFilter
from rivet.store.portable import utcnow

__all__ = ["PipelineService", "archived_message"]


def archived_message(name: str, since: datetime, refused: str) -> str:
    """What a request refused because ``name`` is archived is told (HTTP 409): what
    was refused, since when, and the command that undoes it."""
    return (
        f"pipeline '{name}' is archived (since {since:%Y-%m-%d %H:%M:%S}Z): {refused}; "
        f"its versions and jobs stay readable; restore it with: rivet pipeline restore {name}"
    )


class PipelineService:
    """Blocking; called from worker threads."""

    def __init__(self, db: Database, lua: LuaGroup, access: AccessService) -> None:
        self.db = db
        self.lua = lua  # the sandbox limits pipelines are evaluated under
        self.access = access

    def create(self, request: PipelineCreate, principal: Principal) -> PipelineView:
        """Validate exactly as ``rivet check`` does, then store a new version created by
        ``principal``'s actor (:mod:`rivet.domain.actors`), which decides the grants
        covering it.

        Raises ``DefinitionError`` (every problem, with file/line/field) before
        anything is written; ``ConflictError`` for an archived pipeline (restoring it
        is a deliberate step, not a side effect of a push). A new pipeline is owned by
        its creator; an existing one takes versions from whoever has ``push`` on it
        (its owner, admins, access entries). A pipeline that has secrets granted to it
        only takes new versions from principals entitled to every one of them: such a
        version would not receive the secrets anyway (see :mod:`.secret_service`), but
        it would become the latest version, the one that a plain ``rivet job launch``
        runs.
        """
        # Imported here: the Lua runtime (lupa) is heavy and only this use case needs it.
        from rivet.lua.definition import load_definition
        from rivet.lua.sandbox import Limits

        limits = Limits.from_settings(self.lua)
        definition = load_definition(request.source, request.filename, limits=limits)
        name = definition.name
        with self.db.write() as tx:
            # Locked before the grants are read: a grant made meanwhile waits for us.
            pipeline_id, created = store.lock_pipeline(tx.conn, name, principal.actor)
            access = access_store.pipeline_access_of(tx.conn, pipeline_id)
            level = level_of(principal, None if created else access, name)
            if not level.at_least(PipelineLevel.PUSH):
                if created:
                    raise PermissionDeniedError(
                        f"{principal.display} may not create pipelines"
                        + (
                            f" (limited to {', '.join(sorted(principal.pipelines))})"
                            if principal.pipelines is not None
                            else f" (role {principal.role.value}): ask an admin"
                        )
                    )
                raise denied(principal, PipelineLevel.PUSH, name)
            archived = store.archived_at(tx.conn, pipeline_id)
            if archived is not None:
                raise ConflictError(archived_message(name, archived, "it takes no new versions"))
            granted = secret_store.granted_names(tx.conn, name)
            refused = unusable_secrets(tx.conn, principal, granted)
            if refused:
                raise PermissionDeniedError(
                    f"pipeline '{name}' has secrets granted to it ({', '.join(granted)}); "
                    f"{principal.display} has no permission on {', '.join(refused)}, so may "
                    "not push new versions of it: ask an admin"
                )
            view = store.add_version(
                tx.conn,
                pipeline_id,
                definition,
                request.source,
                request.filename,
                created_by=principal.actor,
            )
            audit.record(
                tx.conn,
                principal.actor,
                "pipeline.push",
                name,
                {"version": view.version, "created": created},
            )
            return view

    def list_all(
        self,
        principal: Principal,
        archived: ArchivedFilter = "hide",
        limit: int = 50,
        offset: int = 0,
    ) -> PipelinePage:
        """One page of the pipelines ``principal`` may view (the others are left out
        before paging, so ``total`` counts only what they may see)."""
        hidden = self.access.hidden(principal)
        with self.db.read() as conn:
            return store.list_latest(
                conn, archived=archived, limit=limit, offset=offset, hidden=hidden
            )

    def archive(self, principal: Principal, ref: str) -> PipelineView:
        """``rivet pipeline delete``: the pipeline takes no new jobs or versions; its
        versions and jobs stay readable, jobs already queued or running are left alone.
        Archiving an archived pipeline changes nothing (the first date is kept). Needs
        ``push`` on it, like a new version."""
        self.access.require(principal, ref, PipelineLevel.PUSH)
        with self.db.write() as tx:
            pipeline_id = store.resolve_pipeline(tx.conn, ref)
            if store.archived_at(tx.conn, pipeline_id) is None:
                store.set_archived(tx.conn, pipeline_id, utcnow())
                view = store.get_pipeline(tx.conn, pipeline_id)
                audit.record(tx.conn, principal.actor, "pipeline.archive", view.name, {})
                return view
            return store.get_pipeline(tx.conn, pipeline_id)

    def restore(self, principal: Principal, ref: str) -> PipelineView:
        """Undo :meth:`archive`: launches and new versions are accepted again."""
        self.access.require(principal, ref, PipelineLevel.PUSH)
        with self.db.write() as tx:
            pipeline_id = store.resolve_pipeline(tx.conn, ref)
            store.set_archived(tx.conn, pipeline_id, None)
            view = store.get_pipeline(tx.conn, pipeline_id)
            audit.record(tx.conn, principal.actor, "pipeline.restore", view.name, {})
            return view

    def show(self, principal: Principal, ref: str, version: int | None = None) -> PipelineView:
        self.access.require(principal, ref, PipelineLevel.VIEW)
        with self.db.read() as conn:
            return store.get_pipeline(conn, ref, version)

    def versions(self, principal: Principal, ref: str) -> list[PipelineView]:
        self.access.require(principal, ref, PipelineLevel.VIEW)
        with self.db.read() as conn:
            return store.list_versions(conn, ref)
