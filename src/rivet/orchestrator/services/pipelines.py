"""Use cases: create a pipeline version from Lua source, list, show, versions; each
under the pipeline permissions of :mod:`.access`."""

from __future__ import annotations

from rivet.domain.permissions import PipelineLevel
from rivet.domain.principals import Principal
from rivet.errors import PermissionDeniedError
from rivet.orchestrator.services.access import AccessService, denied, level_of
from rivet.orchestrator.services.secret_service import unusable_secrets
from rivet.protocol import PipelineCreate, PipelineView
from rivet.settings import LuaGroup
from rivet.store import Database, audit
from rivet.store import access as access_store
from rivet.store import pipelines as store
from rivet.store import sealed_secrets as secret_store

__all__ = ["PipelineService"]


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
        anything is written. A new pipeline is owned by its creator; an existing one
        takes versions from whoever has ``push`` on it (its owner, admins, access
        entries). A pipeline that has secrets granted to it only takes new versions
        from principals entitled to every one of them: such a version would not
        receive the secrets anyway (see :mod:`.secret_service`), but it would become
        the latest version, the one that a plain ``rivet job launch`` runs.
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

    def list_all(self, principal: Principal) -> list[PipelineView]:
        hidden = self.access.hidden(principal)
        with self.db.read() as conn:
            return [view for view in store.list_latest(conn) if view.id not in hidden]

    def show(self, principal: Principal, ref: str, version: int | None = None) -> PipelineView:
        self.access.require(principal, ref, PipelineLevel.VIEW)
        with self.db.read() as conn:
            return store.get_pipeline(conn, ref, version)

    def versions(self, principal: Principal, ref: str) -> list[PipelineView]:
        self.access.require(principal, ref, PipelineLevel.VIEW)
        with self.db.read() as conn:
            return store.list_versions(conn, ref)
