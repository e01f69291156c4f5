"""FastAPI dependencies: the process's services, the authenticated runner, and the
actor of a user-API request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from rivet.domain.actors import ADMIN, ANONYMOUS
from rivet.errors import RivetError
from rivet.orchestrator.auth import bearer_token, check_admin, is_admin
from rivet.orchestrator.services import Services
from rivet.protocol import API_VERSION
from rivet.store.runners import RunnerRecord

__all__ = ["ActorDep", "AdminDep", "RunnerDep", "ServicesDep", "current_actor", "get_services"]


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


def current_actor(admin: Annotated[bool, Depends(is_admin)]) -> str:
    """Who makes a request on the open user API (:mod:`rivet.domain.actors`): the admin
    with the admin token, anonymous without a token, 401 with any other token."""
    return ADMIN if admin else ANONYMOUS


ActorDep = Annotated[str, Depends(current_actor)]
