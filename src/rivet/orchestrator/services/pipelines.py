"""Use cases: create a pipeline version from Lua source, list, show, versions."""

from __future__ import annotations

from rivet.domain.actors import ADMIN, ANONYMOUS
from rivet.errors import PermissionDeniedError
from rivet.protocol import PipelineCreate, PipelineView
from rivet.settings import LuaGroup
from rivet.store import Database
from rivet.store import pipelines as store
from rivet.store import sealed_secrets as secret_store

__all__ = ["PipelineService"]


class PipelineService:
    """Blocking; called from worker threads."""

    def __init__(self, db: Database, lua: LuaGroup) -> None:
        self.db = db
        self.lua = lua  # the sandbox limits pipelines are evaluated under

    def create(self, request: PipelineCreate, *, actor: str = ANONYMOUS) -> PipelineView:
        """Validate exactly as ``rivet check`` does, then store a new version created by
        ``actor`` (:mod:`rivet.domain.actors`), which decides the grants covering it.

        Raises ``DefinitionError`` (every problem, with file/line/field) before
        anything is written. A pipeline that has secrets granted to it only gets new
        versions from the admin: such a version would not receive the secrets anyway
        (see :mod:`.secrets`), but it would become the latest version, the one that a
        plain ``rivet job launch`` runs.
        """
        # Imported here: the Lua runtime (lupa) is heavy and only this use case needs it.
        from rivet.lua.definition import load_definition
        from rivet.lua.sandbox import Limits

        limits = Limits.from_settings(self.lua)
        definition = load_definition(request.source, request.filename, limits=limits)
        with self.db.write() as tx:
            # Locked before the grants are read: a grant made meanwhile waits for us.
            pipeline_id = store.lock_pipeline(tx.conn, definition.name)
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

    def list_all(self) -> list[PipelineView]:
        with self.db.read() as conn:
            return store.list_latest(conn)

    def show(self, ref: str, version: int | None = None) -> PipelineView:
        with self.db.read() as conn:
            return store.get_pipeline(conn, ref, version)

    def versions(self, ref: str) -> list[PipelineView]:
        with self.db.read() as conn:
            return store.list_versions(conn, ref)
