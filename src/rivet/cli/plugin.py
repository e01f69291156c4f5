"""``rivet plugin list``: the plugins a job run on this machine can use (built in, and
from ``jobs.plugin_dirs`` / ``RIVET_PLUGIN_PATH``), with versions; see docs/plugins.md."""

from __future__ import annotations

import typer
from rich.table import Table

from rivet.cli.common import out_console
from rivet.cli.options import JsonOption
from rivet.cli.terminal import echo_json, safe
from rivet.engine.plugins.catalog import discover
from rivet.settings import load_settings

__all__ = ["app"]

app = typer.Typer(
    rich_markup_mode="markdown", help="Plugins available on this machine.", no_args_is_help=True
)


@app.command("list")
def list_plugins(as_json: JsonOption = False) -> None:
    """List the plugins `rivet run` and a runner started here can load: name, version,
    where it comes from, the core modules and images it uses, and its description.
    Plugins that were not taken (a bad manifest, a reserved or taken name) are listed
    after the table with the reason.

    Example: rivet plugin list   (with RIVET_PLUGIN_PATH=./plugins for a directory)
    """
    catalog = discover(load_settings().jobs.plugin_dirs)
    if as_json:
        echo_json(
            {
                "plugins": [
                    p.manifest.model_dump(mode="json")
                    | {"directory": str(p.directory), "builtin": p.builtin}
                    for p in catalog.plugins.values()
                ],
                "problems": catalog.problems,
            }
        )
        return
    out = out_console()
    table = Table(show_edge=False, pad_edge=False)
    for column in ("name", "version", "from", "modules", "images", "description"):
        table.add_column(column)
    for name, plugin in sorted(catalog.plugins.items()):
        m = plugin.manifest
        table.add_row(
            safe(name, "bold"),
            safe(m.version),
            safe("built in" if plugin.builtin else str(plugin.directory)),
            safe(", ".join(m.modules) or "-"),
            safe(", ".join(m.images) or "-"),
            safe(m.description),
        )
    out.print(table)
    for where, problem in sorted(catalog.problems.items()):
        out.print(safe(f"not loaded: {where}: {problem}", "yellow"))
