"""Principals: who makes a request, as the routes and services see it.

A :class:`Principal` is what authentication produces (``orchestrator/deps.py``) and
what authorization and the audit trail consume. Its ``actor`` is the short string
stored with what the principal creates and does (:mod:`rivet.domain.actors`);
``display`` is the same in words for messages; ``role`` is the role the request acts
with; ``pipelines`` narrows an API key to some pipelines (``None``: no narrowing).

This module is the seam between authentication (accounts, sessions, API keys) and
authorization (roles, pipeline/secret/runner permissions): both sides depend on it,
neither on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rivet.domain.actors import ADMIN, ANONYMOUS

__all__ = ["ADMIN_TOKEN", "ANONYMOUS_PRINCIPAL", "Principal", "Role"]


class Role(StrEnum):
    """Roles, weakest first: a role may do everything the roles before it may."""

    VIEWER = "viewer"
    USER = "user"
    ADMIN = "admin"

    def at_least(self, other: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(other)


@dataclass(frozen=True)
class Principal:
    actor: str
    display: str
    role: Role
    pipelines: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ADMIN_TOKEN = Principal(actor=ADMIN, display="the admin token", role=Role.ADMIN)
# Until accounts exist, a request without a token may do what a user may.
ANONYMOUS_PRINCIPAL = Principal(
    actor=ANONYMOUS, display="a request without the admin token", role=Role.USER
)
