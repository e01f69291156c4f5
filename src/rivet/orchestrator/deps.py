"""FastAPI dependencies: the process's services, the authenticated runner, and the
actor of a user-API request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from rivet.domain.principals import ADMIN_TOKEN, ANONYMOUS_PRINCIPAL, Principal
from rivet.errors import RivetError
from rivet.orchestrator.auth import bearer_token, check_admin, is_admin
from rivet.orchestrator.services import Services
from rivet.protocol import API_VERSION
from rivet.store.runners import RunnerRecord

__all__ = [
    "ActorDep",
    "AdminDep",
    "PrincipalDep",
    "RunnerDep",
    "ServicesDep",
    "current_actor",
    "current_principal",
    "get_services",
]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def current_runner(
    services: ServicesDep,
    token: Annotated[str, Depends(bearer_token)],
    x_rivet_api: Annotated[str | None, Header()] = None,
) -> RunnerRecord:
    """The runner owning the bearer token (401 otherwise)."""
    runner = services.runners.authenticate(token)
    if x_rivet_api is not None and x_rivet_api != API_VERSION:
        raise RivetError(
            f"runner speaks API version {x_rivet_api}, this server speaks {API_VERSION}; "
            "install matching Rivet versions"
        )
    return runner


RunnerDep = Annotated[RunnerRecord, Depends(current_runner)]
AdminDep = Depends(check_admin)


def current_principal(admin: Annotated[bool, Depends(is_admin)]) -> Principal:
    """Who makes a request on the user API (:mod:`rivet.domain.principals`): the admin
    token's principal, anonymous without a token, 401 with any other token."""
    return ADMIN_TOKEN if admin else ANONYMOUS_PRINCIPAL


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def current_actor(principal: PrincipalDep) -> str:
    """The request's actor string (:mod:`rivet.domain.actors`), for what it creates."""
    return principal.actor


ActorDep = Annotated[str, Depends(current_actor)]
