"""Use cases: create a pipeline version from Lua source, list, show, versions, archive
and restore."""

from __future__ import annotations

from datetime import datetime

from rivet.domain.actors import ADMIN, ANONYMOUS
from rivet.errors import ConflictError, PermissionDeniedError
from rivet.protocol import PipelineCreate, PipelinePage, PipelineView
from rivet.settings import LuaGroup
from rivet.store import Database
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

    def __init__(self, db: Database, lua: LuaGroup) -> None:
        self.db = db
        self.lua = lua  # the sandbox limits pipelines are evaluated under

    def create(self, request: PipelineCreate, *, actor: str = ANONYMOUS) -> PipelineView:
        """Validate exactly as ``rivet check`` does, then store a new version created by
        ``actor`` (:mod:`rivet.domain.actors`), which decides the grants covering it.

        Raises ``DefinitionError`` (every problem, with file/line/field) before
        anything is written; ``ConflictError`` for an archived pipeline (restoring it
        is a deliberate step, not a side effect of a push). A pipeline that has secrets
        granted to it only gets new versions from the admin: such a version would not
        receive the secrets anyway (see :mod:`.secrets`), but it would become the
        latest version, the one that a plain ``rivet job launch`` runs.
        """
        # Imported here: the Lua runtime (lupa) is heavy and only this use case needs it.
        from rivet.lua.definition import load_definition
        from rivet.lua.sandbox import Limits

        limits = Limits.from_settings(self.lua)
        definition = load_definition(request.source, request.filename, limits=limits)
        with self.db.write() as tx:
            # Locked before the grants are read: a grant made meanwhile waits for us.
            pipeline_id = store.lock_pipeline(tx.conn, definition.name)
            archived = store.archived_at(tx.conn, pipeline_id)
            if archived is not None:
                raise ConflictError(
                    archived_message(definition.name, archived, "it takes no new versions")
                )
            granted = secret_store.granted_names(tx.conn, definition.name)
            if granted and actor != ADMIN:
                raise PermissionDeniedError(
                    f"pipeline '{definition.name}' has secrets granted to it "
                    f"({', '.join(granted)}); creating a new version of it requires the "
                    "admin token"
                )
            return store.add_version(
                tx.conn,
                pipeline_id,
                definition,
                request.source,
                request.filename,
                created_by=actor,
            )

    def list_all(
        self, archived: ArchivedFilter = "hide", limit: int = 50, offset: int = 0
    ) -> PipelinePage:
        with self.db.read() as conn:
            return store.list_latest(conn, archived=archived, limit=limit, offset=offset)

    def archive(self, ref: str) -> PipelineView:
        """``rivet pipeline delete``: the pipeline takes no new jobs or versions; its
        versions and jobs stay readable, jobs already queued or running are left alone.
        Archiving an archived pipeline changes nothing (the first date is kept)."""
        with self.db.write() as tx:
            pipeline_id = store.resolve_pipeline(tx.conn, ref)
            if store.archived_at(tx.conn, pipeline_id) is None:
                store.set_archived(tx.conn, pipeline_id, utcnow())
            return store.get_pipeline(tx.conn, pipeline_id)

    def restore(self, ref: str) -> PipelineView:
        """Undo :meth:`archive`: launches and new versions are accepted again."""
        with self.db.write() as tx:
            pipeline_id = store.resolve_pipeline(tx.conn, ref)
            store.set_archived(tx.conn, pipeline_id, None)
            return store.get_pipeline(tx.conn, pipeline_id)

    def show(self, ref: str, version: int | None = None) -> PipelineView:
        with self.db.read() as conn:
            return store.get_pipeline(conn, ref, version)

    def versions(self, ref: str) -> list[PipelineView]:
        with self.db.read() as conn:
            return store.list_versions(conn, ref)
