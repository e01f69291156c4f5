"""Parsing the Lua arguments of ``http.*`` into a :class:`RequestSpec`.

Everything is checked on the Lua thread before any network access, so a bad option
is an error at the caller's line naming the function and the option.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

import httpx

from rivet.engine.policy.http_policy import HttpPolicy
from rivet.engine.policy.violation import PolicyViolation
from rivet.lua.lua_values import array_values, is_array, is_table, key_text, keys, raw, type_name
from rivet.lua.sandbox import LuaCallError

__all__ = ["METHODS", "REQUEST_OPTIONS", "VERB_OPTIONS", "RequestSpec", "display_url", "parse"]

VERB_OPTIONS = ("headers", "query", "body", "json", "timeout", "check", "follow_redirects")
REQUEST_OPTIONS = ("method", "url", *VERB_OPTIONS)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Headers that describe the connection or the framing: Rivet sets them from the URL
# and the body. Letting pipelines set Host would let them pick any virtual host on
# an allowed address, and the others could desynchronise the message framing.
RESERVED_HEADERS = ("host", "content-length", "transfer-encoding", "connection", "upgrade", "te")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # whole names (fullmatch)


@dataclass(frozen=True)
class RequestSpec:
    method: str
    url: httpx.URL
    headers: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...]
    content: bytes | None
    timeout: float
    check: bool
    follow_redirects: bool


def display_url(url: httpx.URL) -> str:
    """The URL for messages: no user info (passwords), no query (tokens), no fragment."""
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


class _Parser:
    def __init__(self, fn: str, policy: HttpPolicy) -> None:
        self.fn = fn
        self.policy = policy

    def fail(self, message: str) -> LuaCallError:
        return LuaCallError(f"{self.fn}: {message}")

    def text(self, value: Any, what: str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self.fail(f"{what} must be a string, got {type_name(value)}")

    def flag(self, opts: Any, name: str, default: bool) -> bool:
        value = opts[name]
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"option '{name}' must be a boolean, got {type_name(value)}")
        return value

    def check_keys(self, opts: Any, allowed: tuple[str, ...]) -> None:
        for key in keys(opts):
            if key in allowed:
                continue
            if key in ("method", "url"):
                raise self.fail(f"option '{key}' is only accepted by http.request")
            close = difflib.get_close_matches(key_text(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.fail(f"unknown option '{key_text(key)}'{hint}")

    def url(self, value: Any) -> httpx.URL:
        if not isinstance(value, str) or not value:
            raise self.fail(f"the URL must be a non-empty string, got {type_name(value)}")
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise self.fail(f"invalid URL {value!r}: {exc}") from None
        if not url.scheme or not url.host:
            raise self.fail(f"URL {value!r} must be absolute, like 'https://host/path'")
        if url.port is not None and not 1 <= url.port <= 65535:
            raise self.fail(f"URL {value!r} has an invalid port {url.port}")
        return url

    def headers(self, given: Any) -> tuple[tuple[str, str], ...]:
        if given is None:
            return ()
        if not is_table(given):
            raise self.fail(
                f"option 'headers' must be a table of name = value, got {type_name(given)}"
            )
        found: list[tuple[str, str]] = []
        for name, value in given.items():
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise self.fail(f"headers: invalid header name {name!r}")
            if name.lower() in RESERVED_HEADERS:
                raise self.fail(f"headers: '{name}' is set by Rivet and cannot be given")
            text = self.text(value, f"headers.{name}")
            if any(c in text for c in "\r\n\0"):
                raise self.fail(f"headers.{name}: value must not contain line breaks or NUL")
            found.append((name, text))
        return tuple(sorted(found, key=lambda item: item[0].lower()))

    def query(self, given: Any) -> tuple[tuple[str, str], ...]:
        if given is None:
            return ()
        if not is_table(given):
            raise self.fail(
                f"option 'query' must be a table of name = value, got {type_name(given)}"
            )
        found: list[tuple[str, str]] = []
        given = raw(given)
        for name in sorted(given.keys(), key=key_text):
            if not isinstance(name, str):
                raise self.fail(f"query: parameter names must be strings, got {name!r}")
            value = given[name]
            values = array_values(value) if is_table(value) else [value]
            if is_table(value) and not is_array(value):
                raise self.fail(f"query.{name} must be a value or a list of values")
            for item in values:
                found.append((name, self.scalar(item, f"query.{name}")))
        return tuple(found)

    def scalar(self, value: Any, what: str) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return self.text(value, what)

    def body(
        self, opts: Any, headers: tuple[tuple[str, str], ...], encoded_json: Any
    ) -> tuple[bytes | None, bool]:
        """The encoded body and whether a JSON Content-Type must be added.

        ``opts.json`` arrives already encoded by ``json.encode`` (in the Lua glue),
        so a request body means exactly what ``json.encode`` documents."""
        body, data = opts["body"], opts["json"]
        if body is not None and data is not None:
            raise self.fail("give either 'body' or 'json', not both")
        content: bytes | None = None
        add_json_type = False
        if body is not None:
            if not isinstance(body, str | bytes):
                raise self.fail(f"option 'body' must be a string, got {type_name(body)}")
            content = body.encode("utf-8") if isinstance(body, str) else body
        elif data is not None:
            if not isinstance(encoded_json, str | bytes):
                raise RuntimeError("the http glue did not encode option 'json'")
            content = (
                encoded_json.encode("utf-8") if isinstance(encoded_json, str) else encoded_json
            )
            add_json_type = not any(name.lower() == "content-type" for name, _ in headers)
        limit = self.policy.max_request_bytes
        if content is not None and len(content) > limit:
            raise PolicyViolation(
                "http.max_request_bytes",
                f"request body of {len(content)} bytes exceeds policy "
                f"http.max_request_bytes ({limit} bytes)",
            )
        return content, add_json_type

    def timeout(self, value: Any) -> float:
        if value is None:
            return self.policy.default_timeout
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise self.fail(f"option 'timeout' must be a positive number of seconds, got {value!r}")
        if value > self.policy.max_timeout:
            raise PolicyViolation(
                "http.max_timeout",
                f"timeout of {value:g} s exceeds policy http.max_timeout "
                f"({self.policy.max_timeout:g} s)",
            )
        return float(value)

    def method(self, value: Any) -> str:
        if value is None:
            return "GET"
        if not isinstance(value, str) or value.upper() not in METHODS:
            raise self.fail(f"option 'method' must be one of {', '.join(METHODS)}; got {value!r}")
        return value.upper()

    def spec(self, method: str, url: Any, opts: Any, encoded_json: Any) -> RequestSpec:
        target = self.url(url)
        headers = self.headers(opts["headers"])
        content, add_json_type = self.body(opts, headers, encoded_json)
        if add_json_type:
            headers = (*headers, ("Content-Type", "application/json"))
        return RequestSpec(
            method=method,
            url=target,
            headers=headers,
            query=self.query(opts["query"]),
            content=content,
            timeout=self.timeout(opts["timeout"]),
            check=self.flag(opts, "check", False),
            follow_redirects=self.flag(opts, "follow_redirects", True),
        )


class _NoOptions:
    """Stands in for an omitted options table."""

    def __getitem__(self, key: str) -> None:
        return None


def parse(
    fn: str, policy: HttpPolicy, method: str | None, url: Any, opts: Any, encoded_json: Any = None
) -> RequestSpec:
    """``http.<verb>(url, opts)`` when ``method`` is given, else ``http.request(opts)``;
    ``encoded_json`` is ``opts.json`` after ``json.encode``."""
    parser = _Parser(fn, policy)
    if method is None:
        if not is_table(opts):
            raise parser.fail(
                'expected a table: http.request({ method = "POST", url = "https://…" }), '
                f"got {type_name(opts)}"
            )
        opts = raw(opts)  # options are read raw: no __index (see rivet.lua.lua_values)
        parser.check_keys(opts, REQUEST_OPTIONS)
        return parser.spec(parser.method(opts["method"]), opts["url"], opts, encoded_json)
    if opts is None:
        return parser.spec(method, url, _NoOptions(), None)
    if not is_table(opts):
        raise parser.fail(f"options must be a table, got {type_name(opts)}")
    opts = raw(opts)
    parser.check_keys(opts, VERB_OPTIONS)
    return parser.spec(method, url, opts, encoded_json)
