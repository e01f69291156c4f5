"""Wire models of accounts, sessions and API keys (issue 9), imported from here (not
re-exported by :mod:`rivet.protocol`, which stays within the module size rule).
Routes (docs/security.md):

- ``POST /api/auth/login`` (:class:`LoginRequest` -> :class:`SessionTokens`),
  ``POST /api/auth/refresh`` (:class:`RefreshRequest` -> :class:`SessionTokens`; the
  refresh token is rotated: the one sent stops working), ``POST /api/auth/logout``
  (:class:`RefreshRequest` -> 204; revokes that refresh token's whole family),
  ``GET /api/auth/whoami`` (-> :class:`WhoAmI`);
- ``POST /api/admin/init`` (admin token only; :class:`UserCreate` with role admin ->
  :class:`UserView`; 409 once any user exists);
- ``GET/POST /api/users``, ``PUT /api/users/{name}/role`` (:class:`RoleSet`),
  ``POST /api/users/{name}/disable`` and ``/enable``, ``PUT /api/users/{name}/password``
  (:class:`PasswordSet`; an admin for anyone, a user for themselves with
  ``current_password``);
- ``GET/POST /api/apikeys``, ``DELETE /api/apikeys/{name}``: :class:`ApiKeyCreate` ->
  :class:`ApiKeyCreated` (the only answer that ever carries the key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, SecretStr, StringConstraints

from rivet import limits

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyView",
    "LoginRequest",
    "PasswordSet",
    "RefreshRequest",
    "RoleName",
    "RoleSet",
    "SessionTokens",
    "UserCreate",
    "UserView",
    "WhoAmI",
]

MAX_PASSWORD = 1024  # argon2 hashes any length; the cap keeps a request from costing more
MAX_TOKEN = 4096


def _account_name(name: str) -> str:
    """User and API-key names follow the runner name rule (:func:`rivet.limits.name_problem`)."""
    if (problem := limits.name_problem(name)) is not None:
        raise ValueError(problem)
    return name


AccountName = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.MAX_NAME), AfterValidator(_account_name)
]
RoleName = Annotated[str, StringConstraints(pattern=r"^(viewer|user|admin)$")]
Password = Annotated[SecretStr, Field(min_length=1, max_length=MAX_PASSWORD)]
Token = Annotated[SecretStr, Field(min_length=1, max_length=MAX_TOKEN)]


class LoginRequest(BaseModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME)]
    password: Password


class RefreshRequest(BaseModel):
    refresh_token: Token


class SessionTokens(BaseModel):
    """A session: ``access_token`` (a JWT, sent as ``Authorization: Bearer``) expires at
    ``access_expires_at``; ``refresh_token`` buys a new pair until ``refresh_expires_at``."""

    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    username: str
    role: RoleName


class WhoAmI(BaseModel):
    """Who the credential of the request is: ``kind`` is ``user``, ``api-key`` or
    ``admin-token``; ``pipelines`` is an API key's narrowing (None: none)."""

    kind: str
    name: str
    role: RoleName
    actor: str
    pipelines: list[str] | None = None
    expires_at: datetime | None = None


class UserCreate(BaseModel):
    name: AccountName
    password: Password
    role: RoleName = "user"


class UserView(BaseModel):
    name: str
    role: RoleName
    disabled: bool
    created_at: datetime
    created_by: str
    last_login_at: datetime | None = None


class RoleSet(BaseModel):
    role: RoleName


class PasswordSet(BaseModel):
    password: Password
    current_password: Password | None = Field(
        default=None, description="needed when a user changes their own password"
    )


class ApiKeyCreate(BaseModel):
    """``role`` may not be above the creator's; ``pipelines`` narrows the key to those
    pipelines; ``expires_in_days`` (None: never)."""

    name: AccountName
    role: RoleName = "user"
    expires_in_days: Annotated[int | None, Field(ge=1, le=3650)] = 90
    pipelines: (
        list[Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME)]] | None
    ) = Field(default=None, max_length=100)


class ApiKeyView(BaseModel):
    name: str
    role: RoleName
    owner: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    pipelines: list[str] | None = None
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked: bool = False


class ApiKeyCreated(ApiKeyView):
    key: str = Field(description="shown once; the server keeps only its SHA-256")
