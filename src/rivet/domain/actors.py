"""Actors: who did something, as recorded with what they created (a pipeline version's
``created_by``).

An actor is a short string, stored as it is:

- ``"admin"``: a request with the admin token;
- ``"anonymous"``: a request without a token (the user-facing API is open today);
- ``"unknown"``: created before Rivet recorded actors (migration 0003).

Users and API keys will be ``"user:<id>"`` and ``"api-key:<id>"``; whether an actor
may approve code that receives a secret is decided by the orchestrator's secret
service (today: the admin only), not by this module.
"""

from __future__ import annotations

__all__ = ["ADMIN", "ANONYMOUS", "UNKNOWN", "describe"]

ADMIN = "admin"
ANONYMOUS = "anonymous"
UNKNOWN = "unknown"

_DESCRIPTIONS = {
    ADMIN: "the admin",
    ANONYMOUS: "a request without the admin token",
    UNKNOWN: "an unrecorded creator (stored before Rivet recorded who pushed versions)",
}


def describe(actor: str) -> str:
    """Words for messages: ``"a request without the admin token"``, ``"user:42"``."""
    return _DESCRIPTIONS.get(actor, actor)
