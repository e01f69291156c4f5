"""``rivet config show``: the effective settings and where each came from."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from rivet.cli.common import EXIT_USAGE, err_console, out_console, print_error
from rivet.cli.flags import with_setting_flags
from rivet.cli.terminal import echo_json, safe
from rivet.runner.config_file import saved_registration
from rivet.settings import (
    CoreGroup,
    Entry,
    Flags,
    RunnerGroup,
    SettingError,
    Source,
    load_settings,
)
from rivet.settings.kinds import MASK

__all__ = ["app"]

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Rivet's settings: their values and where each came from.",
    no_args_is_help=True,
)


@app.command("show")
@with_setting_flags(CoreGroup.home)
def show(
    flags: Flags,
    runner: Annotated[
        bool,
        typer.Option(
            "--runner",
            envvar="RIVET_CONFIG_RUNNER",
            help="as `rivet runner` reads them: its runner.toml first, then $RIVET_HOME/config",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", envvar="RIVET_JSON", help="print them as JSON")
    ] = False,
) -> None:
    """Show every setting's value and where it came from: flag, env (the variable),
    file (the file and key) or default. Secrets (tokens, keys, a database password)
    are shown as ****.

    Precedence is flag > env > config file > default. Without --runner the values are
    those the CLI, `rivet run` and `rivet server` see ($RIVET_HOME/config); with
    --runner those of `rivet runner` (its runner.toml, then $RIVET_HOME/config). A
    setting with a bad value is listed with its error, and the command exits 2.

    Example: rivet config show --runner
    """
    settings = load_settings(flags, runner=runner)
    entries = settings.entries()
    if runner:
        entries = [_saved_token(settings, e) for e in entries]
    files = [str(path) for path in settings.files]
    if as_json:
        echo_json({"files": files, "settings": [_as_dict(e) for e in entries]})
    else:
        _print_table(files, entries)
    # One line per error: a broken file is the error of every setting it could hold.
    errors = list(dict.fromkeys(e.error for e in entries if e.error))
    for error in errors:
        print_error(error)
    if errors:
        raise typer.Exit(EXIT_USAGE)


def _saved_token(settings: Any, entry: Entry) -> Entry:
    """The runner's token as the runner picks it: the one saved at registration for
    this server, when no flag or variable gives one."""
    if entry.setting is not RunnerGroup.token or entry.source is None:
        return entry
    if entry.source.origin != "default":
        return entry
    try:
        server = settings.client.server
        config = settings.runner.config
    except SettingError:
        return entry
    token, _runner_id = saved_registration(config, server)
    if token is None:
        return entry
    return Entry(entry.setting, MASK, Source("file", f"{config}: token (saved at registration)"))


def _as_dict(entry: Entry) -> dict[str, Any]:
    setting = entry.setting
    return {
        "name": setting.path,
        "value": entry.shown if entry.error is None else None,
        "source": entry.source.origin if entry.source else None,
        "where": entry.source.where if entry.source else None,
        "error": entry.error,
        "env": setting.env,
        "flags": list(setting.flags),
        "help": setting.help,
    }


def _print_table(files: list[str], entries: list[Entry]) -> None:
    """One line per setting, ``NAME  VALUE  FROM`` in aligned columns, never cut or
    wrapped (a path or URL is read whole, and ``grep`` finds a setting's line)."""
    out = out_console()
    err_console().print(safe(f"config files, first wins: {', '.join(files)}", "dim"))
    rows = [("setting", "value", "from")]
    for entry in entries:
        if entry.error is not None:
            rows.append((entry.setting.path, "(invalid)", entry.error))
        else:
            assert entry.source is not None
            rows.append((entry.setting.path, entry.shown, entry.source.describe()))
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    for index, (name, value, source) in enumerate(rows):
        line = Text()
        line.append_text(safe(name.ljust(name_width), "bold"))
        line.append("  ")
        line.append_text(safe(value.ljust(value_width), "red" if value == "(invalid)" else ""))
        line.append("  ")
        line.append_text(safe(source, "dim" if index == 0 or source == "default" else ""))
        out.print(line, overflow="ignore", crop=False)
