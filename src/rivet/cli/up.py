"""``rivet up``: a local Rivet in one command — a server on SQLite plus one runner.

This command only wires: flags to settings (:mod:`rivet.settings`), the stop
signals (Ctrl-C, SIGTERM, SIGHUP) to a stop request, and the supervisor
(:mod:`rivet.supervisor.local`, which starts, watches and stops the children) to the
terminal: the URL and next steps once both are up, a crash as one ``error:`` line per
line of the dead child's log tail.
"""

from __future__ import annotations

import threading
from types import FrameType

import typer

from rivet.cli.common import EXIT_FAILED, EXIT_OK
from rivet.cli.flags import with_setting_flags
from rivet.cli.terminal import echo
from rivet.defaults import DEFAULT_PORT
from rivet.settings import Flags
from rivet.settings.flags import UP_FLAGS
from rivet.stop_signals import handling_stop_signals

__all__ = ["up"]


@with_setting_flags(*UP_FLAGS)
def up(flags: Flags) -> None:
    """Start a local server (SQLite in RIVET_HOME) and one runner; Ctrl-C stops both.

    Server and runner are child processes; their output goes to
    $RIVET_HOME/logs/server.log and runner.log. If either dies, `rivet up` stops the
    other and exits 1 with the end of its log. SIGTERM and SIGHUP stop both like
    Ctrl-C. The runner gets none of the server's settings (admin token, secret key).
    --tag and --policy apply to the runner (tags when it first registers).
    RIVET_UP_START_SECONDS (60) bounds the wait for each to get ready;
    RIVET_UP_DRAIN_SECONDS (10) is how long running jobs may go on after a stop
    before they are cancelled.

    Example: rivet up --port 8420
    """
    from rivet.supervisor.local import LocalPlan, LocalRivet  # loads the runner's files

    plan = LocalPlan.from_flags(flags)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    with handling_stop_signals(on_signal):
        LocalRivet(plan).run(
            stop.is_set,
            on_ready=lambda: _banner(plan.url, plan.paths.logs, plan.concurrency),
            on_stopping=lambda: echo("stopping the runner and the server…", err=True),
        )
    raise typer.Exit(EXIT_OK if stop.is_set() else EXIT_FAILED)


def _banner(url: str, logs: object, concurrency: int) -> None:
    lines = [
        f"Rivet is up at {url}  (API docs: {url}/api/docs)",
        f"  server and one runner (concurrency {concurrency}); logs in {logs}",
        "",
        "Next, in another terminal:",
        *([] if url.endswith(f":{DEFAULT_PORT}") else [f"  export RIVET_SERVER={url}"]),
        "  rivet pipeline create examples/hello.lua",
        "  rivet job launch hello --input name=world --follow",
        "",
        "Press Ctrl-C to stop.",
    ]
    for line in lines:
        echo(line)
