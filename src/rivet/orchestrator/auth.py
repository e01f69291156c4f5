"""Bearer tokens: the admin token, one-time registration tokens and runner tokens.

Hashing: tokens are 32 random bytes from :mod:`secrets`, so they are hashed with
plain SHA-256 rather than argon2. Argon2's deliberate slowness protects guessable,
low-entropy passwords against offline brute force; a 256-bit random token cannot be
brute-forced either way, while argon2 would add tens of milliseconds to every runner
request and (being salted) rule out finding the runner by an indexed hash lookup.
The database lookup ``WHERE token_hash = sha256(token)`` compares hashes, never the
secret, so its timing reveals nothing an attacker can use; the admin token, held in
memory, is checked with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rivet.errors import AuthenticationError, RivetError
from rivet.home import create_private_file, tighten
from rivet.settings import RivetSettings

__all__ = [
    "bearer_token",
    "check_admin",
    "hash_token",
    "is_admin",
    "load_admin_token",
    "new_token",
]

log = logging.getLogger(__name__)


def new_token(kind: str) -> str:
    """A fresh secret; the readable prefix (``rivet_runner_…``) helps spot leaked tokens."""
    return f"rivet_{kind}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_admin_token(settings: RivetSettings) -> str:
    """``server.admin_token`` (``RIVET_ADMIN_TOKEN``), else ``$RIVET_HOME/admin-token``,
    created (mode 0600) if absent."""
    configured = settings.server.admin_token
    if configured is not None:
        return configured.get_secret_value()
    path: Path = settings.paths.admin_token
    try:
        return _read_token(path)
    except FileNotFoundError:
        pass
    # Another server starting on the same home may write it first: both read that one.
    if create_private_file(path, new_token("admin") + "\n"):
        log.info("generated admin token in %s", path)
    return _read_token(path)


def _read_token(path: Path) -> str:
    token = path.read_text().strip()
    tighten(path)  # a copy made by hand may be readable by others
    if not token:
        raise RivetError(f"{path} is empty; delete it to generate a new admin token")
    return token


_bearer = HTTPBearer(auto_error=False, description="admin or runner token")


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The presented bearer token, or 401."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
    return credentials.credentials


def is_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    """Dependency for routes open to everyone that do more for the admin: False without
    a token, True with the admin token, 401 with any other token."""
    if credentials is None or not credentials.credentials:
        return False
    check_admin(request, credentials.credentials)
    return True


def check_admin(request: Request, token: Annotated[str, Depends(bearer_token)]) -> None:
    """Dependency for admin-only routes."""
    expected: str = request.app.state.admin_token_hash
    if not hmac.compare_digest(hash_token(token), expected):
        raise AuthenticationError("invalid admin token")
