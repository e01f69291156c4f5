"""Structured logs of ``rivet server`` and ``rivet runner``.

Every record becomes one line, as JSON (``--log-format json``) or text:

- ``timestamp`` (UTC, RFC 3339 with milliseconds, ``Z``), ``level`` (lower case),
  ``component`` (the logger's name: ``rivet.runner``, ``rivet.jobqueue``,
  ``uvicorn.access``…), ``message``;
- ``job_id``, ``runner_id``, ``request_id`` when the code that logged runs for one
  (:func:`bind` sets them in a :mod:`contextvars` context; threads started with
  :func:`in_context` keep the ids of the thread that made them);
- ``exception`` (the formatted traceback) when there is one.

``auto`` (the default) is text when the stream is a terminal, JSON otherwise: a
person reads a terminal, a log shipper reads a pipe or a file.

Redaction (:func:`redact`): every line, after formatting and with its traceback, is
scanned for the values registered with :func:`register_secret` (the process's own
tokens and keys, the secrets of the jobs it runs while they run) and for credential
shapes whoever they belong to (bearer tokens and ``Authorization`` values, the
password of a URL, ``token=``/``password=``/``secret=`` parameters), each replaced by
``***``. It is the last step before the stream, so no logger, library or traceback
can bypass it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

from rivet.observe.levels import LEVEL_NAMES, TRACE, LogLevels

__all__ = [
    "FORMATS",
    "MASK",
    "StructuredFormatter",
    "bind",
    "configure_logging",
    "forget_secret",
    "in_context",
    "redact",
    "register_secret",
]

FORMATS = ("auto", "json", "text")
MASK = "***"
_IDS = ("job_id", "runner_id", "request_id")
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"rivet_{name}", default=None) for name in _IDS
}
T = TypeVar("T")

# Shorter values are not registered: they would mask ordinary words.
_MIN_SECRET = 6
_secrets: dict[str, int] = {}
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None
_SHAPES = re.compile(
    r"(?i)(?P<auth>\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)"
    r"[^\s\"',}]{6,}"
    r"|(?P<scheme>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|(?P<url>://[^/\s:@]*:)[^@\s/]+(?=@)"
    r"|(?P<param>(?:^|[?&;,\s\"'{])[a-z_]*(?:token|password|passwd|secret|api_key)"
    r"[\"']?\s*[=:]\s*[\"']?)"
    r"[^&\s\"',;}]{6,}"
)


# Characters that must not reach a terminal or a log viewer raw (the rule of
# rivet.cli.terminal): C0 but tab, DEL, C1, bidi embeddings/overrides and isolates,
# LS/PS, lone surrogates (which cannot even be encoded). Log lines carry pipeline
# names, error messages and other text from jobs and clients.
_DANGEROUS = "\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
_UNSAFE = re.compile(f"[{_DANGEROUS}]")
# json.dumps escapes C0 itself; these it would leave raw.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _visible(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


def register_secret(value: str) -> None:
    """Mask ``value`` in every line logged from now on (counted: registering twice
    needs forgetting twice)."""
    global _secret_pattern
    value = value.strip()
    if len(value) < _MIN_SECRET:
        return
    with _secrets_lock:
        _secrets[value] = _secrets.get(value, 0) + 1
        _secret_pattern = _compile()


def forget_secret(value: str) -> None:
    global _secret_pattern
    value = value.strip()
    with _secrets_lock:
        count = _secrets.get(value, 0)
        if count <= 1:
            _secrets.pop(value, None)
        else:
            _secrets[value] = count - 1
        _secret_pattern = _compile()


def _compile() -> re.Pattern[str] | None:
    forms: set[str] = set()
    for value in _secrets:
        forms.update({value, repr(value)[1:-1], json.dumps(value)[1:-1]})
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _keep(match: re.Match[str]) -> str:
    kept = next((g for g in match.groups() if g is not None), "")
    return kept + MASK


def redact(text: str) -> str:
    """``text`` with registered secrets and credential shapes masked."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _SHAPES.sub(_keep, text)


@contextmanager
def bind(**ids: str | None) -> Iterator[None]:
    """Within the block, records carry these ids (``job_id``, ``runner_id``,
    ``request_id``); ``None`` leaves one as it was."""
    tokens = [(_context[k], _context[k].set(v)) for k, v in ids.items() if v is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def in_context(target: Callable[[], T]) -> Callable[[], T]:
    """``target`` run in a copy of the current context (for ``threading.Thread``: a
    new thread otherwise starts without the ids)."""
    context = contextvars.copy_context()
    return lambda: context.run(target)


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class StructuredFormatter(logging.Formatter):
    """One line per record, JSON or text, redacted (see the module docstring)."""

    def __init__(self, json_lines: bool) -> None:
        super().__init__()
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": _level_name(record.levelno),
            "component": record.name,
            "message": record.getMessage(),
        }
        for name in _IDS:
            value = getattr(record, name, None) or _context[name].get()
            if value:
                fields[name] = str(value)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        if self.json_lines:
            line = json.dumps(fields, ensure_ascii=False)
            return redact(_UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", line))
        ids = " ".join(f"{k.removesuffix('_id')}={fields[k]}" for k in _IDS if k in fields)
        line = f"{fields['timestamp']} {fields['level'].upper()} {fields['component']}"
        line += f" [{ids}]: " if ids else ": "
        line = _visible(line + fields["message"])
        if "exception" in fields:
            # Indented: only a real record starts at the left margin.
            trace = fields["exception"].removesuffix("\n").split("\n")
            line += "".join(f"\n  {_visible(part)}" for part in trace)
        return redact(line)


def _level_name(levelno: int) -> str:
    for name, number in LEVEL_NAMES.items():
        if levelno >= number:
            return name
    return "trace"


def configure_logging(
    log_format: str, levels: LogLevels, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every record of this process to ``stream`` (default stderr) in
    ``log_format`` (``auto``, ``json``, ``text``) at ``levels``; replaces the root's
    handlers, and uvicorn's loggers pass their records up to it. Returns the handler."""
    stream = stream if stream is not None else sys.stderr
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(StructuredFormatter(json_lines=log_format == "json"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVEL_NAMES[levels.root])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
        named.setLevel(logging.NOTSET)
    # One line per HTTP request of the runner's client would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    for name, level in levels.loggers.items():
        logging.getLogger(name).setLevel(LEVEL_NAMES[level])
    return handler
