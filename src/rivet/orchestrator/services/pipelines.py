"""Use cases: create a pipeline version from Lua source, list, show, versions."""

from __future__ import annotations

from rivet.orchestrator.auth import PermissionDeniedError
from rivet.protocol import PipelineCreate, PipelineView
from rivet.store import Database
from rivet.store import pipelines as store
from rivet.store import secrets as secret_store

__all__ = ["PipelineService"]


class PipelineService:
    """Blocking; called from worker threads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, request: PipelineCreate, *, admin: bool = False) -> PipelineView:
        """Validate exactly as ``rivet check`` does, then store a new version.

        Raises ``DefinitionError`` (every problem, with file/line/field) before
        anything is written. A pipeline that has secrets granted to it only gets new
        versions from the admin: grants are by name, so otherwise anyone who can
        reach the API could publish code that reads those secrets.
        """
        # Imported here: the Lua runtime (lupa) is heavy and only this use case needs it.
        from rivet.lua.definition import load_definition

        definition = load_definition(request.source, request.filename)
        with self.db.write() as tx:
            granted = secret_store.granted_names(tx.conn, definition.name)
            if granted and not admin:
                raise PermissionDeniedError(
                    f"pipeline '{definition.name}' has secrets granted to it "
                    f"({', '.join(granted)}); creating a new version of it requires the "
                    "admin token"
                )
            return store.create_version(tx.conn, definition, request.source, request.filename)

    def list_all(self) -> list[PipelineView]:
        with self.db.read() as conn:
            return store.list_latest(conn)

    def show(self, ref: str, version: int | None = None) -> PipelineView:
        with self.db.read() as conn:
            return store.get_pipeline(conn, ref, version)

    def versions(self, ref: str) -> list[PipelineView]:
        with self.db.read() as conn:
            return store.list_versions(conn, ref)
