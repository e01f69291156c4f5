"""``rivet job``: launch jobs on a server, list, show, cancel and retry them, read their logs.

Exit codes of ``job logs --follow`` and ``job launch --follow``: 0 when the job
succeeded, 1 when it failed, 130 when it was cancelled (or Ctrl-C stopped following;
the job keeps running then).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rivet.cli import common
from rivet.cli.artifact import artifact_client, artifacts_command, source_line, upload_source_dir
from rivet.cli.common import (
    EXIT_OK,
    UsageProblem,
    err_console,
    out_console,
    short_id,
)
from rivet.cli.follow import follow_job, follow_json
from rivet.cli.inputs import collect_inputs, parse_input_args, render_value
from rivet.cli.job_attempts import attempt_heading, attempts_table, cancel_message
from rivet.cli.options import InputsOption, JsonOption, UtcOption
from rivet.cli.pipeline import definition_of
from rivet.cli.remote import ServerOption, client_for, format_ts, maybe
from rivet.cli.render import (
    LogPrinter,
    StageRow,
    format_duration,
    print_outputs,
    stage_table,
    status_text,
)
from rivet.cli.terminal import echo, echo_json, echo_json_line, safe, visible
from rivet.cli.times import LogClock, spans_days
from rivet.domain.status import JobStatus

if TYPE_CHECKING:
    from rivet.client import RivetClient
    from rivet.protocol import JobLaunched, JobView, Scalar

__all__ = ["app", "print_job"]

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Jobs on a Rivet server: launch, rerun, list, show, cancel, retry, logs.",
    no_args_is_help=True,
)

JobArgument = Annotated[
    str, typer.Argument(help="job id or a unique prefix of it (4+ characters)", show_default=False)
]
FollowOption = Annotated[
    bool,
    typer.Option("--follow", "-f", envvar="RIVET_FOLLOW", help="stream the log until the job ends"),
]


@app.command("launch")
def launch(
    pipeline: Annotated[str, typer.Argument(help="pipeline name or id prefix", show_default=False)],
    inputs: InputsOption = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            "-v",
            envvar="RIVET_PIPELINE_VERSION",
            min=1,
            help="pipeline version (default: latest)",
            show_default=False,
        ),
    ] = None,
    follow: FollowOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", envvar="RIVET_QUIET", help="print only the job id")
    ] = False,
    server: ServerOption = None,
    utc: UtcOption = False,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            envvar="RIVET_SOURCE",
            help="upload this directory's files (in a git work tree: what git ls-files "
            "lists, honouring .gitignore) as the job's workspace; its commit and dirty "
            "flag are recorded",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Launch a job of a pipeline with inputs.

    Missing required inputs are asked for when stdin is a terminal; the server checks
    every input before the job exists (one error naming every bad input, exit 2).
    With --follow, streams the log and exits 0/1/130 for succeeded/failed/cancelled.
    Warns when a secret granted to the pipeline will not reach the launched version
    (an older one than the grant, or one the admin did not push): it runs without it.

    With --source DIR the files are packed into a tar.gz (a progress bar for large
    ones), uploaded (server limit artifacts.max_source_bytes) and unpacked by the
    runner into the job's workspace before its first stage.

    Example: rivet job launch build-and-test --source . --input branch=main --follow
    """
    given = parse_input_args(inputs or [])
    err = err_console()
    with client_for(server) as client:
        view = client.get_pipeline(pipeline, version)
        values: dict[str, object] = dict(given)
        if common.is_interactive():
            values = collect_inputs(definition_of(view), given, interactive=True, console=err)
        payload: dict[str, Scalar] = {
            k: v for k, v in values.items() if isinstance(v, str | int | float | bool)
        }
        uploaded = None
        if source is not None:
            with artifact_client(server) as uploader:
                uploaded = upload_source_dir(uploader, source, err)
        job = client.launch_job(view.id, payload, version=view.version, source=uploaded)
        detail = f"pipeline {visible(job.pipeline)} version {job.version}"
        _report_launched(client, job, detail, quiet=quiet, follow=follow, utc=utc)


@app.command("rerun")
def rerun(
    job: JobArgument,
    follow: FollowOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", envvar="RIVET_QUIET", help="print only the job id")
    ] = False,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """Launch a NEW job with the same pipeline version and the same inputs as JOB.

    JOB may be in any state (finished, running, queued); it is not changed. The new job
    records which job it reruns (`rerun of` in `rivet job show`, `rerun_of` in
    --json). It runs the version JOB pinned even if newer versions exist (launch the
    pipeline to run the latest); an archived pipeline refuses it. With --follow,
    streams the new job's log and exits 0/1/130 for succeeded/failed/cancelled.

    Example: rivet job rerun 3f2a9c --follow
    """
    with client_for(server) as client:
        launched = client.rerun_job(job)
        detail = (
            f"rerun of {short_id(launched.rerun_of)}: pipeline {visible(launched.pipeline)} "
            f"version {launched.version}"
        )
        _report_launched(
            client, launched, detail, quiet=quiet, follow=follow, utc=utc, as_json=as_json
        )


