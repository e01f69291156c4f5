"""``rivet secret``: encrypted secrets on the server, their grants to pipelines, and who
may use them (admins, and the users and API keys an admin allowed).

A value never comes from the command line (it would stay in shell history and be
visible in ``ps``): ``rivet secret set NAME`` reads it from standard input when that
is not a terminal, else asks for it twice without echo. Nothing prints a value.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rivet.cli import common
from rivet.cli.common import UsageProblem, out_console, resolve_admin_token, resolve_server
from rivet.cli.options import JsonOption, UtcOption
from rivet.cli.remote import AdminTokenOption, ServerOption, format_ts, maybe
from rivet.cli.terminal import echo_json, safe
from rivet.domain.secret_rules import SECRET_NAME, check_value

if TYPE_CHECKING:
    from rivet.client.access import AccessClient
    from rivet.client.secret_admin import SecretClient
    from rivet.protocol import SecretAccessView

__all__ = ["app", "read_value"]

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Encrypted secrets on the server, their grants to pipelines, and who may use "
    "them (admins by default; allow, disallow, access).",
    no_args_is_help=True,
)

NameArgument = Annotated[
    str, typer.Argument(help="secret name, e.g. DEPLOY_TOKEN", show_default=False)
]
PipelineArgument = Annotated[str, typer.Argument(help="pipeline name", show_default=False)]


def _client(server: str | None, admin_token: str | None) -> SecretClient:
    from rivet.client.secret_admin import SecretClient  # httpx is heavy: load it on use

    return SecretClient(resolve_server(server), admin_token=resolve_admin_token(admin_token))


def read_value(name: str) -> str:
    """The value from stdin (one trailing newline dropped), or a hidden prompt asked
    twice on a terminal."""
    if common.is_interactive():
        first = getpass.getpass(f"value of {name} (input hidden): ", stream=sys.stderr)
        second = getpass.getpass(f"value of {name} again: ", stream=sys.stderr)
        if first != second:
            raise UsageProblem("the two values differ; nothing was stored")
        value = first
    else:
        value = sys.stdin.read()
        # `echo TOKEN | rivet secret set X` adds a newline that is not part of the value.
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageProblem(
            f"no value for {name}: pipe it in (rivet secret set {name} < file) "
            "or run the command in a terminal to be asked for it"
        )
    return check_value(name, value)


def _grants(grants: list[str]) -> str:
    return ", ".join(grants) if grants else "no pipeline"


@app.command("set", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def set_secret(
    ctx: typer.Context,
    name: NameArgument,
    grants: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            "-g",
            # Not RIVET_SECRET_*: `rivet run` reads those as secrets.
            envvar="RIVET_GRANT",
            help="grant it to this pipeline too (repeatable; RIVET_GRANT splits on spaces)",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Create or replace a secret; the value comes from stdin or a hidden prompt.

    There is no value argument: a value on the command line would be kept in shell
    history and shown by `ps`. Replacing a value keeps its grants.

    Example: rivet secret set DEPLOY_TOKEN --grant deploy < token.txt
    """
    if ctx.args:
        # Never echo them: the likeliest extra argument is the value itself.
        raise UsageProblem(
            f"rivet secret set takes no value argument ({len(ctx.args)} extra "
            f"argument(s) ignored and not stored); pipe the value in: "
            f"rivet secret set {name} < file, or run it in a terminal to be asked"
        )
    if not SECRET_NAME.fullmatch(name):
        # Not shown: a value typed in place of the name would be echoed otherwise.
        raise UsageProblem(
            "invalid secret name (not shown, in case it is a value): use letters, digits "
            "and '_', starting with a letter or '_', at most 128 characters"
        )
    value = read_value(name)
    with _client(server, admin_token) as client:
        view = client.set_secret(name, value, grants or [])
    verb = "created" if view.created_at == view.updated_at else "updated"
    out_console().print(safe(f"secret {view.name} {verb} (granted to {_grants(view.grants)})"))


