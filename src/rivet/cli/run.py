"""``rivet run FILE``: run a pipeline locally, every command in a Podman container.

The command parses flags, asks for missing inputs on a terminal and prints; the run
itself is :mod:`rivet.local.run`."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from rivet.cli import common
from rivet.cli.check import strip_file_prefix
from rivet.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    err_console,
    out_console,
    print_definition_error,
)
from rivet.cli.flags import with_setting_flags
from rivet.cli.inputs import collect_inputs, parse_input_args
from rivet.cli.options import InputsOption, UtcOption
from rivet.cli.render import LogPrinter, StageRow, format_duration, print_outputs, stage_table
from rivet.cli.terminal import safe, visible
from rivet.cli.times import LogClock
from rivet.domain.status import JobStatus
from rivet.engine.events import CancelToken, JobResult
from rivet.errors import DefinitionError
from rivet.observe import tracing
from rivet.settings import Flags, load_settings
from rivet.settings.flags import RUN_FLAGS
from rivet.stop_signals import handling_stop_signals, signal_name

__all__ = ["exit_code_for_status", "print_job_summary", "run"]


def exit_code_for_status(status: str) -> int:
    """0 succeeded, 130 cancelled, 1 anything else (failed, or not finished)."""
    if status == JobStatus.SUCCEEDED:
        return EXIT_OK
    if status == JobStatus.CANCELLED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def print_job_summary(
    console: Console,
    status: str,
    rows: list[StageRow],
    outputs: dict[str, object],
    error: str | None,
    duration: float | None = None,
) -> None:
    console.print()
    if rows:
        console.print(stage_table(rows))
    print_outputs(console, outputs)
    line = Text("job ")
    line.append(
        visible(status),
        style={"succeeded": "bold green", "cancelled": "bold yellow"}.get(status, "bold red"),
    )
    if duration is not None:
        line.append(f" in {format_duration(duration)}", style="dim")
    if error:
        line.append(f": {visible(error)}", style="red")
    console.print(line)


@with_setting_flags(*RUN_FLAGS)
def run(
    file: Annotated[Path, typer.Argument(help="the pipeline file", show_default=False)],
    flags: Flags,
    inputs: InputsOption = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file",
            envvar="RIVET_SECRETS_FILE",
            help='secrets for the job: NAME=value lines, or NAME = "value" in a .toml file '
            "(besides RIVET_SECRET_<NAME> variables; all are granted locally)",
            show_default=False,
        ),
    ] = None,
    utc: UtcOption = False,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            envvar="RIVET_SOURCE",
            help="copy this directory's files into the job's workspace first (in a git "
            "work tree: the files git ls-files lists, honouring .gitignore); never mounted",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a pipeline locally: stages in order, every command in a Podman container.

    Inputs come from --input NAME=VALUE; missing required ones are asked for when
    stdin is a terminal. Prints each log line as `TIME STAGE LEVEL STREAM MESSAGE`
    (STREAM is `err` for a command's stderr), then a table of stages. Exits 0 if
    the job succeeded, 1 if it failed, 130 after Ctrl-C, SIGTERM or SIGHUP (the first
    one cancels the job and removes its containers; a second one quits at once).

    Secrets for `secret.get` and `process.run{ secrets = ... }` come from
    RIVET_SECRET_<NAME> variables and --secret-file; their values show as *** in
    every log line and output.

    Files that `artifact.upload` stores land in $RIVET_HOME/local-artifacts/JOB/NAME/
    (setting artifacts.local_dir).

    Example: rivet run build.lua --source . --input branch=main
    """
    # The engine (lupa, Podman backend) is loaded on use: it is heavy for other commands.
    from rivet.local.run import LocalRun, LocalRunOptions
    from rivet.local_secrets import local_secrets

    out = out_console()
    err = err_console()

    def warn(message: str) -> None:
        err.print(safe(f"warning: {message}", "yellow"))

    options = LocalRunOptions.from_settings(load_settings(flags))
    secrets = local_secrets(os.environ, secret_file, warn)
    try:
        local = LocalRun.load(file, options, secrets=secrets)
    except DefinitionError as exc:
        print_definition_error(exc, err)
        raise typer.Exit(EXIT_FAILED) from None
    name = local.filename
    for warning in local.warnings:
        err.print(safe(f"{name}: warning: {strip_file_prefix(warning, name)}", "yellow"))
    definition = local.definition
    given = parse_input_args(inputs or [])
    collected = collect_inputs(definition, given, interactive=common.is_interactive(), console=err)
    prepared = local.prepare(
        collected,
        warn=lambda note: err.print(Text(f"warning: {note}", style="yellow")),
        source=source,
    )
    printer = LogPrinter(out, [s.name for s in definition.stages], LogClock(utc=utc))
    cancel = CancelToken()
    err.print(safe(f"running pipeline {definition.name} as job {prepared.job_id}", "dim"))
    tracing.configure("rivet-run")  # only with OTEL_EXPORTER_OTLP_ENDPOINT set
    try:
        result = _run_with_ctrl_c(
            lambda: prepared.run(printer, cancel), cancel, err, prepared.job_id
        )
    finally:
        tracing.shutdown()
    rows = [StageRow.of(s) for s in result.stages]
    started = [s.started_at for s in result.stages if s.started_at]
    finished = [s.finished_at for s in result.stages if s.finished_at]
    duration = (max(finished) - min(started)).total_seconds() if started and finished else None
    print_job_summary(out, str(result.status), rows, dict(result.outputs), result.error, duration)
    raise typer.Exit(EXIT_INTERRUPTED if cancel.cancelled else exit_code_for_status(result.status))


def _run_with_ctrl_c(
    work: Callable[[], JobResult], cancel: CancelToken, err: Console, job_id: str
) -> JobResult:
    """Run ``work`` on a worker thread. The first Ctrl-C, SIGTERM or SIGHUP cancels the
    job (the executor stops the process and removes the job's containers) and waits
    for it to return; a second one exits at once, possibly leaving containers
    labelled with the job."""
    outcome: list[JobResult] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    worker = threading.Thread(target=target, name=f"rivet-run-{job_id}", daemon=True)
    interrupts = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        what = "Ctrl-C" if signum == signal.SIGINT else signal_name(signum)
        _say(
            err,
            f"\ninterrupted ({what}): cancelling the job and removing its containers "
            "(Ctrl-C again to quit at once)",
            "yellow",
        )
        # Not on this (signal-handling) thread: cancelling may run podman.
        threading.Thread(target=cancel.cancel, args=(f"interrupted ({what})",), daemon=True).start()

    in_main = threading.current_thread() is threading.main_thread()
    handling = handling_stop_signals(on_signal) if in_main else contextlib.nullcontext()
    try:
        with handling:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
    except KeyboardInterrupt:
        _say(
            err,
            "quit before cleanup finished; remove leftover containers with: "
            f"podman rm -f $(podman ps -aq --filter label=rivet.job={job_id})",
            "red",
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if failure:
        raise failure[0]
    return outcome[0]


def _say(err: Console, message: str, style: str) -> None:
    # After SIGHUP the terminal may be gone: a failed write must not stop the cleanup.
    with contextlib.suppress(OSError):
        err.print(Text(message, style=style))
