"""Settings objects, one per process, built in ``main`` and passed down (never global).

Every field can be set through a ``RIVET_*`` environment variable (``RIVET_HOME``,
``RIVET_DATABASE_URL``, ``RIVET_ADMIN_TOKEN``, ``RIVET_HOST``, ``RIVET_PORT``,
``RIVET_MAX_BODY_BYTES`` …);
CLI flags override them by passing keyword arguments.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rivet.defaults import DEFAULT_PORT
from rivet.home import RivetHome, default_home
from rivet.limits import DEFAULT_MAX_BODY_BYTES, MAX_SOURCE_BYTES

__all__ = ["DEFAULT_PORT", "ServerSettings"]


class ServerSettings(BaseSettings):
    """Settings of one orchestrator process (``rivet server``)."""

    model_config = SettingsConfigDict(env_prefix="RIVET_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="state directory")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite at $RIVET_HOME/rivet.db",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="admin bearer token; default: generated into $RIVET_HOME/admin-token",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="key(s) encrypting stored secrets (URL-safe base64 of 32 bytes; several "
        "separated by commas, the first encrypts); default: $RIVET_HOME/secret-key",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    poll_interval: float = Field(
        default=1.0,
        gt=0,
        description="fallback polling period (s) for waiting claims and log streams; "
        "wake-up signals make the common case immediate",
    )
    sse_keepalive: float = Field(default=15.0, gt=0, description="SSE comment interval (s)")
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        # Below this a pipeline of the largest allowed size could not be sent at all.
        ge=MAX_SOURCE_BYTES + 64 * 1024,
        description="largest request body accepted (bytes); larger ones are answered 413 "
        "before they are read whole",
    )
    log_level: str = "info"

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def rivet_home(self) -> RivetHome:
        return RivetHome(self.home)

    @property
    def uses_home(self) -> bool:
        """True when something of this server lives in ``home`` (database, token, key)."""
        return self.database_url is None or self.admin_token is None or self.secret_key is None

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite database under ``home``."""
        if self.database_url:
            return self.database_url
        return self.rivet_home.database_url

    @property
    def admin_token_file(self) -> Path:
        return self.rivet_home.admin_token

    @property
    def secret_key_file(self) -> Path:
        return self.rivet_home.secret_key
