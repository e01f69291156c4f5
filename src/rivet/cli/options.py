"""Options shared by several commands (``rivet run``, ``rivet job launch``, ``--json``
and ``--utc`` of the commands that print what a server answered), declared once so
their flags, variables and help stay the same everywhere. Options that are settings
(``--server``, ``--policy``, ``--workspace-root`` …) are declared with the settings
instead (:mod:`rivet.settings.model`, typer options from :mod:`rivet.cli.flags`)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["InputsOption", "JsonOption", "UtcOption", "YesOption"]

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        envvar="RIVET_JSON",
        help="print the server's answer as JSON, in the API's shape",
    ),
]

InputsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        envvar="RIVET_INPUT",
        help="an input value NAME=VALUE (repeatable; RIVET_INPUT splits on spaces)",
        show_default=False,
    ),
]

UtcOption = Annotated[
    bool,
    typer.Option(
        "--utc",
        envvar="RIVET_UTC",
        help="show times in UTC (with a Z) instead of the local zone",
    ),
]

YesOption = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        envvar="RIVET_YES",
        help="do it without asking (required when stdin is not a terminal)",
    ),
]
