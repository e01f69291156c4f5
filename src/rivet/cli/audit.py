"""``rivet audit``: the server's audit trail (admin)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from rivet.cli.common import out_console, resolve_admin_token, resolve_server
from rivet.cli.options import JsonOption, UtcOption
from rivet.cli.remote import ServerOption, format_ts, maybe
from rivet.cli.terminal import echo_json, safe

__all__ = ["app"]

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Who changed what on the server, and when (admin).",
    no_args_is_help=True,
)


@app.command("list")
def list_events(
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            max=1000,
            envvar="RIVET_AUDIT_LIMIT",
            help="how many, newest first",
        ),
    ] = 50,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List the newest audit events: pipeline pushes, access and pool changes, secret
    changes and grants, runner registrations and changes, registration tokens, job
    launches and cancels, each with who did it.

    Example: rivet audit list --limit 20
    """
    from rivet.client.access import AccessClient  # httpx is heavy: load it on use

    token = resolve_admin_token(None)
    with AccessClient(resolve_server(server), admin_token=token) as client:
        events = client.audit(limit)
    if as_json:
        echo_json([e.model_dump(mode="json") for e in events])
        return
    out = out_console()
    if not events:
        out.print("no audit events yet")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("when", "who", "what", "on", "details"):
        table.add_column(column)
    for event in events:
        details = ", ".join(f"{k}={v}" for k, v in sorted(event.details.items()))
        table.add_row(
            format_ts(event.at, utc),
            safe(event.actor, "bold"),
            safe(event.action),
            safe(event.target),
            maybe(details or None),
        )
    out.print(table)
