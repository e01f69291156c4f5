"""``rivet server``: run the orchestrator (migrate the database, then serve HTTP).

The typer app wires :func:`serve` in as a command; ``python -m rivet.cli.server``
runs it standalone with the same options.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import uvicorn

from rivet.config import ServerSettings
from rivet.orchestrator import create_app
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
    """Migrate the database to the current schema, then serve until interrupted."""
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
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="none",
        lifespan="on",
        # Log streams and long polls never end by themselves; cut them off on Ctrl-C.
        timeout_graceful_shutdown=3,
    )


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
