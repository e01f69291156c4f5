"""Helpers shared by the command modules: consoles, exit codes, error lines, the
server URL and admin token (from :mod:`rivet.settings`) and id display.

Output conventions: results go to stdout, errors and prompts to stderr. Colour only
on a terminal and never with ``NO_COLOR`` set (rich honours both). Text from a job,
a pipeline file or the server is printed only through :mod:`rivet.cli.terminal`.
"""

from __future__ import annotations

import os
import re
import sys

from rich.console import Console
from rich.text import Text

from rivet.cli.terminal import SafeConsole, visible
from rivet.errors import ApiError, DefinitionError, InputError, RivetError
from rivet.home import tighten
from rivet.settings import ClientGroup, SettingError, load_settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageProblem",
    "confirm",
    "err_console",
    "exit_code_for",
    "is_interactive",
    "out_console",
    "print_definition_error",
    "print_error",
    "print_problem_lines",
    "resolve_admin_token",
    "resolve_server",
    "short_id",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SHORT_ID = 8


class UsageProblem(RivetError):
    """The command line itself is wrong (bad ``--input``, unreadable flag value): exit 2."""


# Tables written to a pipe or file are not squeezed into 80 columns (grep-able rows).
PIPE_WIDTH = 200


def _width(stream: object) -> int | None:
    if os.environ.get("COLUMNS"):
        return None  # rich reads it
    try:
        return None if stream is not None and stream.isatty() else PIPE_WIDTH  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return PIPE_WIDTH


def out_console() -> Console:
    """A :class:`~rivet.cli.terminal.SafeConsole` on the current stdout (made per use,
    so tests that swap streams work)."""
    return SafeConsole(soft_wrap=True, width=_width(sys.stdout))


def err_console() -> Console:
    return SafeConsole(stderr=True, soft_wrap=True, width=_width(sys.stderr))


def is_interactive() -> bool:
    """True when stdin is a terminal (prompts are allowed). Tests monkeypatch this."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm(question: str, *, yes: bool, action: str) -> None:
    """Ask ``question`` (y/N) on stderr before a change that is not undone by accident;
    ``yes`` (``--yes``) skips it. Without a terminal on stdin nobody can answer, so the
    command stops with a ``UsageProblem`` naming the ``action`` ("archiving pipeline
    x") and asking for ``--yes``; a "no" exits 1 with nothing changed."""
    if yes:
        return
    if not is_interactive():
        raise UsageProblem(
            f"{action} needs confirmation and stdin is not a terminal: pass --yes to confirm"
        )
    import typer  # the CLI's own dependency; loaded with the command anyway

    if not typer.confirm(question, default=False, err=True):
        err_console().print("nothing changed")
        raise typer.Exit(EXIT_FAILED)


def exit_code_for(error: BaseException) -> int:
    """2 for mistakes in what the user typed or set (inputs, flags, a setting's value),
    1 for everything else."""
    if isinstance(error, InputError | UsageProblem | SettingError | ValueError):
        return EXIT_USAGE
    if isinstance(error, ApiError):
        code = getattr(error.detail, "code", None)
        if code in ("invalid_inputs", "invalid_request"):
            return EXIT_USAGE
    return EXIT_FAILED


def print_error(message: str, console: Console | None = None) -> None:
    """``error: <message>`` on stderr, red on a terminal. A message of several lines
    (the server's, or e.g. the log tail of a crashed ``rivet up`` child) prints one
    ``error:`` line per line, so no line of it can pass for other output; control
    characters inside a line are shown escaped (:func:`~rivet.cli.terminal.visible`)."""
    console = console or err_console()
    for line in _LINE_BREAK.split(message):
        console.print(Text.assemble(("error: ", "bold red"), (visible(line), "red")))


_LINE_BREAK = re.compile(r"\r?\n")


def print_definition_error(error: DefinitionError, console: Console) -> None:
    """Every problem as ``file:line: path: message``, like ``rivet check``: one line
    each, whatever the message contains."""
    print_problem_lines([p.render(error.file) for p in error.problems], console)


def print_problem_lines(lines: list[str], console: Console) -> None:
    """Problem lines (``rivet check``, ``pipeline create``) in red, one per line."""
    for line in lines:
        console.print(Text(visible(line), style="red"))


def resolve_server(flag: str | None) -> str:
    """The server URL: ``--server``, ``RIVET_SERVER``, ``server`` in the config file,
    else ``http://127.0.0.1:8420`` (the ``client.server`` setting)."""
    return load_settings({ClientGroup.server: flag}).client.server


def resolve_admin_token(flag: str | None) -> str | None:
    """``--admin-token``, ``RIVET_ADMIN_TOKEN``, ``admin_token`` in the config file
    (the ``client.admin_token`` setting), else ``$RIVET_HOME/admin-token`` (written by
    a local ``rivet server``)."""
    settings = load_settings({ClientGroup.admin_token: flag})
    configured = settings.client.admin_token
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    path = settings.paths.admin_token
    tighten(path)  # the admin token: never for other users' eyes
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def short_id(value: str | None) -> str:
    """The first 8 characters of an id: what tables show and what commands accept."""
    return (value or "")[:SHORT_ID]
