"""The one sanitizer between outside text and the terminal (``rivet.cli.terminal``):
every code point, the consoles as a second wall, JSON, ``--source``, the runner's log
formatter, and that no module of ``rivet.cli`` writes to a stream any other way."""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.table import Table
from rich.text import Text

from rivet.cli import terminal
from rivet.cli.common import out_console, print_error
from rivet.cli.render import LogPrinter, StageRow, print_outputs, stage_table
from rivet.cli.terminal import (
    SafeConsole,
    SafeFormatter,
    echo_json,
    echo_json_line,
    echo_source,
    visible,
    visible_lines,
)

CLI = Path(terminal.__file__).parent
BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}
# Everything rich may write on a terminal itself: SGR colour/style sequences.
SGR = re.compile(r"\x1b\[[0-9;]*m")

HOSTILE = (
    "t\x1b]0;pwned\x07 c\x1b]52;c;cHduZWQ=\x07 s\x1b[2J u\x1b[1A\x1b[2K"
    " r\roverwrite b\u202eexe.txt i\u2066x\u2069 c1\x9b31m d\x7f z\x00"
    " ls\u2028ps\u2029 h\ud800 [bold]markup[/bold] :thumbs_up: é 日本 👍"
    " ok\n12:00:00.000 deploy  info    forged"
)


def dangerous(char: str) -> bool:
    code = ord(char)
    return (
        (code < 0x20 and char != "\t")
        or 0x7F <= code <= 0x9F
        or code in BIDI
        or code in (0x2028, 0x2029)
        or 0xD800 <= code <= 0xDFFF
    )


def test_every_code_point() -> None:
    """Dangerous ones come out as an ASCII escape, everything else unchanged."""
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        shown = visible(char)
        if dangerous(char):
            assert shown.isascii() and shown.startswith("\\") and len(shown) > 1, hex(code)
            assert not any(dangerous(c) for c in shown)
        else:
            assert shown == char, hex(code)


def test_escape_forms() -> None:
    assert visible("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"
    assert visible("a\nb\rc\td") == "a\\nb\\rc\td"
    assert visible("\x9b\x7f\x00\u202e\u2028\ud800") == "\\x9b\\x7f\\x00\\u202e\\u2028\\ud800"
    assert visible("naïve 日本 👍 \u200d ZWJ") == "naïve 日本 👍 \u200d ZWJ"
    assert visible(42) == "42"
    assert visible(visible(HOSTILE)) == visible(HOSTILE)  # idempotent
    assert "\n" not in visible(HOSTILE)


def test_blocks_keep_their_line_breaks_only() -> None:
    assert visible_lines("a\r\nb\nc\rd\x1b[2J") == "a\nb\nc\\rd\\x1b[2J"
    for line in visible_lines(HOSTILE).split("\n"):
        assert line == visible(line)


def printed(console_file: io.StringIO) -> str:
    return console_file.getvalue()


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def terminal_console() -> tuple[SafeConsole, io.StringIO]:
    file = Tty()
    return SafeConsole(file=file, force_terminal=True, color_system="truecolor", width=300), file


def assert_inert(output: str) -> None:
    """Nothing but rich's own SGR styles can act on a terminal."""
    rest = SGR.sub("", output)
    for char in rest:
        assert char == "\n" or not dangerous(char), f"{char!r} reached the output: {rest!r}"


def test_log_lines_tables_and_outputs_on_a_colour_terminal() -> None:
    console, file = terminal_console()
    printer = LogPrinter(console, [HOSTILE])
    printer.line(datetime.now(UTC), HOSTILE, "error", HOSTILE)
    printer.line(datetime.now(UTC), "deploy", HOSTILE, HOSTILE)
    printer.marker(None, HOSTILE, Text("started"))
    console.print(stage_table([StageRow(HOSTILE, HOSTILE, 1.5, HOSTILE)]))
    print_outputs(console, {HOSTILE: HOSTILE, "n": 3})
    output = printed(file)
    assert SGR.search(output), "no colour: the test console is not a terminal"
    assert_inert(output)
    assert "t\\x1b]0;pwned\\x07" in output and "b\\u202eexe.txt" in output
    assert "[bold]markup[/bold] :thumbs_up:" in output
    assert not re.search(r"^12:00:00", SGR.sub("", output), re.M)


def test_the_console_is_a_second_wall() -> None:
    """Unsanitized text handed to the console still cannot drive the terminal, and
    markup or emoji codes are never interpreted, whatever ``print`` is told."""
    console, file = terminal_console()
    console.print(Text(HOSTILE))
    console.print(HOSTILE, markup=True, emoji=True)
    table = Table()
    table.add_column(HOSTILE)
    table.add_row(HOSTILE)
    console.print(table)
    output = printed(file)
    assert_inert(output)
    assert "\\x1b]0;pwned" in output and "[bold]markup[/bold] :thumbs_up:" in output


def test_prompts_are_never_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    console, file = terminal_console()
    monkeypatch.setattr("builtins.input", lambda: "answer")
    assert console.input("[red]name\x1b[2J[/red]: ", markup=True) == "answer"
    output = printed(file)
    assert_inert(output)
    assert "[red]name\\x1b[2J[/red]: " in output


def test_error_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    console, file = terminal_console()
    print_error("first\x1b]0;pwned\x07\r\nsecond\rstill second\n12:00:00.000 a info x", console)
    lines = SGR.sub("", printed(file)).splitlines()
    assert lines == [
        "error: first\\x1b]0;pwned\\x07",
        "error: second\\rstill second",
        "error: 12:00:00.000 a info x",
    ]


def test_json_is_exact_and_inert(capsys: pytest.CaptureFixture[str]) -> None:
    data = {HOSTILE: [HOSTILE, 1, True, None], "plain": "naïve 日本"}
    echo_json(data)
    out = capsys.readouterr().out
    assert json.loads(out) == data
    assert_inert(out)
    assert "naïve 日本" in out  # ordinary unicode is not \u-escaped


def test_json_lines_are_one_exact_inert_object_each(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"message": HOSTILE, "seq": 1}, {"message": "two\nlines", "seq": 2}]
    for row in rows:
        echo_json_line(row)
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == rows
    assert_inert(out)


