"""Where an orchestrator keeps its state, from its settings (:mod:`rivet.settings`):
the database URL, and whether anything of it lives in ``$RIVET_HOME``."""

from __future__ import annotations

from rivet.settings import RivetSettings

__all__ = ["database_url", "uses_home"]


def database_url(settings: RivetSettings) -> str:
    """``server.database_url``, or the embedded SQLite database in the home."""
    return settings.server.database_url or settings.paths.database_url


def uses_home(settings: RivetSettings) -> bool:
    """True when something of this server lives in the home (database, token, key)."""
    server = settings.server
    return server.database_url is None or server.admin_token is None or server.secret_key is None
