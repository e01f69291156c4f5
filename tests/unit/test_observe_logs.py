"""Structured log lines (rivet.observe.logs): fields, ids from the context (threads
included), per-component levels, and redaction of secrets and credential shapes."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from rivet.errors import ConfigError
from rivet.observe.levels import LogLevels, parse_levels
from rivet.observe.logs import (
    bind,
    configure_logging,
    forget_secret,
    in_context,
    redact,
    register_secret,
)
from rivet.settings import load_settings


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger sending JSON lines to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("json", parse_levels("info,rivet.noisy=error,rivet.deep=debug"), stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name in ("rivet.noisy", "rivet.deep"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def records(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_the_fields_and_the_ids_of_its_context(captured: io.StringIO) -> None:
    log = logging.getLogger("rivet.test")
    log.info("plain %d", 1)
    with bind(job_id="job-1", request_id="req-9"), bind(runner_id="r-2"):
        log.warning("inside")
        thread = threading.Thread(target=in_context(lambda: log.error("from a thread")))
        thread.start()
        thread.join()
        bare = threading.Thread(target=lambda: log.error("from a bare thread"))
        bare.start()
        bare.join()
    plain, inside, threaded, bare_line = records(captured)
    assert set(plain) == {"timestamp", "level", "component", "message"}
    assert plain["message"] == "plain 1" and plain["level"] == "info"
    assert plain["component"] == "rivet.test"
    assert plain["timestamp"].endswith("Z") and plain["timestamp"][10] == "T"
    assert (inside["job_id"], inside["runner_id"], inside["request_id"]) == (
        "job-1",
        "r-2",
        "req-9",
    )
    assert threaded["job_id"] == "job-1" and threaded["level"] == "error"
    assert "job_id" not in bare_line  # why threads are started with in_context


def test_levels_per_component(captured: io.StringIO) -> None:
    logging.getLogger("rivet.noisy").warning("hidden")
    logging.getLogger("rivet.noisy.child").warning("hidden too")
    logging.getLogger("rivet.deep").debug("shown")
    logging.getLogger("rivet.other").debug("hidden: root is info")
    assert [r["message"] for r in records(captured)] == ["shown"]


def test_exceptions_are_one_json_line_with_the_traceback(captured: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("rivet.test").exception("failed")
    (line,) = records(captured)
    assert "RuntimeError: boom" in line["exception"] and line["level"] == "error"


def test_text_format_is_one_readable_line() -> None:
    stream = io.StringIO()
    handler = configure_logging("text", LogLevels(), stream)
    try:
        with bind(job_id="abc"):
            logging.getLogger("rivet.x").info("hello")
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue()
    assert line.endswith(" INFO rivet.x [job=abc]: hello\n")


def test_auto_is_json_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    handler = configure_logging("auto", LogLevels(), stream)
    try:
        logging.getLogger("rivet.x").info("hello")
    finally:
        logging.getLogger().removeHandler(handler)
    assert json.loads(stream.getvalue())["message"] == "hello"


def test_registered_secrets_and_credential_shapes_are_masked(captured: io.StringIO) -> None:
    secret = "s3cr3t-Value-42"
    register_secret(secret)
    try:
        log = logging.getLogger("rivet.test")
        log.info("value %s", secret)
        log.info("repr %r", {"k": secret + "\n"})
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            log.exception("with traceback")
    finally:
        forget_secret(secret)
    text = captured.getvalue()
    assert secret not in text and text.count("***") >= 3
    log.info("after %s", secret)  # forgotten: no longer masked
    assert secret in captured.getvalue().splitlines()[-1]


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ("Authorization: Bearer rivet_admin_abcdef123456", "rivet_admin_abcdef123456"),
        ('{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}', "dXNlcjpwYXNzd29yZA=="),
        ("postgresql+psycopg://rivet:hunter2pw@db:5432/rivet", "hunter2pw"),
        ("GET /api/x?token=abcdef123456&y=1", "abcdef123456"),
        ("password=correct-horse", "correct-horse"),
        ("registration_token: rivet_reg_0123456789", "rivet_reg_0123456789"),
    ],
)
def test_credential_shapes_are_masked_unregistered(line: str, hidden: str) -> None:
    masked = redact(line)
    assert hidden not in masked and "***" in masked


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    try:
        assert redact("abc abc") == "abc abc"
    finally:
        forget_secret("abc")


def test_log_level_setting_takes_components_and_names_a_bad_part() -> None:
    settings = load_settings(env={"RIVET_LOG_LEVEL": "DEBUG, rivet.jobqueue=warning"})
    assert settings.server.log_level == "debug,rivet.jobqueue=warning"
    assert parse_levels(settings.server.log_level).loggers == {"rivet.jobqueue": "warning"}
    for bad, said in (
        ("loud", "'loud'"),
        ("info,rivet.x=loud", "'loud'"),
        ("info,debug", "two root levels"),
        ("info,bad name=debug", "'bad name'"),
    ):
        with pytest.raises(ConfigError, match="RIVET_LOG_LEVEL") as caught:
            load_settings(env={"RIVET_LOG_LEVEL": bad}).server.log_level  # noqa: B018
        assert said in str(caught.value)


def test_metrics_allow_setting_takes_networks() -> None:
    settings = load_settings(env={"RIVET_METRICS_ALLOW": "10.0.0.1, 192.168.0.0/16,::1"})
    assert settings.server.metrics_allow == ("10.0.0.1/32", "192.168.0.0/16", "::1/128")
    assert load_settings(env={"RIVET_METRICS_ALLOW": "none"}).server.metrics_allow == ()
    assert load_settings(env={}).server.metrics_allow == ("127.0.0.0/8", "::1/128")
    with pytest.raises(ConfigError, match=r"RIVET_METRICS_ALLOW: 'example\.com' is not an address"):
        load_settings(env={"RIVET_METRICS_ALLOW": "example.com"}).server.metrics_allow  # noqa: B018


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_hostile_text_never_reaches_the_stream_raw(log_format: str) -> None:
    stream = io.StringIO()
    handler = configure_logging(log_format, LogLevels(), stream)
    hostile = "pipe\x1b[2J\x1b]0;owned\x07\u202eline\nfake INFO record\r\x9b\ud800"
    try:
        try:
            raise ValueError(hostile)
        except ValueError:
            logging.getLogger("rivet.x").exception("job %s", hostile)
    finally:
        logging.getLogger().removeHandler(handler)
    written = stream.getvalue()
    for char in ("\x1b", "\x07", "\u202e", "\r", "\x9b", "\ud800"):
        assert char not in written
    lines = written.removesuffix("\n").split("\n")
    if log_format == "json":
        (line,) = lines
        record = json.loads(line)
        assert record["message"].startswith("job pipe\x1b[2J")  # exact text, escaped in JSON
        assert "ValueError" in record["exception"]
    else:
        assert lines[0].endswith(
            "job pipe\\x1b[2J\\x1b]0;owned\\x07\\u202eline\\nfake INFO record\\r\\x9b\\ud800"
        )
        assert all(line.startswith("  ") for line in lines[1:])  # the traceback, indented
