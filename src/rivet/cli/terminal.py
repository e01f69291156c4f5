"""The one way text from outside reaches the user's terminal.

Job output, pipeline files and server answers are untrusted: a job that prints
``ESC ] 0 ; title BEL`` would retitle the user's window, ``ESC ] 52`` writes the
clipboard, ``ESC [ 2J`` clears the screen, ``CR`` or ``ESC [ 1A`` overwrite earlier
lines, a bidi override (U+202E) reorders what is shown, and a newline inside one
log message would print a second, forged, log line. So every string that the CLI
did not write itself goes through :func:`visible` (one line) or
:func:`visible_lines` (a block that keeps its line breaks) before it is printed:

- C0 controls, DEL and C1 controls become ``\\xHH`` (``\\x1b``, ``\\x07``, ``\\x9b``),
  except newline and carriage return, shown as ``\\n`` and ``\\r``; a tab stays a tab
  (rich expands it to spaces: it cannot move the cursor up or back);
- bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the line
  and paragraph separators (U+2028, U+2029) and lone surrogates become ``\\uXXXX``;
- every other character, accents, CJK and emoji included, is left alone.

The rendering is for reading: a job that prints the four characters ``\\x1b`` looks
the same as one that prints ESC. ``--json`` gives the exact text.

The consoles (:class:`SafeConsole`) are the second wall: they never interpret rich
markup or emoji codes in a string (``[bold]`` prints as ``[bold]``), and whatever
text segment reaches their output still has its control characters made visible,
so a forgotten call can at worst misalign a table, never drive the terminal. Only
rich's own styles (colours on a terminal) are written as escape sequences. Plain
output that bypasses rich goes through :func:`echo`, :func:`echo_json`,
:func:`echo_json_line` or :func:`echo_source`; nothing else in ``rivet.cli`` writes
to stdout or stderr (``tests/unit/cli/test_terminal.py`` checks that).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text, TextType

__all__ = [
    "SafeConsole",
    "SafeFormatter",
    "echo",
    "echo_json",
    "echo_json_line",
    "echo_source",
    "safe",
    "visible",
    "visible_lines",
]

# C0 but tab, DEL, C1; bidi embeddings/overrides and isolates; LS/PS; surrogates.
_DANGEROUS = "\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
_UNSAFE = re.compile(f"[{_DANGEROUS}]")
_UNSAFE_IN_BLOCK = re.compile(f"(?!\n)[{_DANGEROUS}]")
# What may stay raw inside JSON strings (json.dumps already escapes C0 itself).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object) -> str:
    """``str(value)`` on one line, with every dangerous character shown as an escape
    (``\\x1b``, ``\\n``, ``\\u202e``); ordinary text, tabs and unicode unchanged."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def visible_lines(value: object) -> str:
    """Like :func:`visible`, but newlines (and ``CR LF`` line ends) stay line breaks:
    for text that is a block by nature, such as a pipeline's source."""
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\r\n", "\n")
    return _UNSAFE_IN_BLOCK.sub(_escape, text) if _UNSAFE_IN_BLOCK.search(text) else text


def safe(value: object, style: str | Style = "") -> Text:
    """A rich ``Text`` of ``visible(value)``: never markup, never a control character."""
    return Text(visible(value), style=style)


class SafeConsole(Console):
    """A rich console that writes no control character it did not make itself.

    Strings are never parsed for markup or emoji codes, and the text of every
    rendered segment has its dangerous characters made visible (newlines and tabs
    excepted: rich lays lines out with them), whatever renderable it came from.
    """

    def __init__(self, **options: Any) -> None:
        options.update(markup=False, emoji=False, highlight=False)
        super().__init__(**options)

    def print(self, *objects: Any, **options: Any) -> None:
        options.update(markup=False, emoji=False, highlight=False)
        super().print(*objects, **options)

    def input(self, prompt: TextType = "", **options: Any) -> str:
        options.update(markup=False, emoji=False)
        return super().input(prompt, **options)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            text = segment.text
            if segment.control or not _UNSAFE_IN_BLOCK.search(text):
                yield segment
            else:
                yield Segment(_UNSAFE_IN_BLOCK.sub(_escape, text), segment.style)


def echo(value: object, *, err: bool = False) -> None:
    """``visible(value)`` and a newline, plain (no rich), on stdout or stderr."""
    typer.echo(visible(value), err=err)


def echo_json(data: object) -> None:
    """``data`` as indented JSON, exactly equivalent to the original, with DEL, C1,
    bidi controls, LS/PS and lone surrogates written as ``\\uXXXX`` escapes (JSON
    itself escapes the other controls) and all other unicode as it is."""
    typer.echo(_json_text(data, indent=2))


def echo_json_line(data: object) -> None:
    """``data`` as JSON on one line (JSON Lines: one object per line), escaped like
    :func:`echo_json`; a newline inside a string is written as ``\\n``."""
    typer.echo(_json_text(data, indent=None))


def _json_text(data: object, indent: int | None) -> str:
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def echo_source(text: str) -> None:
    """A block of text (a pipeline's source) on stdout: made visible with
    :func:`visible_lines` on a terminal, byte for byte into a pipe or file, so that
    ``--source > file.lua`` gives back the file."""
    try:
        terminal = sys.stdout.isatty()
    except (AttributeError, ValueError):
        terminal = False
    # A lone surrogate cannot be written as UTF-8 at all: escaped even into a file.
    shown = visible_lines(text) if terminal else _SURROGATE.sub(_escape, text)
    # color=True: click would otherwise strip what looks like ANSI codes into a pipe.
    typer.echo(shown, nl=not shown.endswith("\n"), color=True)


class SafeFormatter(logging.Formatter):
    """A logging formatter for a terminal: the message on one line through
    :func:`visible`; a traceback indented by two spaces, line by line, so that only
    a real record starts at the left margin."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(block: str) -> str:
    return "\n".join(f"  {visible(line)}" for line in block.removesuffix("\n").split("\n"))
