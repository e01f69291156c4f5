"""``rivet pipeline``: pipelines stored on a server (each create makes a new version)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from rivet.cli.common import (
    EXIT_FAILED,
    UsageProblem,
    confirm,
    err_console,
    out_console,
    print_problem_lines,
    resolve_admin_token,
    resolve_server,
    short_id,
)
from rivet.cli.inputs import render_value
from rivet.cli.options import JsonOption, UtcOption, YesOption
from rivet.cli.remote import ServerOption, client_for, format_ts, maybe
from rivet.cli.terminal import echo_json, echo_source, safe, visible
from rivet.domain.definition import PipelineDefinition
from rivet.errors import ApiError
from rivet.local.source import read_pipeline_file

if TYPE_CHECKING:
    from rivet.client import RivetClient
    from rivet.client.access import AccessClient
    from rivet.protocol import PipelineAccessView, PipelineView

__all__ = ["app", "definition_of"]

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Pipelines on a Rivet server: create (a new version per create), list, show, "
    "versions, delete (archive) and restore, and who may use them (access, grant, revoke, "
    "pools).",
    no_args_is_help=True,
)


def definition_of(view: PipelineView) -> PipelineDefinition:
    return PipelineDefinition.from_dict(view.definition)


def definition_messages(error: ApiError) -> list[str] | None:
    """The ``rivet check``-style lines of a server's ``invalid_definition`` answer."""
    from rivet.client import error_body

    body = error_body(error)
    if body is None or body.code != "invalid_definition":
        return None
    details = body.details if isinstance(body.details, dict) else {}
    messages = details.get("messages")
    if isinstance(messages, list) and messages:
        return [str(m) for m in messages]
    return str(error).split("\n")


@app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="the pipeline file", show_default=False)],
    server: ServerOption = None,
) -> None:
    """Upload a pipeline file; the server validates it exactly like `rivet check`.

    A name the server already has gets a new version; jobs pin the version they were
    launched with. Definition errors are printed one per line, exit code 1.

    Example: rivet pipeline create build.lua
    """
    source = read_pipeline_file(file)
    # The admin token, when this machine has one, lets new versions of pipelines
    # with granted secrets through; everyone else may create the others.
    with client_for(server, resolve_admin_token(None)) as client:
        try:
            view = client.create_pipeline(source, str(file))
        except ApiError as exc:
            messages = definition_messages(exc)
            if messages is None:
                raise
            print_problem_lines(messages, err_console())
            raise typer.Exit(EXIT_FAILED) from None
    created = safe(f"{file}: created pipeline ")
    created.append(visible(view.name), style="bold")
    created.append(f" version {view.version}", style="green")
    created.append(f" (id {visible(short_id(view.id))})", style="dim")
    out_console().print(created)


