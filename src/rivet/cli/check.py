"""``rivet check FILE...``: validate pipeline files offline, as the server does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rivet.cli.common import EXIT_FAILED, EXIT_OK, err_console, out_console, print_problem_lines
from rivet.cli.terminal import echo_json, safe
from rivet.errors import DefinitionError, RivetError
from rivet.local.source import read_pipeline_file

__all__ = ["check", "strip_file_prefix"]


def strip_file_prefix(message: str, name: str) -> str:
    prefix = f"{name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def check(
    files: Annotated[
        list[Path],
        typer.Argument(help="pipeline files to validate", show_default=False),
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            envvar="RIVET_JSON",
            help="print the parsed definition (a list for several files) as JSON",
        ),
    ] = False,
) -> None:
    """Validate pipeline files without running anything.

    Prints `FILE: ok` for each valid file (plus `FILE: warning: ...` lines, e.g. for a
    plugin this Rivet does not know), or every problem as `FILE:LINE: FIELD: message`.
    Exits 1 if any file has an error.

    Example: rivet check build.lua deploy.lua
    """
    from rivet.lua.definition import load_pipeline  # lupa is heavy: load it on use

    out = out_console()
    err = err_console()
    failed = False
    documents: list[dict[str, Any]] = []
    for path in files:
        name = str(path)
        try:
            loaded = load_pipeline(read_pipeline_file(path), name)
        except DefinitionError as exc:
            failed = True
            if as_json:
                documents.append(
                    {
                        "file": name,
                        "errors": [p.render(name) for p in exc.problems],
                        "problems": [p.to_dict() for p in exc.problems],
                    }
                )
            else:
                print_problem_lines([p.render(name) for p in exc.problems], out)
            continue
        except RivetError as exc:
            failed = True
            if as_json:
                documents.append({"file": name, "errors": [str(exc)], "problems": []})
            else:
                print_problem_lines([str(exc)], out)
            continue
        warnings = [strip_file_prefix(w, name) for w in loaded.warnings]
        if as_json:
            documents.append(loaded.definition.to_dict())
            for warning in warnings:
                err.print(safe(f"{name}: warning: {warning}", "yellow"))
            continue
        ok = safe(f"{name}: ")
        ok.append("ok", style="green")
        out.print(ok)
        for warning in warnings:
            out.print(safe(f"{name}: warning: {warning}", "yellow"))
    if as_json:
        payload: object = documents[0] if len(files) == 1 else documents
        echo_json(payload)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
