"""``rivet init lua [DIR]``: editor support (LuaLS) for a directory of pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from rivet.cli.common import UsageProblem, out_console
from rivet.engine.plugins.catalog import STUB, discover
from rivet.errors import RivetError
from rivet.lua.stubs import LIBRARY_DIR, luarc_text, stub_files
from rivet.settings import load_settings

__all__ = ["app", "write_lua_support"]

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Set up a directory for writing pipelines.",
    no_args_is_help=True,
)


def write_lua_support(directory: Path, force: bool) -> list[tuple[Path, str]]:
    """Write ``.luarc.json`` and the stubs; returns ``(path, what happened)`` per file:
    ``written``, ``overwritten``, ``unchanged`` or ``skipped`` (exists, no ``--force``)."""
    if directory.exists() and not directory.is_dir():
        raise UsageProblem(f"{directory}: is not a directory")
    files: dict[Path, str] = {directory / ".luarc.json": luarc_text(LIBRARY_DIR)}
    library = directory / LIBRARY_DIR
    for name, text in stub_files().items():
        files[library / name] = text
    for name, text in plugin_stubs().items():
        files[library / "plugins" / f"{name}.lua"] = text
    report: list[tuple[Path, str]] = []
    for path, text in files.items():
        try:
            if path.exists():
                if path.read_text(encoding="utf-8", errors="replace") == text:
                    report.append((path, "unchanged"))
                    continue
                if not force:
                    report.append((path, "skipped"))
                    continue
                state = "overwritten"
            else:
                state = "written"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RivetError(f"{path}: cannot write: {exc.strerror or exc}") from None
        report.append((path, state))
    return report


def plugin_stubs() -> dict[str, str]:
    """The ``stub.lua`` of every plugin here: built-ins and ``jobs.plugin_dirs``."""
    catalog = discover(load_settings().jobs.plugin_dirs)
    stubs = {}
    for name, plugin in catalog.plugins.items():
        path = plugin.directory / STUB
        if path.is_file():
            stubs[name] = path.read_text("utf-8")
    return stubs


_STYLES = {"written": "green", "overwritten": "yellow", "unchanged": "dim", "skipped": "yellow"}


@app.command("lua")
def init_lua(
    directory: Annotated[
        Path, typer.Argument(help="project directory (created if missing)", show_default=True)
    ] = Path("."),
    force: Annotated[
        bool,
        typer.Option("--force", envvar="RIVET_FORCE", help="overwrite files that differ"),
    ] = False,
) -> None:
    """Write .luarc.json and Lua language-server stubs for every Rivet module.

    The stubs (`---@meta` files with `---@class`/`---@param`/`---@return` annotations)
    go to DIR/.rivet/lua, those of plugins (built in, and of `jobs.plugin_dirs`) to
    DIR/.rivet/lua/plugins; `.luarc.json` points the language server at them, selects
    Lua 5.4 and disables the libraries the pipeline sandbox does not provide. Existing
    files that differ are left alone unless --force is given.

    Example: rivet init lua pipelines/
    """
    out = out_console()
    report = write_lua_support(directory, force)
    skipped = 0
    for path, state in report:
        line = Text.assemble((f"{state:<11}", _STYLES[state]), f" {path}")
        out.print(line)
        skipped += state == "skipped"
    if skipped:
        out.print(
            Text(
                f"{skipped} existing file(s) differ and were kept; use --force to overwrite",
                style="yellow",
            )
        )
