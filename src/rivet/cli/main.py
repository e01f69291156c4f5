"""The ``rivet`` command: a typer app with one module per command group.

Errors: a :class:`~rivet.errors.RivetError` (including server answers and an
unreachable server), a ``ValueError`` from user input or an ``httpx`` transport
error is printed as ``error: <message>`` on stderr, never as a traceback; the exit
code is 2 for mistakes in what was typed (inputs, flags) and 1 otherwise; Ctrl-C
exits 130. ``RIVET_DEBUG=1`` re-raises instead, to see the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from rivet import __version__
from rivet.cli import artifact as artifact_cmd
from rivet.cli import audit as audit_cmd
from rivet.cli import check as check_cmd
from rivet.cli import config as config_cmd
from rivet.cli import init as init_cmd
from rivet.cli import job as job_cmd
from rivet.cli import pipeline as pipeline_cmd
from rivet.cli import plugin as plugin_cmd
from rivet.cli import run as run_cmd
from rivet.cli import runner as runner_cmd
from rivet.cli import secret as secret_cmd
from rivet.cli import up as up_cmd
from rivet.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    err_console,
    exit_code_for,
    print_definition_error,
    print_error,
)
from rivet.cli.flags import with_setting_flags
from rivet.cli.terminal import echo
from rivet.errors import DefinitionError, RivetError
from rivet.settings import Flags
from rivet.settings.flags import SERVER_FLAGS

__all__ = ["app", "main"]

HELP = (
    "Rivet: CI/CD where pipelines are Lua scripts and every command runs in a container."
    "\n\n"
    "Check and run pipeline files locally, or drive a Rivet server and its runners."
)


class RivetGroup(TyperGroup):
    """The root group: turns user-facing errors into one ``error:`` line and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # a typer (vendored click) Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except KeyboardInterrupt:
            if _debug():
                raise
            err_console().print()
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except DefinitionError as exc:
            if _debug():
                raise
            print_definition_error(exc, err_console())
            raise typer.Exit(EXIT_FAILED) from None
        except (RivetError, ValueError) as exc:
            if _debug():
                raise
            print_error(str(exc) or type(exc).__name__)
            raise typer.Exit(exit_code_for(exc)) from None
        except Exception as exc:
            # httpx is imported here, not at start-up: most commands never need it.
            import httpx

            if _debug() or not isinstance(exc, httpx.TransportError):
                raise
            print_error(f"connection to the Rivet server failed: {exc or type(exc).__name__}")
            raise typer.Exit(EXIT_FAILED) from None


def _debug() -> bool:
    return os.environ.get("RIVET_DEBUG", "") not in ("", "0", "false", "no")


app = typer.Typer(
    rich_markup_mode="markdown",
    cls=RivetGroup,
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        echo(f"rivet {__version__}")
        raise typer.Exit()


@app.callback(help=HELP)
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """The root of every command: only ``--version`` lives here."""


LOCAL = "Local pipelines"
REMOTE = "Server"

app.command("check", rich_help_panel=LOCAL)(check_cmd.check)
app.command("run", rich_help_panel=LOCAL)(run_cmd.run)
app.add_typer(init_cmd.app, name="init", rich_help_panel=LOCAL)
app.add_typer(plugin_cmd.app, name="plugin", rich_help_panel=LOCAL)
app.add_typer(pipeline_cmd.app, name="pipeline", rich_help_panel=REMOTE)
app.add_typer(job_cmd.app, name="job", rich_help_panel=REMOTE)
app.add_typer(artifact_cmd.app, name="artifact", rich_help_panel=REMOTE)
app.add_typer(runner_cmd.app, name="runner", rich_help_panel=REMOTE)
app.add_typer(secret_cmd.app, name="secret", rich_help_panel=REMOTE)
app.add_typer(audit_cmd.app, name="audit", rich_help_panel=REMOTE)
app.command("up", rich_help_panel=REMOTE)(up_cmd.up)
app.add_typer(config_cmd.app, name="config")


@app.command("server", rich_help_panel=REMOTE)
@with_setting_flags(*SERVER_FLAGS)
def server(flags: Flags) -> None:
    """Run the Rivet orchestrator: the HTTP API that the CLI and runners talk to.

    Migrates the database first. On first start it writes an admin token to
    $RIVET_HOME/admin-token (used by `rivet runner token create` on this machine).
    Its other settings (RIVET_MAX_BODY_BYTES, the largest request body accepted,
    default 4 MiB; RIVET_LOG_LEVEL, e.g. info,rivet.jobqueue=debug; RIVET_METRICS_TOKEN
    and RIVET_METRICS_ALLOW, who may read GET /metrics, loopback by default; …) come
    from their variables or [server] in $RIVET_HOME/config; `rivet config show` lists
    them. Metrics and log fields: docs/observability.md.
    Ctrl-C, SIGTERM or SIGHUP stop it cleanly (waiting claims answer at once).

    Example: rivet server --host 0.0.0.0 --port 8420
    """
    from rivet.cli.server import serve

    serve(flags)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="rivet")
    except KeyboardInterrupt:  # outside a command (e.g. while importing)
        sys.exit(EXIT_INTERRUPTED)