@app.command("list")
def list_pipelines(
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", envvar="RIVET_PIPELINE_LIMIT", min=1, max=500, help="at most N"
        ),
    ] = 50,
    offset: Annotated[
        int,
        typer.Option(envvar="RIVET_PIPELINE_OFFSET", min=0, help="skip the first N (by name)"),
    ] = 0,
    include_archived: Annotated[
        bool,
        typer.Option(
            "--all",
            "-a",
            envvar="RIVET_PIPELINE_ALL",
            help="also archived pipelines (see `rivet pipeline delete`)",
        ),
    ] = False,
    only_archived: Annotated[
        bool,
        typer.Option(
            "--archived", envvar="RIVET_PIPELINE_ARCHIVED", help="only archived pipelines"
        ),
    ] = False,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List pipelines (their latest versions) by name, a page at a time.

    Archived pipelines (`rivet pipeline delete`) are hidden unless --all or
    --archived. When more pipelines exist than were shown, a last line says which
    ones were shown and how to see the next page (--offset). --json prints the API's
    page: `pipelines`, `total`, `limit`, `offset`.

    Example: rivet pipeline list --limit 20 --offset 20
    """
    if include_archived and only_archived:
        raise UsageProblem("--all and --archived exclude each other")
    archived = "only" if only_archived else "include" if include_archived else "hide"
    with client_for(server) as client:
        page = client.list_pipelines(archived=archived, limit=limit, offset=offset)
    if as_json:
        echo_json(page.model_dump(mode="json"))
        return
    out = out_console()
    views = page.pipelines
    if not views:
        if offset and page.total:
            out.print(f"no pipelines after the first {page.total}")
        elif only_archived:
            out.print("no archived pipelines")
        else:
            out.print(_nothing_active(client_for(server)))
        return
    table = Table(show_edge=False, pad_edge=False)
    columns = ["name", "version", "stages", "inputs", "updated", "id", "description"]
    if archived != "hide":
        columns.insert(1, "state")
    for column in columns:
        table.add_column(column, justify="right" if column in ("version", "stages") else "left")
    for view in views:
        definition = view.definition
        cells: list[Text | str] = [
            safe(view.name, "bold"),
            f"{view.version}" + (f"/{view.versions}" if view.versions > 1 else ""),
            str(len(definition.get("stages", []))),
            maybe(_input_names(definition)),
            format_ts(view.created_at, utc),
            safe(short_id(view.id), "dim"),
            maybe(view.description),
        ]
        if archived != "hide":
            cells.insert(1, Text("archived", "yellow") if view.archived_at else "active")
        table.add_row(*cells)
    out.print(table)
    shown = page.offset + len(views)
    if page.total > shown or page.offset:
        hint = f"pipelines {page.offset + 1}-{shown} of {page.total}"
        if page.total > shown:
            hint += f"; next page: rivet pipeline list --offset {shown}"
            hint += f" --limit {limit}" if limit != 50 else ""
        out.print(Text(hint, "dim"))


@app.command("show")
def show(
    pipeline: Annotated[str, typer.Argument(help="pipeline name or id prefix", show_default=False)],
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            "-v",
            envvar="RIVET_PIPELINE_VERSION",
            min=1,
            help="a version number (default: latest)",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        bool,
        typer.Option("--source", envvar="RIVET_PIPELINE_SOURCE", help="print only the Lua source"),
    ] = False,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """Show a pipeline's definition: inputs, runner tags, plugins and stages.

    Example: rivet pipeline show build-and-test --version 2 --source
    """
    with client_for(server) as client:
        view = client.get_pipeline(pipeline, version)
    if source:
        echo_source(view.source or "")
        return
    if as_json:
        echo_json(view.model_dump(mode="json"))
        return
    print_pipeline(view, utc)


def print_pipeline(view: PipelineView, utc: bool = False) -> None:
    out = out_console()
    definition = view.definition
    head = Text("pipeline ")
    head.append(visible(view.name), style="bold")
    head.append(f"  version {view.version} of {view.versions}", style="green")
    head.append(f"  id {visible(view.id)}", style="dim")
    out.print(head)
    out.print(Text(f"created {format_ts(view.created_at, utc)}", style="dim"))
    if view.archived_at is not None:
        out.print(
            Text(
                f"archived {format_ts(view.archived_at, utc)}: takes no new jobs or versions "
                f"(rivet pipeline restore {visible(view.name)})",
                style="yellow",
            )
        )
    if view.description:
        out.print(safe(view.description))
    inputs: list[dict[str, Any]] = definition.get("inputs", [])
    if inputs:
        table = Table(title="inputs", title_justify="left", show_edge=False, pad_edge=False)
        for column in ("name", "type", "required", "default", "options", "description"):
            table.add_column(column)
        for spec in inputs:
            options = spec.get("options")
            table.add_row(
                safe(spec["name"], "bold"),
                safe(spec["type"]),
                "yes" if spec.get("required") else "no",
                maybe(render_value(spec.get("default"))),
                maybe(", ".join(render_value(o) for o in options) if options else None),
                maybe(spec.get("description")),
            )
        out.print(table)
    tags = definition.get("tags", [])
    if tags:
        listed = ", ".join(f"{t['key']}={t['value']}" for t in tags)
        out.print(Text.assemble(("runner tags: ", "bold"), visible(listed)))
    plugins = definition.get("plugins", [])
    if plugins:
        out.print(Text.assemble(("plugins: ", "bold"), visible(", ".join(plugins))))
    table = Table(title="stages", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("#", "name", "container", "condition"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for position, stage in enumerate(definition.get("stages", []), start=1):
        table.add_row(
            str(position),
            safe(stage["name"], "bold"),
            maybe(stage.get("container")),
            "yes" if stage.get("has_condition") else Text("-", style="dim"),
        )
    out.print(table)


@app.command("versions")
def versions(
    pipeline: Annotated[str, typer.Argument(help="pipeline name or id prefix", show_default=False)],
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List every version of a pipeline, oldest first, with who pushed it.

    Only versions the admin pushed after a secret was granted receive that secret.

    Example: rivet pipeline versions build-and-test
    """
    with client_for(server) as client:
        views = client.pipeline_versions(pipeline)
    if as_json:
        echo_json([v.model_dump(mode="json") for v in views])
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("version", "created", "pushed by", "stages", "inputs", "description"):
        table.add_column(column, justify="right" if column in ("version", "stages") else "left")
    for view in views:
        table.add_row(
            str(view.version),
            format_ts(view.created_at, utc),
            maybe(view.created_by),
            str(len(view.definition.get("stages", []))),
            maybe(_input_names(view.definition)),
            maybe(view.description),
        )
    out_console().print(table)


