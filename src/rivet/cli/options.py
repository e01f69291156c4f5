"""Options shared by several commands (``rivet run``, ``rivet runner``, ``rivet job launch``,
``--json`` of the commands that print what a server answered), declared once so their
flags, variables and help stay the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "DefaultImageOption",
    "InputsOption",
    "JsonOption",
    "PolicyOption",
    "UtcOption",
    "WorkspaceRootOption",
]

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

WorkspaceRootOption = Annotated[
    Path | None,
    typer.Option(
        envvar="RIVET_WORKSPACE_ROOT",
        help="where job workspaces are created (default: $RIVET_HOME/workspaces)",
        show_default=False,
    ),
]

DefaultImageOption = Annotated[
    str | None,
    typer.Option(
        envvar="RIVET_DEFAULT_IMAGE",
        help="image for commands outside containers (default: alpine:latest)",
        show_default=False,
    ),
]

PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        envvar="RIVET_POLICY",
        help="runner policy file: allowed binaries, images, limits (docs/runner-policy.md; "
        "default: the built-in policy)",
        show_default=False,
    ),
]
