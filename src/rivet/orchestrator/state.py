"""Where an orchestrator keeps its state, from its settings (:mod:`rivet.settings`):
the database URL, and whether anything of it lives in ``$RIVET_HOME``."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from rivet.observe.logs import register_secret
from rivet.settings import RivetSettings

__all__ = ["database_url", "register_settings_secrets", "uses_home"]


def database_url(settings: RivetSettings) -> str:
    """``server.database_url``, or the embedded SQLite database in the home."""
    return settings.server.database_url or settings.paths.database_url


def uses_home(settings: RivetSettings) -> bool:
    """True when something of this server lives in the home (database, token, key)."""
    server = settings.server
    return server.database_url is None or server.admin_token is None or server.secret_key is None


def register_settings_secrets(settings: RivetSettings) -> None:
    """The server's own secrets masked in its logs (:mod:`rivet.observe.logs`): the
    admin and metrics tokens, the secret keys and the database password."""
    server = settings.server
    for secret in (server.admin_token, server.metrics_token, server.secret_key):
        if secret is not None:
            for value in secret.get_secret_value().split(","):
                register_secret(value)
    if server.database_url is not None:
        password = make_url(server.database_url).password
        if password:
            register_secret(str(password))