def _nothing_active(client: RivetClient) -> str:
    """What an empty default listing says: whether archived pipelines exist."""
    with client:
        archived = client.list_pipelines(archived="only", limit=1).total
    if archived:
        return f"no active pipelines ({archived} archived: rivet pipeline list --archived)"
    return "no pipelines yet; create one with: rivet pipeline create FILE"


PipelineArgument = Annotated[
    str, typer.Argument(help="pipeline name or id prefix", show_default=False)
]


@app.command("delete")
def delete(
    pipeline: PipelineArgument,
    yes: YesOption = False,
    server: ServerOption = None,
    utc: UtcOption = False,
) -> None:
    """Archive a pipeline: it takes no new jobs and no new versions.

    Nothing is erased: its versions stay readable (`pipeline show`, `pipeline
    versions`) and so do its jobs and their logs; jobs already queued or running are
    left alone (cancel them with `rivet job cancel`). `pipeline list` hides it unless
    --all or --archived. Launching it, rerunning one of its jobs or pushing a new
    version of it is refused (HTTP 409) with a message naming it, until `rivet
    pipeline restore NAME`. Asks first unless --yes; without a terminal on stdin,
    --yes is required.

    Example: rivet pipeline delete old-build --yes
    """
    with client_for(server) as client:
        view = client.get_pipeline(pipeline)
        if view.archived_at is not None:
            out_console().print(
                safe(
                    f"pipeline {view.name} is already archived ({format_ts(view.archived_at, utc)})"
                )
            )
            return
        confirm(
            f"Archive pipeline {visible(view.name)} ({view.versions} version(s))? It will "
            "take no new jobs; its history stays readable",
            yes=yes,
            action=f"archiving pipeline {visible(view.name)}",
        )
        archived = client.archive_pipeline(view.id)
    line = safe("archived pipeline ")
    line.append(visible(archived.name), style="bold")
    line.append(f" (restore it with: rivet pipeline restore {visible(archived.name)})", "dim")
    out_console().print(line)


@app.command("restore")
def restore(pipeline: PipelineArgument, server: ServerOption = None) -> None:
    """Restore an archived pipeline: launches and new versions are accepted again.

    It reappears in `pipeline list` with all its versions; nothing was lost while it
    was archived. Restoring an active pipeline changes nothing.

    Example: rivet pipeline restore old-build
    """
    with client_for(server) as client:
        view = client.restore_pipeline(pipeline)
    line = safe("pipeline ")
    line.append(visible(view.name), style="bold")
    line.append(f" is active (version {view.version})")
    out_console().print(line)