def _report_launched(
    client: RivetClient,
    job: JobLaunched,
    detail: str,
    *,
    quiet: bool,
    follow: bool,
    utc: bool,
    as_json: bool = False,
) -> None:
    """What `launch` and `rerun` print: warnings on stderr (so even --quiet shows
    them), the job (its id alone with --quiet, the API's answer with --json), then
    either how to follow it or, with --follow, the followed log (exits)."""
    err = err_console()
    for warning in job.warnings:
        err.print(safe(f"warning: {warning}", "yellow"))
    if as_json:
        echo_json(job.model_dump(mode="json"))
    elif quiet:
        echo(job.id)
    else:
        line = Text("launched job ")
        line.append(visible(job.id), style="bold")
        line.append(f" ({detail})", style="dim")
        out_console().print(line)
        if not follow:
            err.print(safe(f"follow it with: rivet job logs {short_id(job.id)} --follow", "dim"))
    if follow:
        raise typer.Exit(follow_job(client, job, out_console(), utc=utc))


@app.command("list")
def list_jobs(
    status: Annotated[
        list[JobStatus] | None,
        typer.Option(
            "--status", envvar="RIVET_JOB_STATUS", help="only jobs in this status (repeatable)"
        ),
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(
            "--pipeline", "-p", envvar="RIVET_JOB_PIPELINE", help="only jobs of this pipeline"
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", envvar="RIVET_JOB_LIMIT", min=1, max=500, help="at most N"),
    ] = 20,
    offset: Annotated[
        int, typer.Option(envvar="RIVET_JOB_OFFSET", min=0, help="skip the N newest")
    ] = 0,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List jobs, newest first.

    Example: rivet job list --status running --pipeline build-and-test
    """
    with client_for(server) as client:
        page = client.list_jobs([s.value for s in status or ()], pipeline, limit, offset)
    if as_json:
        echo_json(page.model_dump(mode="json"))
        return
    out = out_console()
    if not page.jobs:
        out.print("no jobs" + (" match" if status or pipeline or offset else " yet"))
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "pipeline", "status", "created", "duration", "runner", "error"):
        table.add_column(column, overflow="fold" if column == "error" else "ellipsis")
    now = datetime.now(UTC)
    for job in page.jobs:
        table.add_row(
            safe(short_id(job.id), "bold"),
            safe(f"{job.pipeline} v{job.version}"),
            _status(job),
            format_ts(job.created_at, utc),
            _duration(job, now),
            maybe(job.runner),
            maybe(_first_line(job.error), "red"),
        )
    out.print(table)
    shown = page.offset + len(page.jobs)
    if page.total > shown or page.offset:
        out.print(
            Text(f"jobs {page.offset + 1}-{shown} of {page.total} (see --limit, --offset)", "dim")
        )


@app.command("show")
def show(
    job: JobArgument,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """Show a job: status, inputs, stages with timings, outputs and error.

    A queued job also says why no runner has taken it yet (`waiting`: e.g. none of
    the online runners has the tags its pipeline requires, or all matching runners
    are busy); a rerun says which job it reruns.

    Example: rivet job show 3f2a9c
    """
    with client_for(server) as client:
        view = client.get_job(job)
    if as_json:
        echo_json(view.model_dump(mode="json"))
        return
    print_job(out_console(), view, utc)


@app.command("artifacts")
def artifacts(
    job: JobArgument,
    server: ServerOption = None,
    as_json: JsonOption = False,
    utc: UtcOption = False,
) -> None:
    """List a job's artifacts: name, file paths, sizes, SHA-256 and when they expire.

    Download one with `rivet artifact download JOB NAME -o DIR`.

    Example: rivet job artifacts 3f2a9c
    """
    artifacts_command(job, server, as_json, utc)


@app.command("cancel")
def cancel(job: JobArgument, server: ServerOption = None) -> None:
    """Cancel a job: a queued job at once, a running one as soon as its runner hears.

    If the job's runner is gone, the cancel takes effect when the job's lease runs out
    (the command says when), or at once if it already has: a cancel always ends the job.

    Example: rivet job cancel 3f2a9c
    """
    with client_for(server) as client:
        view = client.cancel_job(job)
    out_console().print(cancel_message(view, datetime.now(UTC)))


@app.command("retry")
def retry(job: JobArgument, server: ServerOption = None) -> None:
    """Run a finished job again: a new attempt with the same inputs and version.

    The job keeps its id; earlier attempts and their logs stay readable
    (`rivet job show`, `rivet job logs --attempt N`). A queued or running job cannot
    be retried (cancel it first). For a new job, launch the pipeline again.

    Example: rivet job retry 3f2a9c
    """
    with client_for(server) as client:
        view = client.retry_job(job)
    line = safe(f"job {view.id}: ")
    line.append(f"queued for attempt {view.attempt + 1}", style="cyan")
    out_console().print(line)


@app.command("logs")
def logs(
    job: JobArgument,
    follow: FollowOption = False,
    after: Annotated[
        int,
        typer.Option(envvar="RIVET_LOG_AFTER", min=0, help="start after this sequence number"),
    ] = 0,
    server: ServerOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            envvar="RIVET_JSON",
            help="one JSON object per line, each a log line as the API gives it",
        ),
    ] = False,
    utc: UtcOption = False,
    attempt: Annotated[
        int | None,
        typer.Option(
            "--attempt",
            envvar="RIVET_LOG_ATTEMPT",
            min=1,
            help="only this attempt's lines (default: every attempt, each headed by its "
            "number when there are several)",
        ),
    ] = None,
) -> None:
    """Print a job's log; with --follow, stream it live until the job ends.

    Lines look like `TIME STAGE LEVEL STREAM MESSAGE` (STREAM is `err` for a
    command's stderr); with --json each line is one JSON object (`seq`, `ts`,
    `stage`, `level`, `message`, `stream`, as in the API's log pages).
    Without --follow the command prints the lines stored so far and exits 0. With
    --follow it reconnects after a dropped connection (no line lost or repeated) and
    exits 0 if the job succeeded, 1 if it failed, 130 if it was cancelled.

    Example: rivet job logs 3f2a9c --follow
    """
    out = out_console()
    with client_for(server) as client:
        view = client.get_job(job)
        if attempt is not None and attempt > max(view.attempt, 1):
            raise UsageProblem(f"job {view.id} has no attempt {attempt} (it has {view.attempt})")
        if follow and attempt is not None:
            raise UsageProblem("--attempt cannot be combined with --follow")
        if follow and as_json:
            raise typer.Exit(follow_json(client, view, after))
        if follow:
            raise typer.Exit(follow_job(client, view, out, after, utc=utc))
        if as_json:
            for line in client.iter_logs(view.id, after, attempt):
                echo_json_line(line.model_dump(mode="json"))
            raise typer.Exit(EXIT_OK)
        clock = LogClock(utc=utc, dated=spans_days(view.created_at, view.finished_at, utc=utc))
        printer = LogPrinter(out, [s.name for s in view.stages], clock)
        shown: int | None = None
        for line in client.iter_logs(view.id, after, attempt):
            if attempt is None and len(view.attempts) > 1 and line.attempt != shown:
                shown = line.attempt
                out.print(attempt_heading(view, shown))
            printer.log_line(line)
    raise typer.Exit(EXIT_OK)


def print_job(out: Console, view: JobView, utc: bool = False) -> None:
    head = Text("job ")
    head.append(visible(view.id), style="bold")
    head.append("  ")
    head.append_text(_status(view))
    out.print(head)
    rows: list[tuple[str, Text]] = [
        ("pipeline", safe(f"{view.pipeline} version {view.version}")),
        ("runner", maybe(view.runner)),
        ("launched by", maybe(view.launched_by)),
    ]
    if view.waiting is not None:
        rows.append(("waiting", safe(view.waiting.message, "yellow")))
    if view.rerun_of is not None:
        rows.append(("rerun of", safe(view.rerun_of)))
    if (source := source_line(view)) is not None:
        rows.append(("source", safe(source)))
    rows += [
        ("created", Text(format_ts(view.created_at, utc))),
        ("started", Text(format_ts(view.started_at, utc))),
        ("finished", Text(format_ts(view.finished_at, utc))),
        ("duration", Text(_duration(view, datetime.now(UTC)))),
    ]
    if view.cancelled_by is not None:
        rows.insert(2, ("cancelled by", safe(view.cancelled_by)))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    for name, value in rows:
        facts.add_row(name, value)
    out.print(facts)
    if view.inputs:
        table = Table(title="inputs", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("name", style="bold")
        table.add_column("value", overflow="fold")
        for key, item in sorted(view.inputs.items()):
            table.add_row(safe(key), safe(render_value(item)))
        out.print(table)
    if view.stages:
        out.print(stage_table([StageRow.of(s) for s in view.stages], title="stages"))
    if view.attempts:
        out.print(attempts_table(view, utc))
    print_outputs(out, dict(view.outputs))
    if view.stall_reason and not JobStatus(view.status).finished:
        out.print(
            Text.assemble(
                ("log stalled: ", "bold yellow"),
                (visible(view.stall_reason), "yellow"),
                (" (reported by the runner; it keeps retrying)", "dim"),
            )
        )
    if view.error:
        out.print(Text.assemble(("error: ", "bold red"), (visible(view.error), "red")))


def _status(view: JobView) -> Text:
    text = status_text(view.status)
    if view.cancel_requested and not JobStatus(view.status).finished:
        text.append(" (cancelling)", style="yellow")
    return text


def _duration(view: JobView, now: datetime) -> str:
    if view.started_at is None:
        return "-"
    end = view.finished_at or now
    return format_duration((end - view.started_at).total_seconds())


def _first_line(text: str | None) -> str | None:
    return text.split("\n", 1)[0].removesuffix("\r") if text else None
