"""``rivet check FILE...``: validate pipeline files offline, as the server does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rivet.cli.common import EXIT_FAILED, EXIT_OK, err_console, out_console, print_problem_lines
from rivet.cli.terminal import echo_json, safe
from rivet.errors import DefinitionError, RivetError

__all__ = ["check", "read_pipeline_file"]


def read_pipeline_file(path: Path) -> str:
    """The file's text exactly as it is, or a ``RivetError`` naming it (missing, a
    directory, unreadable). No newline translation: ``rivet check``, ``rivet run`` and
    ``pipeline create`` hand Lua (and the server) the file's own text, so error lines
    are Lua's count of the file's lines (universal newlines would make "\n\r" two
    line breaks where Lua sees one) and the stored source is the file."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise RivetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RivetError(f"{path}: is a directory, not a pipeline file") from None
    except UnicodeDecodeError:
        raise RivetError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise RivetError(f"{path}: cannot read: {exc.strerror or exc}") from None


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
