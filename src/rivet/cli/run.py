"""``rivet run FILE``: run a pipeline locally, every command in a Podman container."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from rivet.cli import common
from rivet.cli.check import read_pipeline_file, strip_file_prefix
from rivet.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    err_console,
    out_console,
    print_definition_error,
)
from rivet.cli.inputs import collect_inputs, parse_input_args
from rivet.cli.options import (
    DefaultImageOption,
    InputsOption,
    PolicyOption,
    UtcOption,
    WorkspaceRootOption,
)
from rivet.cli.render import LogPrinter, StageRow, format_duration, print_outputs, stage_table
from rivet.cli.terminal import safe, visible
from rivet.cli.times import LogClock
from rivet.defaults import DEFAULT_IMAGE
from rivet.domain.inputs import resolve_inputs
from rivet.domain.status import JobStatus
from rivet.engine.backends.userns import check_subids
from rivet.engine.events import CancelToken, JobResult
from rivet.engine.workspaces import prepare_root
from rivet.errors import DefinitionError, RivetError
from rivet.home import RivetHome
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


def run(
    file: Annotated[Path, typer.Argument(help="the pipeline file", show_default=False)],
    inputs: InputsOption = None,
    workspace_root: WorkspaceRootOption = None,
    default_image: DefaultImageOption = None,
    policy_file: PolicyOption = None,
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

    Example: rivet run build.lua --input branch=main --input jobs=4
    """
    from rivet.engine.backends.podman import PodmanBackend
    from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
    from rivet.engine.policy import Policy
    from rivet.local_secrets import local_secrets
    from rivet.lua.definition import KNOWN_PLUGINS, load_pipeline

    # First, so a bad policy file is one error line before anything runs or prompts.
    policy = Policy.load(policy_file) if policy_file is not None else Policy()
    out = out_console()
    err = err_console()
    secrets = local_secrets(
        os.environ, secret_file, lambda w: err.print(safe(f"warning: {w}", "yellow"))
    )
    name = str(file)
    source = read_pipeline_file(file)
    try:
        loaded = load_pipeline(source, name)
    except DefinitionError as exc:
        print_definition_error(exc, err)
        raise typer.Exit(EXIT_FAILED) from None
    definition = loaded.definition
    missing_plugins = [p for p in definition.plugins if p not in KNOWN_PLUGINS]
    if missing_plugins:
        raise RivetError(
            f"{name}: plugins: {', '.join(missing_plugins)} not available in this Rivet; "
            "run the pipeline on a runner that provides "
            + ("it" if len(missing_plugins) == 1 else "them")
        )
    for warning in loaded.warnings:
        err.print(safe(f"{name}: warning: {strip_file_prefix(warning, name)}", "yellow"))
    given = parse_input_args(inputs or [])
    collected = collect_inputs(definition, given, interactive=common.is_interactive(), console=err)
    resolved = resolve_inputs(definition, collected)

    root = workspace_root or RivetHome(common.rivet_home()).workspaces
    note = prepare_root(root)  # a ConfigError names the root and what is wrong with it
    if policy.container.userns == "auto":
        check_subids()
    if note is not None:
        err.print(Text(f"warning: {note}", style="yellow"))
    job = JobSpec(
        job_id=f"local-{uuid.uuid4().hex[:8]}",
        source=source,
        filename=name,
        inputs=resolved,
        secrets=secrets,
        local_secrets=True,
    )
    executor = Executor(
        PodmanBackend(),
        ExecutorSettings(
            workspace_root=root, default_image=default_image or DEFAULT_IMAGE, policy=policy
        ),
    )
    printer = LogPrinter(out, [s.name for s in definition.stages], LogClock(utc=utc))
    cancel = CancelToken()
    err.print(safe(f"running pipeline {definition.name} as job {job.job_id}", "dim"))
    result = _run_with_ctrl_c(lambda: executor.run(job, printer, cancel), cancel, err, job.job_id)
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