def _input_names(definition: dict[str, Any]) -> str:
    return ", ".join(str(i["name"]) for i in definition.get("inputs", []))


SubjectArgument = Annotated[
    str,
    typer.Argument(
        help="who: user:NAME, api-key:NAME or role:viewer|user|admin", show_default=False
    ),
]


def _access_client(server: str | None) -> AccessClient:
    from rivet.client.access import AccessClient  # httpx is heavy: load it on use

    return AccessClient(resolve_server(server), admin_token=resolve_admin_token(None))


@app.command("access")
def access(
    pipeline: PipelineArgument, server: ServerOption = None, as_json: JsonOption = False
) -> None:
    """Show who may do what with a pipeline: its owner, access list and runner pools.

    Levels are cumulative: view < launch (and cancel its jobs) < push (new versions).
    The owner and admins always push; a role entry applies to that role and stronger
    ones (role:viewer is everyone).

    Example: rivet pipeline access deploy
    """
    with _access_client(server) as client:
        view = client.pipeline_access(pipeline)
    if as_json:
        echo_json(view.model_dump(mode="json"))
        return
    print_access(view)


def print_access(view: PipelineAccessView) -> None:
    out = out_console()
    out.print(Text.assemble(safe(view.pipeline, "bold"), "  owner ", safe(view.owner)))
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("who")
    table.add_column("may")
    for subject, level in sorted(view.entries.items()):
        table.add_row(safe(subject), safe(level))
    if view.entries:
        out.print(table)
    else:
        out.print(Text("no access entries: only the owner and admins may use it", "dim"))
    out.print(Text.assemble("pools ", maybe(", ".join(view.pools) or None)))
    out.print(Text(f"you may: {view.you}", "dim"))


@app.command("grant")
def grant(
    pipeline: PipelineArgument,
    subject: SubjectArgument,
    can: Annotated[
        str,
        typer.Option(
            "--can",
            envvar="RIVET_ACCESS_LEVEL",
            help="view, launch (and cancel) or push (new versions); cumulative",
        ),
    ] = "launch",
    server: ServerOption = None,
) -> None:
    """Give a user, an API key or a role a level on a pipeline (its owner or an admin).

    Replaces the subject's entry. Example: rivet pipeline grant deploy user:ann --can push
    """
    with _access_client(server) as client:
        view = client.grant_pipeline(pipeline, subject, can)
    print_access(view)


@app.command("revoke")
def revoke(
    pipeline: PipelineArgument, subject: SubjectArgument, server: ServerOption = None
) -> None:
    """Remove a subject's entry from a pipeline's access list (its owner or an admin).

    Revoking role:user leaves only the listed subjects able to launch; revoking
    role:viewer too hides the pipeline and its jobs from everyone else.

    Example: rivet pipeline revoke deploy role:user
    """
    with _access_client(server) as client:
        view = client.revoke_pipeline(pipeline, subject)
    print_access(view)


@app.command("pools")
def pools(
    pipeline: PipelineArgument,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="every runner pool its jobs may run in", show_default=False),
    ] = None,
    clear: Annotated[
        bool,
        typer.Option(
            "--clear", envvar="RIVET_POOLS_CLEAR", help="lift the restriction: any shared pool"
        ),
    ] = False,
    server: ServerOption = None,
) -> None:
    """Restrict a pipeline's jobs to runner pools (admin); checked when a runner claims.

    A runner of another pool never receives its jobs. Jobs of pipelines with no
    restriction run in any pool that is not exclusive (`rivet runner pool`).

    Example: rivet pipeline pools deploy prod
    """
    if clear == bool(names):
        raise UsageProblem("give the pools, or --clear to lift the restriction")
    with _access_client(server) as client:
        view = client.set_pipeline_pools(pipeline, list(names or []))
    print_access(view)
