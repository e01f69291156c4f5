"""``rivet runner``: start a runner (no subcommand), list runners, set their tags,
registration tokens.

``rivet runner --server URL --token TOKEN`` starts the runner process, implemented by
``rivet.runner.agent.run_runner`` (imported lazily). The subcommands talk to a server
as a client: ``rivet runner list``, ``rivet runner set-tags|set-plugins|set-pool|remove``
(admin), ``rivet runner pools``, ``rivet runner pool NAME --exclusive|--shared``
(admin), ``rivet runner token create|list|revoke``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from rivet.cli.common import (
    UsageProblem,
    confirm,
    err_console,
    out_console,
    resolve_admin_token,
    resolve_server,
    short_id,
)
from rivet.cli.flags import with_setting_flags
from rivet.cli.options import JsonOption, UtcOption, YesOption
from rivet.cli.remote import (
    AdminTokenOption,
    ServerOption,
    admin_client_for,
    ago,
    client_for,
    format_ts,
    maybe,
)
from rivet.cli.terminal import SafeFormatter, echo, echo_json, safe, visible
from rivet.errors import ConfigError, RivetError
from rivet.settings import Flags, parse_tags
from rivet.settings.flags import RUNNER_FLAGS

if TYPE_CHECKING:
    from rivet.client.access import AccessClient
    from rivet.protocol import RunnerView

__all__ = ["app", "start_runner"]

app = typer.Typer(rich_markup_mode="markdown")
token_app = typer.Typer(
    rich_markup_mode="markdown",
    help="One-time registration tokens that runners exchange for their own token (admin).",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")


@app.callback(invoke_without_command=True)
@with_setting_flags(*RUNNER_FLAGS)
def runner(ctx: typer.Context, flags: Flags) -> None:
    """Start a runner that takes jobs from a server, or manage runners (subcommands).

    Without a subcommand this process becomes a runner: on first start it registers
    with a one-time token from `rivet runner token create` and saves its own token,
    then long-polls the server for matching jobs and runs them in Podman. Ctrl-C
    (or SIGTERM, SIGHUP) once stops taking jobs and finishes the running ones; twice
    cancels them and removes their containers. Settings not given as flags come from
    their variables, the runner's config file, then $RIVET_HOME/config (see `rivet
    config show --runner`).

    Example: rivet runner --server http://ci:8420 --registration-token rivet_reg_... --tag os=linux
    """
    if ctx.invoked_subcommand is not None:
        return
    raise typer.Exit(start_runner(flags))


def start_runner(flags: Flags) -> int:
    """``rivet.runner.agent.run_runner(flags)``, imported on use (the runner pulls in
    the executor and the Podman backend)."""
    try:
        agent = importlib.import_module("rivet.runner.agent")
    except ModuleNotFoundError as exc:
        if exc.name not in ("rivet.runner", "rivet.runner.agent"):
            raise
        raise RivetError(
            "the runner is not available in this build of Rivet (rivet.runner is missing)"
        ) from None
    _log_to_stderr()
    result = agent.run_runner(flags)
    return result if isinstance(result, int) else 0


def _log_to_stderr() -> None:
    """The runner's log on stderr, in the agent's format, through a
    :class:`~rivet.cli.terminal.SafeFormatter`: its lines carry pipeline names and
    server messages, which must not drive the operator's terminal. (The agent sets
    up logging itself only when nobody has.)"""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # One line per HTTP request would drown the runner's own messages.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command("list")
def list_runners(
    include_removed: Annotated[
        bool,
        typer.Option(
            "--all",
            "-a",
            envvar="RIVET_RUNNER_ALL",
            help="also runners removed with `rivet runner remove`",
        ),
    ] = False,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List registered runners: pool, tags, plugins, last contact and current jobs.

    Removed runners are hidden unless --all (then a `removed` column says when).

    Example: rivet runner list
    """
    with client_for(server) as client:
        views = client.list_runners(removed=include_removed)
    if as_json:
        echo_json([v.model_dump(mode="json") for v in views])
        return
    out = out_console()
    if not views:
        out.print(
            "no runners registered; create a token with 'rivet runner token create' "
            "and start one with 'rivet runner --registration-token TOKEN'"
        )
        return
    table = Table(show_edge=False, pad_edge=False)
    columns = ["name", "id", "pool", "tags", "plugins", "last seen", "jobs"]
    if include_removed:
        columns.append("removed")
    for column in columns:
        table.add_column(column)
    for view in views:
        cells: list[Text | str] = [
            safe(view.name, "bold"),
            safe(short_id(view.id), "dim"),
            safe(view.pool),
            maybe(", ".join(f"{k}={v}" for k, v in sorted(view.tags.items()))),
            maybe(", ".join(view.plugins)),
            ago(view.last_seen),
            maybe(", ".join(short_id(j) for j in view.current_jobs)),
        ]
        if include_removed:
            removed = format_ts(view.removed_at, utc) if view.removed_at else None
            cells.append(maybe(removed, "yellow"))
        table.add_row(*cells)
    out.print(table)


RunnerArgument = Annotated[
    str, typer.Argument(help="runner id or a unique prefix of it", show_default=False)
]
ClearOption = Annotated[
    bool, typer.Option("--clear", envvar="RIVET_RUNNER_CLEAR", help="remove them all")
]


@app.command("set-tags")
def set_tags(
    runner: RunnerArgument,
    tags: Annotated[
        list[str] | None,
        typer.Argument(help="every tag the runner has, as KEY=VALUE", show_default=False),
    ] = None,
    clear: ClearOption = False,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Replace a runner's tags (admin): the tags its jobs are matched with.

    Tags are stored when a runner registers and change only this way: a runner's own
    --tag flags do not override them later. Takes effect at the runner's next claim.

    Example: rivet runner set-tags 3f9c os=linux arch=arm64
    """
    if clear == bool(tags):
        raise UsageProblem("give the runner's tags as KEY=VALUE, or --clear to remove them all")
    try:
        parsed = parse_tags(tags or [], "tag")
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None
    with admin_client_for(server, admin_token) as client:
        view = client.update_runner(runner, tags=parsed)
    _print_offer(view)


@app.command("set-plugins")
def set_plugins(
    runner: RunnerArgument,
    plugins: Annotated[
        list[str] | None,
        typer.Argument(help="every plugin the runner offers", show_default=False),
    ] = None,
    clear: ClearOption = False,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Replace the plugins a runner is recorded with (admin).

    A runner is handed jobs needing a plugin only when it is recorded here *and* its
    runtime provides it. Takes effect at the runner's next claim.

    Example: rivet runner set-plugins 3f9c git
    """
    if clear == bool(plugins):
        raise UsageProblem("give the runner's plugins, or --clear to remove them all")
    with admin_client_for(server, admin_token) as client:
        view = client.update_runner(runner, plugins=list(plugins or []))
    _print_offer(view)


@app.command("remove")
def remove(
    runner: RunnerArgument,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            envvar="RIVET_RUNNER_FORCE",
            help="also when it is running jobs: they are marked failed and the runner stops them",
        ),
    ] = False,
    yes: YesOption = False,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Remove a runner (admin): revoke its token and drop it from `runner list`.

    The runner's next request is refused (HTTP 401, saying it was removed); the
    runner process logs that and stops taking jobs. Its history stays: the jobs it ran
    still name it, and `runner list --all` shows it with the time it was removed. A
    runner that is running jobs is refused unless --force, which marks those jobs
    failed ("runner ... was removed"). To bring the machine back, register it again
    with a new registration token. Asks first unless --yes; without a terminal on
    stdin, --yes is required.

    Example: rivet runner remove 3f9c --yes
    """
    with admin_client_for(server, admin_token) as client:
        view = client.get_runner(runner)
        if view.removed_at is not None:
            out_console().print(
                safe(f"runner {view.name} ({short_id(view.id)}) is already removed")
            )
            return
        jobs = f"; it is running {len(view.current_jobs)} job(s)" if view.current_jobs else ""
        confirm(
            f"Remove runner {visible(view.name)} ({short_id(view.id)})? Its token is revoked"
            + jobs,
            yes=yes,
            action=f"removing runner {visible(view.name)}",
        )
        removed = client.remove_runner(view.id, force=force)
    line = safe("removed runner ")
    line.append(visible(removed.name), style="bold")
    line.append(f" ({short_id(removed.id)}); its token is revoked", style="dim")
    out_console().print(line)


@app.command("set-pool")
def set_pool(
    runner: RunnerArgument,
    pool: Annotated[str, typer.Argument(help="the runner's pool", show_default=False)],
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Move a runner to another pool (admin). A runner's pool is given when it
    registers (--pool, default "default") and changes only this way.

    Example: rivet runner set-pool 3f9c prod
    """
    with admin_client_for(server, admin_token) as client:
        view = client.update_runner(runner, pool=pool)
    _print_offer(view)


@app.command("pools")
def list_pools(server: ServerOption = None, as_json: JsonOption = False) -> None:
    """List runner pools: exclusive or shared, and how many runners each has.

    Example: rivet runner pools
    """
    with _access_client(server) as client:
        views = client.runner_pools()
    if as_json:
        echo_json([v.model_dump(mode="json") for v in views])
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("pool", "exclusive", "runners"):
        table.add_column(column)
    for view in views:
        table.add_row(safe(view.name, "bold"), "yes" if view.exclusive else "no", str(view.runners))
    out_console().print(table)


@app.command("pool")
def configure_pool(
    name: Annotated[str, typer.Argument(help="pool name", show_default=False)],
    exclusive: Annotated[
        bool,
        typer.Option(
            "--exclusive/--shared",
            envvar="RIVET_POOL_EXCLUSIVE",
            help="exclusive: its runners run only pipelines restricted to it "
            "(rivet pipeline pools); shared: also pipelines with no restriction",
        ),
    ],
    server: ServerOption = None,
) -> None:
    """Make a runner pool exclusive or shared (admin); applies from the next claim.

    Make a pool exclusive before registering runners into it, so that its runners
    never run pipelines nobody assigned to it.

    Example: rivet runner pool prod --exclusive
    """
    with _access_client(server) as client:
        view = client.set_runner_pool(name, exclusive)
    kind = "exclusive" if view.exclusive else "shared"
    out_console().print(safe(f"pool {view.name} is {kind} ({view.runners} runners)"))


def _access_client(server: str | None) -> AccessClient:
    from rivet.client.access import AccessClient  # httpx is heavy: load it on use

    return AccessClient(resolve_server(server), admin_token=resolve_admin_token(None))


def _print_offer(view: RunnerView) -> None:
    tags = ", ".join(f"{k}={v}" for k, v in sorted(view.tags.items())) or "none"
    out_console().print(
        f"runner {view.name} ({short_id(view.id)}): pool {view.pool}; tags {tags}; "
        f"plugins {', '.join(view.plugins) or 'none'}"
    )
    err_console().print(Text("applies from the runner's next claim", style="dim"))


@token_app.command("create")
def create_token(
    description: Annotated[
        str | None,
        typer.Option(
            "--description",
            "-d",
            envvar="RIVET_TOKEN_DESCRIPTION",
            help="what the token is for",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", envvar="RIVET_QUIET", help="print only the token")
    ] = False,
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Create a one-time registration token for a new runner (admin).

    The token is printed once; the server keeps only its hash. A runner started with
    it registers, gets its own permanent token and saves that.

    Example: rivet runner token create --description "build box 3"
    """
    with admin_client_for(server, admin_token) as client:
        view = client.create_runner_token(description)
        url = client.base_url
    if quiet:
        echo(view.token)
        return
    out = out_console()
    out.print(Text("registration token (shown once; it works for one registration):", "dim"))
    echo(view.token)
    err = err_console()
    err.print(Text("start a runner with it:", "dim"))
    err.print(safe(f"  rivet runner --server {url} --registration-token {view.token}", "dim"))


@token_app.command("list")
def list_tokens(
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List registration tokens (never their secrets) and whether they were used (admin).

    Example: rivet runner token list
    """
    with admin_client_for(server, admin_token) as client:
        views = client.list_runner_tokens()
    if as_json:
        echo_json([v.model_dump(mode="json") for v in views])
        return
    out = out_console()
    if not views:
        out.print("no registration tokens; create one with 'rivet runner token create'")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "description", "created", "used"):
        table.add_column(column)
    for view in views:
        table.add_row(
            safe(short_id(view.id), "bold"),
            maybe(view.description),
            format_ts(view.created_at, utc),
            Text("yes", style="dim") if view.used else Text("no", style="green"),
        )
    out.print(table)


@token_app.command("revoke")
def revoke_token(
    token_id: Annotated[
        str, typer.Argument(help="token id or a unique prefix", show_default=False)
    ],
    server: ServerOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """Revoke an unused registration token (admin).

    Example: rivet runner token revoke 9b1c
    """
    with admin_client_for(server, admin_token) as client:
        client.delete_runner_token(token_id)
    out_console().print(safe(f"revoked registration token {token_id}"))
