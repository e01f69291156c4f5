"""FAKE authentication for tests of authorization: a bearer token that *names* the
principal a request acts as. Never used by Rivet itself; auth-core's real accounts,
sessions and API keys replace ``current_principal`` in production.

A fake token is ``fake|<actor>|<role>[|<pipeline>,<pipeline>…]``, e.g.
``fake|user:ann|user`` or ``fake|api-key:ci|user|deploy`` (an API key narrowed to
``deploy``). The admin token and no token keep meaning what they mean on main.
:func:`install` puts the fake in front of an app (in-process tests);
``fake_principal_server.py`` runs the real ``rivet server`` code with it installed
(end-to-end tests, driven by the real CLI with ``RIVET_ADMIN_TOKEN=<fake token>``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rivet.domain.principals import Principal, Role
from rivet.orchestrator.auth import is_admin
from rivet.orchestrator.deps import current_principal

__all__ = ["PREFIX", "fake_token", "install"]

PREFIX = "fake|"
_bearer = HTTPBearer(auto_error=False)


def fake_token(actor: str, role: str = "user", pipelines: tuple[str, ...] | None = None) -> str:
    token = f"{PREFIX}{actor}|{role}"
    if pipelines is not None:
        token += "|" + ",".join(pipelines)
    return token


def principal_of(token: str) -> Principal:
    parts = token[len(PREFIX) :].split("|")
    actor, role = parts[0], Role(parts[1])
    pipelines = frozenset(p for p in parts[2].split(",") if p) if len(parts) > 2 else None
    kind, _, name = actor.partition(":")
    return Principal(actor=actor, display=f"{kind} '{name}'", role=role, pipelines=pipelines)


def _fake_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is not None and credentials.credentials.startswith(PREFIX):
        return principal_of(credentials.credentials)
    return current_principal(is_admin(request, credentials))


def install(app: FastAPI) -> FastAPI:
    """Let ``app`` accept fake tokens (see the module) besides what it accepts."""
    app.dependency_overrides[current_principal] = _fake_principal
    return app
