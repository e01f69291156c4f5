"""Options shared by several commands (``rivet run``, ``rivet job launch``), declared
once so their flags, variables and help stay the same everywhere. Options that are
settings (``--server``, ``--policy``, ``--workspace-root`` …) are declared with the
settings instead (:mod:`rivet.settings.model`, typer options from :mod:`rivet.cli.flags`)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["InputsOption"]

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
