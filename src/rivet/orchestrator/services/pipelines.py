"""Use cases: create a pipeline version from Lua source, list, show, versions."""

from __future__ import annotations

from rivet.protocol import PipelineCreate, PipelineView
from rivet.store import Database
from rivet.store import pipelines as store

__all__ = ["PipelineService"]


class PipelineService:
    """Blocking; called from worker threads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, request: PipelineCreate) -> PipelineView:
        """Validate exactly as ``rivet check`` does, then store a new version.

        Raises ``DefinitionError`` (every problem, with file/line/field) before
        anything is written.
        """
        # Imported here: the Lua runtime (lupa) is heavy and only this use case needs it.
        from rivet.lua.definition import load_definition

        definition = load_definition(request.source, request.filename)
        with self.db.write() as tx:
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
