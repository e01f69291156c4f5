"""``/api/pipelines``: create (new version per create), list, show, versions, archive
(``DELETE``) and restore, and who may use a pipeline (access list, pools)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from rivet.limits import MAX_INT32
from rivet.orchestrator.deps import PrincipalDep, ServicesDep
from rivet.protocol import (
    AccessEntry,
    PipelineAccessView,
    PipelineCreate,
    PipelinePage,
    PipelinePools,
    PipelineView,
)

__all__ = ["router"]

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.post("", status_code=201, summary="Create a pipeline, or a new version of it")
def create_pipeline(
    body: PipelineCreate, services: ServicesDep, principal: PrincipalDep
) -> PipelineView:
    """Validates the Lua source like ``rivet check``; 422 ``invalid_definition`` if not.
    A new pipeline is owned by its creator; new versions need ``push`` on it (403). The
    version records who pushed it (``created_by``): only versions pushed after a
    grant by someone entitled to the secret receive it. A pipeline with secrets
    granted to it takes new versions only from principals entitled to all of them."""
    return services.pipelines.create(body, principal)


@router.get("", summary="Latest version of every pipeline the caller may view, with paging")
def list_pipelines(
    services: ServicesDep,
    principal: PrincipalDep,
    archived: Annotated[
        Literal["hide", "include", "only"],
        Query(description="archived pipelines: hidden (default), included, or only them"),
    ] = "hide",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0,
) -> PipelinePage:
    """Paged like ``GET /api/jobs``: ``total`` counts every pipeline the filter keeps
    and the caller may view."""
    return services.pipelines.list_all(principal, archived, limit, offset)


@router.delete("/{ref}", summary="Archive a pipeline (versions and jobs stay readable)")
def archive_pipeline(ref: str, services: ServicesDep, principal: PrincipalDep) -> PipelineView:
    """New launches and new versions answer 409 until it is restored; jobs already
    queued or running are left alone. Archiving it again changes nothing. Needs push."""
    return services.pipelines.archive(principal, ref)


@router.post("/{ref}/restore", summary="Restore an archived pipeline")
def restore_pipeline(ref: str, services: ServicesDep, principal: PrincipalDep) -> PipelineView:
    return services.pipelines.restore(principal, ref)


@router.get("/{ref}", summary="One pipeline version with its source (by name or id prefix)")
def show_pipeline(
    ref: str,
    services: ServicesDep,
    principal: PrincipalDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT32, description="default: latest")] = None,
) -> PipelineView:
    return services.pipelines.show(principal, ref, version)


@router.get("/{ref}/versions", summary="Every version of a pipeline, oldest first")
def list_versions(ref: str, services: ServicesDep, principal: PrincipalDep) -> list[PipelineView]:
    return services.pipelines.versions(principal, ref)


@router.get("/{ref}/access", summary="A pipeline's owner, access list and pools")
def show_access(ref: str, services: ServicesDep, principal: PrincipalDep) -> PipelineAccessView:
    return services.access.show(principal, ref)


@router.put("/{ref}/access", summary="Give a subject a level on a pipeline (owner or admin)")
def grant_access(
    ref: str, body: AccessEntry, services: ServicesDep, principal: PrincipalDep
) -> PipelineAccessView:
    """``subject``: ``user:<name>``, ``api-key:<name>`` or ``role:viewer|user|admin``;
    ``level``: view, launch or push (each includes the ones before). Replaces the
    subject's entry."""
    return services.access.grant(principal, ref, body)


@router.delete("/{ref}/access/{subject}", summary="Remove a subject's entry (owner or admin)")
def revoke_access(
    ref: str, subject: str, services: ServicesDep, principal: PrincipalDep
) -> PipelineAccessView:
    """404 when the pipeline has no entry for ``subject``."""
    return services.access.revoke(principal, ref, subject)


@router.put("/{ref}/pools", summary="Restrict a pipeline's jobs to runner pools (admin)")
def set_pools(
    ref: str, body: PipelinePools, services: ServicesDep, principal: PrincipalDep
) -> PipelineAccessView:
    """The pools replace the stored ones; an empty list lifts the restriction. Checked
    in the claim: a runner of another pool never receives the pipeline's jobs."""
    return services.access.set_pools(principal, ref, body.pools)