@app.command("list")
def list_secrets(
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List secrets: names, grants and timestamps (never values).

    Each grant shows the first version it covers ("deploy (v3+)"): versions the admin
    pushes from then on receive the secret, older ones run without it.

    Example: rivet secret list
    """
    with _client(server, admin_token) as client:
        views = client.list_secrets()
    if as_json:
        echo_json([v.model_dump(mode="json") for v in views])
        return
    out = out_console()
    if not views:
        out.print("no secrets; create one with 'rivet secret set NAME'")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("name", "granted to", "created", "updated"):
        table.add_column(column)
    for view in views:
        table.add_row(
            safe(view.name, "bold"),
            maybe(", ".join(f"{p} (v{view.covers.get(p, 1)}+)" for p in view.grants)),
            format_ts(view.created_at, utc),
            format_ts(view.updated_at, utc),
        )
    out.print(table)


@app.command("delete")
def delete_secret(
    name: NameArgument, server: ServerOption = None, admin_token: AdminTokenOption = None
) -> None:
    """Delete a secret and its grants. Jobs already running keep the value they got.

    Example: rivet secret delete DEPLOY_TOKEN
    """
    with _client(server, admin_token) as client:
        client.delete_secret(name)
    out_console().print(safe(f"deleted secret {name}"))


@app.command("grant")
def grant_secret(
    name: NameArgument,
    pipeline: PipelineArgument,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Let jobs of a pipeline (any version, by name) read a secret.

    Example: rivet secret grant DEPLOY_TOKEN deploy
    """
    with _client(server, admin_token) as client:
        view = client.grant_secret(name, pipeline)
    out_console().print(safe(f"secret {view.name} is granted to {_grants(view.grants)}"))


@app.command("revoke")
def revoke_secret(
    name: NameArgument,
    pipeline: PipelineArgument,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Stop granting a secret to a pipeline (jobs claimed later no longer get it).

    Example: rivet secret revoke DEPLOY_TOKEN deploy
    """
    with _client(server, admin_token) as client:
        view = client.revoke_secret(name, pipeline)
    out_console().print(safe(f"secret {view.name} is granted to {_grants(view.grants)}"))


def _access_client(server: str | None, admin_token: str | None) -> AccessClient:
    from rivet.client.access import AccessClient  # httpx is heavy: load it on use

    return AccessClient(resolve_server(server), admin_token=resolve_admin_token(admin_token))


SubjectArgument = Annotated[
    str, typer.Argument(help="who: user:NAME or api-key:NAME", show_default=False)
]


def _print_access(view: SecretAccessView) -> None:
    out = out_console()
    if not view.entries:
        out.print(safe(f"secret {view.secret}: admins only"))
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("who")
    table.add_column("may")
    for subject, level in sorted(view.entries.items()):
        table.add_row(safe(subject), safe(level))
    out.print(safe(f"secret {view.secret}: admins, and"))
    out.print(table)


@app.command("access")
def secret_access(
    name: NameArgument,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show who besides admins may use, grant or write a secret.

    Example: rivet secret access DEPLOY_TOKEN
    """
    with _access_client(server, admin_token) as client:
        view = client.secret_access(name)
    if as_json:
        echo_json(view.model_dump(mode="json"))
        return
    _print_access(view)


@app.command("allow")
def allow_secret(
    name: NameArgument,
    subject: SubjectArgument,
    can: Annotated[
        str,
        typer.Option(
            "--can",
            envvar="RIVET_ACCESS_LEVEL",
            help="use (launch pipelines granted it; versions they push receive it), "
            "grant (also grant/revoke it to pipelines they may push) or write (also set "
            "and delete it); cumulative",
        ),
    ] = "use",
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Delegate a secret to a user or API key (admin). The secret need not exist yet:
    --can write then lets them create it.

    Example: rivet secret allow DEPLOY_TOKEN user:ann --can grant
    """
    with _access_client(server, admin_token) as client:
        view = client.allow_secret(name, subject, can)
    _print_access(view)


@app.command("disallow")
def disallow_secret(
    name: NameArgument,
    subject: SubjectArgument,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Take a subject's permission on a secret away (admin). Versions they pushed stop
    receiving it from the next claim on.

    Example: rivet secret disallow DEPLOY_TOKEN user:ann
    """
    with _access_client(server, admin_token) as client:
        view = client.disallow_secret(name, subject)
    _print_access(view)
