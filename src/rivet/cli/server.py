"""``rivet server``: run the orchestrator (migrate the database, then serve HTTP).

The typer app wires :func:`serve` in as a command; ``python -m rivet.cli.server``
runs it standalone with the same flags (both built from
:data:`rivet.settings.flags.SERVER_FLAGS`), so ``rivet up`` does not need the typer CLI.
"""

from __future__ import annotations

import argparse
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn

from rivet.cli.common import print_error
from rivet.errors import ConfigError
from rivet.home import private_umask
from rivet.observe import tracing
from rivet.observe.levels import parse_levels
from rivet.observe.logs import configure_logging
from rivet.orchestrator import create_app
from rivet.orchestrator.state import open_database, register_settings_secrets
from rivet.settings import Flags, load_settings
from rivet.settings.flags import SERVER_FLAGS, add_arguments, flags_from
from rivet.stop_signals import handling_stop_signals
from rivet.store import upgrade

__all__ = ["serve"]


def serve(flags: Flags) -> None:
    """Migrate the database to the current schema, then serve until interrupted.

    The server's settings are ``flags`` over the rest of the chain (``RIVET_*``
    variables, ``[server]`` in ``$RIVET_HOME/config``, defaults). Runs with umask
    0o077: everything the server writes (database, tokens, keys) is for its own user
    only (see :mod:`rivet.home`)."""
    private_umask()
    settings = load_settings(flags)
    server = settings.server
    configure_logging(server.log_format, parse_levels(server.log_level))
    register_settings_secrets(settings)
    tracing.configure("rivet-server")  # only with OTEL_EXPORTER_OTLP_ENDPOINT set
    # Migrate before binding the port, so a bad URL fails fast with one clear error.
    db = open_database(settings)
    try:
        upgrade(db)
    finally:
        db.close()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        # Our handler (configure_logging) formats uvicorn's records like the others.
        log_config=None,
        log_level=None,
        ws="none",
        lifespan="on",
        # A last resort: draining (below) ends long polls and log streams at once.
        timeout_graceful_shutdown=3,
    )
    try:
        _DrainingServer(config, app).run()
    finally:
        tracing.shutdown()  # send the spans still queued


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


def main(argv: list[str] | None = None) -> int:
    """``python -m rivet.cli.server``; a bad setting is one ``error:`` line, exit 2."""
    parser = argparse.ArgumentParser(prog="rivet server", description=__doc__)
    add_arguments(parser, SERVER_FLAGS)
    try:
        serve(flags_from(parser.parse_args(argv), SERVER_FLAGS))
    except ConfigError as exc:
        print_error(str(exc))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