def test_source_is_exact_into_a_pipe_and_visible_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "-- \x1b]0;pwned\x07\nreturn 1\r\n"
    echo_source(source)
    assert capsys.readouterr().out == source
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    echo_source(source)
    assert capsys.readouterr().out == "-- \\x1b]0;pwned\\x07\nreturn 1\n"


def test_runner_log_formatter() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("bad \x1b[2J\nvalue")
    except ValueError:
        record = logging.LogRecord(
            "rivet", logging.ERROR, __file__, 1, "claimed %s", (HOSTILE,), sys.exc_info()
        )
    lines = formatter.format(record).split("\n")
    assert lines[0] == f"ERROR claimed {visible(HOSTILE)}"
    assert_inert("\n".join(lines))
    assert lines[0].count("\\n") == 1
    # The traceback: its lines indented, so none of them passes for a record.
    assert lines[1] == "  Traceback (most recent call last):"
    assert lines[-2:] == ["  ValueError: bad \\x1b[2J", "  value"]
    assert all(line.startswith("  ") for line in lines[1:])


def test_plain_consoles_have_no_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    console = out_console()
    assert isinstance(console, SafeConsole)
    console.print("[bold]x[/bold] :smile:")
    assert console.file.getvalue() == "[bold]x[/bold] :smile:\n"  # type: ignore[attr-defined]


# --- structure: nothing in rivet.cli writes to a stream but through terminal.py --------


def _writers(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = ast.unparse(func)
        if (isinstance(func, ast.Name) and func.id in ("print", "Console", "input")) or (
            isinstance(func, ast.Attribute)
            and (
                name in ("typer.echo", "click.echo", "typer.secho", "click.secho", "rich.print")
                or (func.attr in ("write", "writelines") and "std" in ast.unparse(func.value))
            )
        ):
            found.append(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("rich", "rich.console"):
            found += [
                f"from {node.module} import {a.name}" for a in node.names if a.name == "print"
            ]
    return found


def test_only_terminal_py_writes_to_the_terminal() -> None:
    offenders = {}
    for path in sorted(CLI.glob("*.py")):
        if path.name == "terminal.py":
            continue
        found = _writers(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[path.name] = found
    assert offenders == {}
    assert _writers(ast.parse("typer.echo(x)\nprint(y)\nsys.stdout.write(z)\nConsole()")) == [
        "typer.echo",
        "print",
        "sys.stdout.write",
        "Console",
    ]


def test_the_escaped_controls_are_unicode_category_cc_and_the_bidi_controls() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) == "Cc":
            assert dangerous(char) == (char != "\t")
        if unicodedata.bidirectional(char) in (
            "LRE",
            "RLE",
            "PDF",
            "LRO",
            "RLO",
            "LRI",
            "RLI",
            "FSI",
            "PDI",
        ):
            assert dangerous(char), hex(code)
