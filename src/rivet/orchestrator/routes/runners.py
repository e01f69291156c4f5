"""Runner administration: registration tokens (admin), registration, listing, pools."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from rivet.orchestrator.deps import ActorDep, AdminDep, PrincipalDep, ServicesDep
from rivet.protocol import (
    RegisterRequest,
    RegisterResponse,
    RegistrationTokenCreate,
    RegistrationTokenView,
    RunnerName,
    RunnerPoolSet,
    RunnerPoolView,
    RunnerUpdate,
    RunnerView,
)

__all__ = ["router"]

router = APIRouter(tags=["runners"])


@router.post(
    "/runner-tokens",
    status_code=201,
    dependencies=[AdminDep],
    summary="Create a one-time registration token (admin; the secret is shown once)",
)
def create_token(
    services: ServicesDep, actor: ActorDep, body: RegistrationTokenCreate | None = None
) -> RegistrationTokenView:
    return services.runners.create_token(body or RegistrationTokenCreate(), actor)


@router.get("/runner-tokens", dependencies=[AdminDep], summary="Registration tokens (admin)")
def list_tokens(services: ServicesDep) -> list[RegistrationTokenView]:
    return services.runners.list_tokens()


@router.delete(
    "/runner-tokens/{ref}",
    status_code=204,
    dependencies=[AdminDep],
    summary="Revoke a registration token (admin)",
)
def delete_token(ref: str, services: ServicesDep, actor: ActorDep) -> Response:
    services.runners.delete_token(ref, actor)
    return Response(status_code=204)


@router.post("/runners/register", summary="Exchange a registration token for a runner token")
def register(body: RegisterRequest, services: ServicesDep) -> RegisterResponse:
    """The registration token is consumed: a second use answers 401. ``pool`` (default
    ``default``) is the runner pool it joins."""
    return services.runners.register(body)


@router.get("/runners", summary="Runners with their pool, tags, last contact and current jobs")
def list_runners(
    services: ServicesDep,
    removed: Annotated[bool, Query(description="include removed runners")] = False,
) -> list[RunnerView]:
    return services.runners.list_all(include_removed=removed)


@router.get("/runners/{ref}", summary="One runner (id or unique prefix)")
def show_runner(ref: str, services: ServicesDep) -> RunnerView:
    return services.runners.show(ref)


@router.patch(
    "/runners/{ref}",
    dependencies=[AdminDep],
    summary="Change a runner's tags, plugins and/or pool (admin; they are what its claims match)",
)
def update_runner(
    ref: str, body: RunnerUpdate, services: ServicesDep, actor: ActorDep
) -> RunnerView:
    """Each given field replaces the stored one; an omitted field is kept. Takes effect
    at the runner's next claim, without a restart."""
    return services.runners.update(ref, body, actor)


@router.delete(
    "/runners/{ref}",
    dependencies=[AdminDep],
    summary="Remove a runner (admin): its token is revoked, its history stays",
)
def remove_runner(
    ref: str,
    services: ServicesDep,
    actor: ActorDep,
    force: Annotated[
        bool, Query(description="also when it runs jobs: they are marked failed")
    ] = False,
) -> RunnerView:
    """The runner's next request answers 401 saying it was removed; it leaves
    ``GET /api/runners`` (``?removed=true`` shows it) and the jobs it ran keep its name.
    409 naming its running jobs unless ``force``."""
    return services.runners.remove(ref, actor, force=force)


@router.get("/runner-pools", summary="Runner pools: exclusive or not, how many runners")
def list_pools(services: ServicesDep) -> list[RunnerPoolView]:
    return services.runners.pools()


@router.put("/runner-pools/{name}", summary="Make a runner pool exclusive or shared (admin)")
def set_pool(
    name: RunnerName, body: RunnerPoolSet, services: ServicesDep, principal: PrincipalDep
) -> RunnerPoolView:
    """An exclusive pool's runners claim only jobs of pipelines restricted to it
    (``PUT /api/pipelines/{ref}/pools``)."""
    return services.runners.set_pool(principal, name, body.exclusive)
