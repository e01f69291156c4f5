"""``rivet server``: run the orchestrator (migrate the database, then serve HTTP).

The typer app wires :func:`serve` in as a command; ``python -m rivet.cli.server``
runs it standalone with the same options.
"""

from __future__ import annotations

import argparse
import logging
import socket
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from rivet.config import ServerSettings
from rivet.home import private_umask
from rivet.orchestrator import create_app
from rivet.stop_signals import handling_stop_signals
from rivet.store import Database, upgrade

__all__ = ["build_settings", "serve"]


def build_settings(
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    home: Path | None = None,
) -> ServerSettings:
    """Settings from ``RIVET_*`` variables, overridden by the flags that were given."""
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": host,
            "port": port,
            "database_url": database_url,
            "home": home,
        }.items()
        if value is not None
    }
    return ServerSettings(**overrides)


def serve(host: str, port: int, database_url: str | None, home: Path | None) -> None:
    """Migrate the database to the current schema, then serve until interrupted.

    Runs with umask 0o077: everything the server writes (database, tokens, keys) is
    for its own user only (see :mod:`rivet.home`)."""
    private_umask()
    settings = build_settings(host, port, database_url, home)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Migrate before binding the port, so a bad URL fails fast with one clear error.
    db = Database(settings.resolved_database_url)
    try:
        upgrade(db)
    finally:
        db.close()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="none",
        lifespan="on",
        # A last resort: draining (below) ends long polls and log streams at once.
        timeout_graceful_shutdown=3,
    )
    _DrainingServer(config, app).run()


class _DrainingServer(uvicorn.Server):
    """On a stop signal (SIGINT, SIGTERM, SIGHUP: :mod:`rivet.stop_signals`), ends
    waiting claims (they answer 204) and log streams (the clients reconnect from their
    last sequence number) right away, instead of letting uvicorn wait for them and
    then cut them off with errors, and shuts down cleanly."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn handles SIGINT and SIGTERM only: SIGHUP (the terminal closed, the SSH
        # session dropped) would kill the server mid-request. With every stop signal
        # handled here, the one uvicorn passes on after its shutdown lands here again
        # (a no-op then), so the server exits 0 once it has stopped.
        with handling_stop_signals(self.handle_exit):
            super().run(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        services = getattr(self._app.state, "services", None)
        if services is not None:
            services.queue.drain()


def main(argv: list[str] | None = None) -> None:
    defaults = ServerSettings()
    parser = argparse.ArgumentParser(prog="rivet server", description=__doc__)
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--database-url", default=None, help="default: $RIVET_DATABASE_URL")
    parser.add_argument("--home", type=Path, default=None, help="default: $RIVET_HOME")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.database_url, args.home)


if __name__ == "__main__":
    main()
