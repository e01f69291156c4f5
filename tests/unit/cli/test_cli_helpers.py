"""Server URL and admin token lookup, exit codes, and how lines and durations look."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from rivet.cli import common
from rivet.cli.common import (
    UsageProblem,
    exit_code_for,
    resolve_admin_token,
    resolve_server,
    short_id,
)
from rivet.cli.inputs import parse_input_args
from rivet.cli.remote import ago
from rivet.cli.render import LogPrinter, format_duration
from rivet.cli.times import LogClock, format_log_time, format_timestamp, spans_days
from rivet.defaults import DEFAULT_PORT
from rivet.errors import ApiError, InputError, NotFoundError, RivetError
from rivet.protocol import ErrorBody
from rivet.settings import DEFAULT_SERVER, SettingError


def test_default_server_is_the_default_port_of_rivet_server() -> None:
    assert resolve_server(None) == DEFAULT_SERVER == f"http://127.0.0.1:{DEFAULT_PORT}"


def test_server_precedence_flag_then_config(isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "config").write_text('server = "https://ci.example.com/"\n')
    assert resolve_server(None) == "https://ci.example.com"
    assert resolve_server("localhost:9000") == "http://localhost:9000"
    with pytest.raises(SettingError, match=r"^--server: server URL must start with http"):
        resolve_server("ftp://x")
    assert exit_code_for(SettingError("--server", "x")) == 2


def test_config_with_a_non_string_server(isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "config").write_text("server = 8420\n")
    with pytest.raises(SettingError, match="config: server: expected a server URL, got 8420"):
        resolve_server(None)


def test_admin_token_lookup(isolated_env: Path) -> None:
    assert resolve_admin_token(None) is None
    isolated_env.mkdir(parents=True)
    (isolated_env / "admin-token").write_text("rivet_admin_file\n")
    assert resolve_admin_token(None) == "rivet_admin_file"
    (isolated_env / "config").write_text('admin_token = "rivet_admin_config"\n')
    assert resolve_admin_token(None) == "rivet_admin_config"
    assert resolve_admin_token("rivet_admin_flag") == "rivet_admin_flag"


def test_exit_codes() -> None:
    assert exit_code_for(InputError({"a": "bad"})) == 2
    assert exit_code_for(UsageProblem("x")) == 2
    assert exit_code_for(ValueError("x")) == 2
    assert exit_code_for(NotFoundError("x")) == 1
    assert exit_code_for(RivetError("x")) == 1
    assert exit_code_for(ApiError(422, "x", ErrorBody(code="invalid_inputs", message="x"))) == 2
    assert exit_code_for(ApiError(404, "x", ErrorBody(code="not_found", message="x"))) == 1


def test_parse_input_args() -> None:
    assert parse_input_args(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(UsageProblem, match="expected NAME=VALUE"):
        parse_input_args(["=1"])


def test_short_ids() -> None:
    assert short_id("0123456789abcdef0123456789abcdef") == "01234567"
    assert short_id(None) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.004, "0.00s"),
        (1.5, "1.50s"),
        (59.994, "59.99s"),
        (61, "1m 01s"),
        (3725, "1h 02m 05s"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_log_times_are_local_with_milliseconds_or_utc_with_z() -> None:
    ts = datetime(2026, 3, 4, 5, 6, 7, 678901, tzinfo=UTC)
    assert format_log_time(ts) == ts.astimezone().strftime("%H:%M:%S.678")
    assert format_log_time(ts, utc=True) == "05:06:07.678Z"
    assert format_log_time(ts, utc=True, dated=True) == "2026-03-04 05:06:07.678Z"


def test_table_times_carry_their_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    ts = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert format_timestamp(ts, utc=True) == "2026-03-04 05:06:07Z"
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        assert format_timestamp(ts) == "2026-03-04 06:06:07+01:00"
        assert format_log_time(ts) == "06:06:07.000"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert format_timestamp(None) == "-"


@pytest.mark.parametrize("zone", ["cnry2a1e", "abc999", "x-30"])
def test_a_tz_python_cannot_use_shows_utc_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    """A POSIX TZ rule whose offset is a day or more (``TZ=cnry2a1e`` is zone "cnry"
    at UTC-2h, but "abc999" is UTC-999h) makes datetime.astimezone() raise; every
    table and log line would fail with it."""
    ts = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        shown = format_timestamp(ts)
        assert shown.startswith("2026-03-04 ") and shown[-6] in "+-", shown
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.000", format_log_time(ts))
        assert isinstance(spans_days(ts, ts), bool)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_log_is_dated_unless_it_is_all_of_today() -> None:
    now = datetime.now(UTC)
    assert not spans_days(now, now, utc=True)
    assert spans_days(now - timedelta(days=1), now - timedelta(days=1), utc=True)
    assert spans_days(now - timedelta(days=3), None, utc=True)
    clock = LogClock(utc=True)
    assert clock(now) == format_log_time(now, utc=True)  # today: time only
    old = clock(now - timedelta(days=2))
    assert old.startswith(f"{now - timedelta(days=2):%Y-%m-%d} ")
    assert clock(now).startswith(f"{now:%Y-%m-%d} ")  # dated from then on: one width


def test_ago() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert ago(None, now) == "never"
    assert ago(now - timedelta(seconds=5), now) == "5s ago"
    assert ago(now - timedelta(minutes=3), now) == "3m ago"
    assert ago(now - timedelta(days=2), now) == "2d ago"


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def printed(console: Console, level: str, message: str) -> str:
    LogPrinter(console, ["build"]).line(datetime.now(UTC), "build", level, message)
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def test_colour_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", FakeTty())
    coloured = printed(common.out_console(), "error", "boom [red]not markup[/red]")
    assert "\x1b[31m" in coloured
    assert "[red]not markup[/red]" in coloured

    monkeypatch.setattr("sys.stdout", io.StringIO())
    plain = printed(common.out_console(), "error", "boom")
    assert "\x1b[" not in plain
    assert re.fullmatch(r"(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} build error       boom\n", plain)


def test_no_color_disables_colour_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr("sys.stdout", FakeTty())
    text = printed(common.out_console(), "error", "boom")
    assert "\x1b[31m" not in text


def test_long_lines_are_not_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    message = "x" * 500
    text = printed(common.out_console(), "info", message)
    assert text.count("\n") == 1 and message in text
