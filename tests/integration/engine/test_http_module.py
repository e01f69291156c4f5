"""The ``http`` module against a real HTTP server on loopback, and its runner policy.

Functional tests allow loopback explicitly (``deny_private = false`` plus
``allowed_hosts``); hostile tests use the default policy or a deny list and prove
both the refusal and that the server never saw a connection. Tests never contact a
non-loopback address: every such URL is refused before any connection. DNS answers
that this machine cannot produce (a name resolving to 127.0.0.2, a rebinding name)
come from a fake resolver, and those tests say so in their names.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from recording import EventLog

from rivet.engine.backends.base import (
    ContainerSpec,
    ExecRequest,
    ExecResult,
    RunningContainer,
)
from rivet.engine.backends.fake import FakeBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken, JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.modules import http_module, json_module, log_module
from rivet.engine.modules.http_module.transport import ResolveError, Resolver, system_resolver
from rivet.engine.policy import Policy
from rivet.errors import LuaError
from rivet.lua.sandbox import Sandbox

MiB = 1024 * 1024

# --- a real HTTP server on loopback ------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    host: str
    port: int
    seen: list[Seen] = field(default_factory=list)
    sent_bytes: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"


@functools.cache
def gzip_bomb() -> bytes:
    """About 16 KiB that inflate to 16 MiB."""
    return gzip.compress(b"\0" * (16 * MiB), compresslevel=9)


def make_handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(
            self,
            status: int,
            body: bytes,
            content_type: str = "text/plain; charset=utf-8",
            headers: tuple[tuple[str, str], ...] = (),
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_any(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = parse_qs(parts.query)
            server.seen.append(
                Seen(
                    self.command,
                    parts.path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
            route = getattr(
                self, "route_" + parts.path.strip("/").split("/")[0].replace("-", "_"), None
            )
            if route is None:
                self.reply(404, b"no such route")
                return
            # OSError: the client went away (timeouts, caps, cancels), expected here.
            with contextlib.suppress(OSError):
                route(parts.path, query, body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any

        # routes ---------------------------------------------------------------------

        def route_echo(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            seen = server.seen[-1]
            payload = {
                "method": seen.method,
                "query": query,
                "headers": seen.headers,
                "body": body.decode("utf-8", "replace"),
            }
            self.reply(200, json.dumps(payload).encode(), "application/json")

        def route_text(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            self.reply(
                200,
                "café, plain".encode("latin-1"),
                "text/plain; charset=iso-8859-1",
                headers=(("X-Custom-Header", "One"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")),
            )

        def route_status(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            code = int(path.split("/")[2])
            self.reply(code, f"status {code} body".encode())

        def route_problem(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            self.reply(422, b'{"error": "bad"}', "application/problem+json")

        def route_badjson(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            self.reply(200, b"{not json", "application/json")

        def route_redirect(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            code = int(query.get("code", ["302"])[0])
            self.send_response(code)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def route_loop(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            n = int(path.split("/")[2]) if path.count("/") > 1 else 0
            self.send_response(302)
            self.send_header("Location", f"/loop/{n + 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def route_big(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            # Streams up to 64 MiB with no Content-Length, counting what it managed to send:
            # a client that stops reading at its cap makes the writes fail early.
            total = int(query.get("n", [str(64 * MiB)])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            chunk = b"x" * 65536
            try:
                while sent < total and not server.stop.is_set():
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            finally:
                server.sent_bytes.append(sent)
                self.close_connection = True

        def route_declared(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(50 * MiB))
            self.end_headers()
            self.close_connection = True

        def route_bomb(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            self.reply(200, gzip_bomb(), "text/plain", headers=(("Content-Encoding", "gzip"),))

        def route_gzip(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            packed = gzip.compress(json.dumps({"zipped": True}).encode())
            self.reply(200, packed, "application/json", headers=(("Content-Encoding", "gzip"),))

        def route_slow(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            server.stop.wait(10)
            self.reply(200, b"late")

        def route_drip(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            # Headers at once, then one byte every 50 ms: no single read ever times out.
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                while not server.stop.wait(0.05):
                    self.wfile.write(b".")
                    self.wfile.flush()
            except OSError:
                pass

    return Handler


def start_server(host: str = "127.0.0.1", port: int = 0) -> tuple[Server, ThreadingHTTPServer]:
    server = Server(host, port)
    httpd = ThreadingHTTPServer((host, port), make_handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    return server, httpd


@pytest.fixture
def server() -> Iterator[Server]:
    srv, httpd = start_server()
    yield srv
    srv.stop.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def twin_servers() -> Iterator[tuple[Server, Server]]:
    """Servers on 127.0.0.1 and 127.0.0.2 with the same port (the second is the
    'attacker' that must never be reached)."""
    for _ in range(20):
        first, first_httpd = start_server("127.0.0.1")
        try:
            second, second_httpd = start_server("127.0.0.2", first.port)
        except OSError:
            first_httpd.shutdown()
            first_httpd.server_close()
            continue
        yield first, second
        for srv, httpd in ((first, first_httpd), (second, second_httpd)):
            srv.stop.set()
            httpd.shutdown()
            httpd.server_close()
        return
    pytest.fail("could not bind the same port on 127.0.0.1 and 127.0.0.2")


# --- running Lua with the http module ------------------------------------------------------

LOOPBACK = {"deny_private": False, "allowed_hosts": ["127.0.0.1"]}


class SpyResolver:
    """The system resolver, recording every name it was asked for."""

    def __init__(self, inner: Resolver = system_resolver) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.inner(host, port)


@dataclass
class Lua:
    sandbox: Sandbox
    ctx: JobContext
    events: EventLog

    def run(self, code: str) -> Any:
        fn = self.sandbox.load(code, "t.lua")
        return self.sandbox.call(fn, budget=10, label="test")

    def error(self, code: str) -> str:
        with pytest.raises(LuaError) as info:
            self.run(code)
        return str(info.value)


@pytest.fixture
def lua(tmp_path: Path) -> Callable[..., Lua]:
    def make(
        policy: dict[str, Any] | None = None,
        resolver: Resolver = system_resolver,
        cancel: CancelToken | None = None,
    ) -> Lua:
        events = EventLog()
        ctx = JobContext(
            job_id="http-test",
            events=events,
            backend=FakeBackend(),  # http never touches containers
            workspace=tmp_path,
            default_image="alpine:latest",
            inputs={},
            cancel=cancel or CancelToken(),
            policy=Policy.model_validate({"http": policy if policy is not None else {}}),
        )
        ctx.phase = Phase.RUN
        sandbox = Sandbox()
        log_module.install(sandbox, ctx)
        json_module.install(sandbox, ctx)  # http encodes and decodes with it
        http_module.install(sandbox, ctx, resolver=resolver)
        return Lua(sandbox, ctx, events)

    return make


def to_py(value: Any) -> Any:
    from rivet.lua.lua_values import to_python

    return to_python(value)


# --- functional -----------------------------------------------------------------------------


def test_get_with_query_and_headers(lua: Callable[..., Lua], server: Server) -> None:
    r = to_py(
        lua(LOOPBACK).run(
            f"""return http.get("{server.url("/echo?x=0&a=old")}", {{
              query = {{ a = "1", n = 5, flag = true, many = {{ "p", "q" }} }},
              headers = {{ ["X-Token"] = "abc", Accept = "application/json" }},
            }})"""
        )
    )
    assert r["status"] == 200 and r["ok"] is True
    assert r["json"]["method"] == "GET"
    assert r["json"]["query"] == {
        "x": ["0"],
        "a": ["1"],
        "n": ["5"],
        "flag": ["true"],
        "many": ["p", "q"],
    }
    assert r["json"]["headers"]["x-token"] == "abc"
    assert r["json"]["headers"]["user-agent"] == "rivet-ci"
    assert r["url"].startswith(server.url("/echo?"))


def test_post_json_body(lua: Callable[..., Lua], server: Server) -> None:
    r = to_py(
        lua(LOOPBACK).run(
            f"""return http.post("{server.url("/echo")}", {{
              json = {{ name = "rivet", list = {{ 1, 2.5, "x" }}, nested = {{ ok = true }} }} }})"""
        )
    )
    seen = server.seen[-1]
    assert seen.method == "POST"
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == {"name": "rivet", "list": [1, 2.5, "x"], "nested": {"ok": True}}
    assert r["status"] == 200


def test_post_raw_body_keeps_bytes_and_given_content_type(
    lua: Callable[..., Lua], server: Server
) -> None:
    lua(LOOPBACK).run(
        f"""return http.post("{server.url("/echo")}", {{
          body = "line 1\\nline 2 ü", headers = {{ ["Content-Type"] = "text/plain" }} }})"""
    )
    seen = server.seen[-1]
    assert seen.body == "line 1\nline 2 ü".encode()
    assert seen.headers["content-type"] == "text/plain"


@pytest.mark.parametrize("verb", ["put", "patch", "delete"])
def test_put_patch_delete(lua: Callable[..., Lua], server: Server, verb: str) -> None:
    r = to_py(lua(LOOPBACK).run(f'return http.{verb}("{server.url("/echo")}", {{ body = "b" }})'))
    assert r["json"]["method"] == verb.upper()
    assert r["json"]["body"] == "b"


def test_request_table_form_and_head(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua(LOOPBACK)
    r = to_py(
        runner.run(
            f"""return http.request({{ method = "patch", url = "{server.url("/echo")}",
              json = {{ 1, 2 }}, timeout = 5 }})"""
        )
    )
    assert r["json"]["method"] == "PATCH" and r["json"]["body"] == "[1,2]"
    head = to_py(
        runner.run(f'return http.request({{ method = "HEAD", url = "{server.url("/text")}" }})')
    )
    assert head["status"] == 200 and head["body"] == ""


def test_non_json_body_headers_lower_cased_and_charset(
    lua: Callable[..., Lua], server: Server
) -> None:
    r = to_py(lua(LOOPBACK).run(f'return http.get("{server.url("/text")}")'))
    assert r["body"] == "café, plain"  # decoded from ISO-8859-1 as declared
    assert "json" not in r
    assert r["headers"]["x-custom-header"] == "One"
    assert r["headers"]["set-cookie"] == "a=1, b=2"
    assert all(name == name.lower() for name in r["headers"])


def test_json_variants(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua(LOOPBACK)
    problem = to_py(runner.run(f'return http.get("{server.url("/problem")}")'))
    assert problem["status"] == 422 and problem["ok"] is False
    assert problem["json"] == {"error": "bad"}  # application/problem+json counts as JSON
    bad = to_py(runner.run(f'return http.get("{server.url("/badjson")}")'))
    assert bad["body"] == "{not json" and "json" not in bad
    zipped = to_py(runner.run(f'return http.get("{server.url("/gzip")}")'))
    assert zipped["json"] == {"zipped": True}


def test_json_bodies_follow_the_json_module(lua: Callable[..., Lua], server: Server) -> None:
    """opts.json is json.encode'd and response.json is json.decode'd: same rules."""
    runner = lua(LOOPBACK)
    url = server.url("/echo")
    got = to_py(
        runner.run(
            f"""local a = http.post("{url}", {{ json = {{}} }}).json.body
            local b = http.post("{url}", {{ json = json.object({{}}) }}).json.body
            local c = http.post("{url}", {{ json = {{ x = json.null, n = 3, f = 3.0 }} }}).json.body
            local d = http.post("{url}", {{ json = "text" }}).json.body
            return {{ a, b, c, d }}"""
        )
    )
    assert got[0] == "[]" and got[1] == "{}" and got[3] == '"text"'
    assert json.loads(got[2]) == {"x": None, "n": 3, "f": 3.0} and '"f":3.0' in got[2]
    nulls = runner.run(
        f"""local r = http.post("{url}", {{ json = {{ 1, json.null, 3 }} }})
        local echoed = json.decode(r.json.body)
        return echoed[2] == json.null, #echoed, json.encode(r.json.headers) ~= nil"""
    )
    assert nulls == (True, 3, True)


def test_non_2xx_is_a_result_unless_check(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua(LOOPBACK)
    r = to_py(runner.run(f'return http.get("{server.url("/status/404")}")'))
    assert r["status"] == 404 and r["ok"] is False and r["body"] == "status 404 body"
    message = runner.error(f'http.get("{server.url("/status/503")}", {{ check = true }})')
    assert message.startswith("t.lua:1: http.get: GET http://127.0.0.1:")
    assert "/status/503 returned 503 Service Unavailable: status 503 body" in message
    ok = to_py(runner.run(f'return http.get("{server.url("/status/204")}", {{ check = true }})'))
    assert ok["status"] == 204


def test_redirects_are_followed_and_reported(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua(LOOPBACK)
    target = server.url("/echo?after=1")
    r = to_py(
        runner.run(
            f'return http.post("{server.url("/redirect")}", {{ query = {{ to = "{target}", code = 303 }}, body = "x" }})'
        )
    )
    assert r["status"] == 200 and r["url"] == target
    assert server.seen[-1].method == "GET"  # 303 turns POST into GET, as browsers do
    kept = to_py(
        runner.run(
            f'return http.get("{server.url("/redirect")}", {{ query = {{ to = "/status/201" }}, follow_redirects = false }})'
        )
    )
    assert kept["status"] == 302 and kept["headers"]["location"] == "/status/201"
    assert any("after 1 redirect(s)" in m for m in runner.events.messages("debug"))


def test_option_errors_name_function_and_option(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua(LOOPBACK)
    url = server.url("/echo")
    cases = {
        f'http.get("{url}", {{ header = {{}} }})': "http.get: unknown option 'header' (did you mean 'headers'?)",
        f'http.get("{url}", {{ method = "POST" }})': "http.get: option 'method' is only accepted by http.request",
        f'http.post("{url}", {{ body = "a", json = {{}} }})': "http.post: give either 'body' or 'json', not both",
        f'http.get("{url}", {{ timeout = -1 }})': "http.get: option 'timeout' must be a positive number of seconds",
        f'http.get("{url}", {{ headers = {{ Host = "evil" }} }})': "http.get: headers: 'Host' is set by Rivet",
        f'http.get("{url}", {{ headers = {{ X = "a\\r\\nInjected: 1" }} }})': "http.get: headers.X: value must not contain line breaks",
        'http.get("not a url")': "http.get: URL 'not a url' must be absolute",
        "http.get(42)": "http.get: the URL must be a non-empty string, got number",
        'http.request({ method = "TRACE", url = "http://x/" })': "http.request: option 'method' must be one of GET",
        "http.request()": "http.request: expected a table",
        f'http.post("{url}", {{ json = {{ f = function() end }} }})': "http.post: option 'json' cannot be encoded",
        f'http.post("{url}", {{ json = {{ x = 0/0 }} }})': "http.post: option 'json' cannot be encoded",
    }
    before = len(server.seen)
    for code, expected in cases.items():
        assert expected in runner.error(code), code
    assert len(server.seen) == before  # nothing was sent


def test_timeout_above_the_maximum_is_refused(lua: Callable[..., Lua], server: Server) -> None:
    message = lua({**LOOPBACK, "default_timeout": 5, "max_timeout": 10}).error(
        f'http.get("{server.url("/echo")}", {{ timeout = 11 }})'
    )
    assert "http.get: timeout of 11 s exceeds policy http.max_timeout (10 s)" in message
    assert server.seen == []


def test_oversized_request_body_is_refused_before_sending(
    lua: Callable[..., Lua], server: Server
) -> None:
    message = lua({**LOOPBACK, "max_request_bytes": 10}).error(
        f'http.post("{server.url("/echo")}", {{ body = string.rep("a", 11) }})'
    )
    assert "request body of 11 bytes exceeds policy http.max_request_bytes (10 bytes)" in message
    assert server.seen == []


def test_connection_refused_is_a_clear_error(lua: Callable[..., Lua]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = lua(LOOPBACK).error(f'http.get("http://127.0.0.1:{port}/x?token=secret")')
    assert f"http.get: GET http://127.0.0.1:{port}/x: cannot connect" in message
    assert "secret" not in message  # query strings stay out of messages


def test_unresolvable_host_is_a_clear_error_with_fake_resolver(lua: Callable[..., Lua]) -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise ResolveError("[Errno -2] Name or service not known")

    message = lua({}, resolver=nowhere).error('http.get("https://nowhere.example/x")')
    assert (
        "http.get: GET https://nowhere.example/x: cannot resolve host 'nowhere.example': "
        "[Errno -2] Name or service not known"
    ) in message


def test_passwords_in_urls_stay_out_of_messages_and_results(
    lua: Callable[..., Lua], server: Server
) -> None:
    runner = lua(LOOPBACK)
    r = to_py(runner.run(f'return http.get("http://user:hunter2@127.0.0.1:{server.port}/echo")'))
    assert r["json"]["headers"]["authorization"].startswith("Basic ")  # still sent
    assert "hunter2" not in r["url"]
    message = runner.error(
        f'http.get("http://user:hunter2@127.0.0.1:{server.port}/status/500", {{ check = true }})'
    )
    assert "hunter2" not in message
    assert not any("hunter2" in m for m in runner.events.messages())


# --- through the executor ----------------------------------------------------------------


class NoContainers:
    """A backend that fails the test if anything tries to start a container."""

    def check_image(self, image: str, pull: str | None) -> None:
        raise AssertionError("http must not check images")

    def start(self, spec: ContainerSpec) -> RunningContainer:
        raise AssertionError("http must not start containers")

    def exec(self, container: RunningContainer, request: ExecRequest) -> ExecResult:
        raise AssertionError("http must not exec")

    def remove(self, container: RunningContainer) -> None:
        pass

    def remove_job(self, job_id: str) -> int:
        return 0


def run_job(tmp_path: Path, source: str, policy: dict[str, Any]) -> tuple[JobResult, EventLog]:
    executor = Executor(
        NoContainers(),
        ExecutorSettings(
            workspace_root=tmp_path / "ws", policy=Policy.model_validate({"http": policy})
        ),
    )
    events = EventLog()
    job = JobSpec(f"h-{uuid.uuid4().hex[:8]}", source, "p.lua", {})
    return executor.run(job, events), events


def test_pipeline_uses_http_under_the_executor_policy(tmp_path: Path, server: Server) -> None:
    source = f"""return pipeline.define({{ name = "h", stages = {{
      {{ name = "call", script = function()
        local r = http.get("{server.url("/echo")}", {{ query = {{ q = "v" }} }})
        output.set("method", r.json.method)
        output.set("status", r.status)
      end }},
    }} }})"""
    result, _ = run_job(tmp_path, source, LOOPBACK)
    assert str(result.status) == "succeeded", result.error
    assert result.outputs == {"method": "GET", "status": 200}
    default_result, _ = run_job(tmp_path, source, {})  # the default policy denies loopback
    assert str(default_result.status) == "failed"
    assert "policy http.deny_private forbids 127.0.0.1 (loopback)" in (default_result.error or "")


def test_http_at_definition_time_is_refused(tmp_path: Path, server: Server) -> None:
    source = f"""http.get("{server.url("/echo")}")
    return pipeline.define({{ name = "h", stages = {{ {{ name = "s", script = function() end }} }} }})"""
    result, _ = run_job(tmp_path, source, LOOPBACK)
    assert str(result.status) == "failed"
    assert "http.get can only be called inside a stage script or condition" in (result.error or "")
    assert server.seen == []


# --- hostile: addresses and hosts (default policy) ----------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:{port}/", "policy http.deny_private forbids 127.0.0.1 (loopback)"),
        (
            "http://10.0.0.1/",
            "policy http.deny_private forbids 10.0.0.1 (private network, RFC 1918)",
        ),
        ("http://192.168.1.1/", "policy http.deny_private forbids 192.168.1.1 (private network"),
        ("http://172.16.0.1/", "policy http.deny_private forbids 172.16.0.1 (private network"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "policy http.deny_private forbids 169.254.169.254 (link-local, the cloud metadata service)",
        ),
        ("http://100.64.0.1/", "policy http.deny_private forbids 100.64.0.1 (carrier-grade NAT"),
        ("http://0.0.0.0:{port}/", "policy http.deny_private forbids 0.0.0.0 (unspecified address"),
        ("http://[::1]:{port}/", "policy http.deny_private forbids ::1 (loopback)"),
        (
            "http://[::ffff:127.0.0.1]:{port}/",
            "policy http.deny_private forbids ::ffff:7f00:1 (loopback: 127.0.0.1 IPv4-mapped into IPv6)",
        ),
        ("http://[fd00::1]/", "policy http.deny_private forbids fd00::1 (unique-local)"),
        ("http://[fe80::1]/", "policy http.deny_private forbids fe80::1 (link-local)"),
    ],
)
def test_literal_private_addresses_are_refused_without_resolving(
    lua: Callable[..., Lua], server: Server, url: str, expected: str
) -> None:
    spy = SpyResolver()
    message = lua({}, resolver=spy).error(f'http.get("{url.format(port=server.port)}")')
    assert expected in message
    assert spy.asked == []  # refused on the URL, before any resolution or connection
    assert server.seen == []


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("localhost", "host 'localhost' resolves to it"),
        ("2130706433", "host '2130706433' resolves to it"),  # decimal 127.0.0.1
        ("0x7f.1", "host '0x7f.1' resolves to it"),  # hexadecimal, short form
        ("127.1", "host '127.1' resolves to it"),  # short form
    ],
)
def test_names_and_odd_ip_spellings_are_checked_after_resolution(
    lua: Callable[..., Lua], server: Server, host: str, shown: str
) -> None:
    spy = SpyResolver()
    message = lua({}, resolver=spy).error(f'http.get("http://{host}:{server.port}/echo")')
    assert "http.get: policy http.deny_private forbids" in message
    assert "(loopback)" in message and shown in message
    assert spy.asked == [host]
    assert server.seen == []


def test_octal_ip_spelling_is_an_invalid_url(lua: Callable[..., Lua], server: Server) -> None:
    spy = SpyResolver()
    message = lua({}, resolver=spy).error(f'http.get("http://0177.0.0.1:{server.port}/")')
    assert "http.get: invalid URL" in message and "Invalid IPv4 address" in message
    assert spy.asked == [] and server.seen == []


def test_denied_hosts_names_wildcards_and_networks(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua(
        {"deny_private": False, "denied_hosts": ["evil.example", "*.bad.example", "127.0.0.0/8"]}
    )
    assert (
        "policy http.denied_hosts forbids host 'evil.example' (entry 'evil.example')"
        in runner.error('http.get("http://EVIL.example./")')
    )
    assert (
        "policy http.denied_hosts forbids host 'a.b.bad.example' (entry '*.bad.example')"
        in runner.error('http.get("http://a.b.bad.example/")')
    )
    # a network entry also applies to what a name resolves to
    message = runner.error(f'http.get("http://localhost:{server.port}/")')
    assert (
        "policy http.denied_hosts forbids 127.0.0.1 (host 'localhost' resolves to it) (entry '127.0.0.0/8')"
        in message
    )
    assert server.seen == []


def test_allowed_hosts_is_an_allow_list(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua({"deny_private": False, "allowed_hosts": ["127.0.0.1", "*.example.com"]})
    assert "policy http.allowed_hosts does not list host 'localhost'" in runner.error(
        f'http.get("http://localhost:{server.port}/echo")'
    )
    assert "policy http.allowed_hosts does not list host 'example.com'" in runner.error(
        'http.get("https://example.com/")'
    )
    assert server.seen == []


def test_scheme_not_allowed(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua({**LOOPBACK, "allowed_schemes": ["https"]})
    message = runner.error(f'http.get("{server.url("/echo")}")')
    assert "policy http.allowed_schemes forbids scheme 'http' (allowed: https)" in message
    assert "policy http.allowed_schemes forbids scheme 'file'" in runner.error(
        'http.get("file://localhost/etc/passwd")'
    )
    assert server.seen == []


# --- hostile: redirects -----------------------------------------------------------------


def test_redirect_to_a_denied_host_is_refused(
    lua: Callable[..., Lua], twin_servers: tuple[Server, Server]
) -> None:
    good, attacker = twin_servers
    policy = {
        "deny_private": False,
        "denied_hosts": ["127.0.0.2", "169.254.0.0/16", "evil.example"],
    }
    runner = lua(policy)
    for target, expected in [
        (attacker.url("/echo"), "policy http.denied_hosts forbids 127.0.0.2 (entry '127.0.0.2')"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "forbids 169.254.169.254 (entry '169.254.0.0/16')",
        ),
        ("http://evil.example/", "forbids host 'evil.example'"),
        ("file:///etc/passwd", "policy http.allowed_schemes forbids scheme 'file'"),
    ]:
        message = runner.error(
            f'http.get("{good.url("/redirect")}", {{ query = {{ to = "{target}" }} }})'
        )
        assert expected in message, message
    assert [s.path for s in good.seen] == ["/redirect"] * 4  # only the first hop was sent
    assert attacker.seen == []


def test_redirect_outside_allowed_hosts_is_refused_with_fake_resolver(
    lua: Callable[..., Lua], server: Server
) -> None:
    """Only 'api.test' is allowed (fake DNS: it resolves to the local server); its
    redirect to 'localhost' is checked like a first request, and refused."""
    runner = lua(
        {"deny_private": False, "allowed_hosts": ["api.test"]},
        resolver=lambda host, port: ["127.0.0.1"] if host == "api.test" else ["203.0.113.9"],
    )
    base = f"http://api.test:{server.port}"
    message = runner.error(
        f'http.get("{base}/redirect", {{ query = {{ to = "http://localhost:{server.port}/echo" }} }})'
    )
    assert "policy http.allowed_hosts does not list host 'localhost'" in message
    assert [s.path for s in server.seen] == ["/redirect"]
    assert server.seen[0].headers["host"] == f"api.test:{server.port}"  # the name, not the IP


def test_credentials_do_not_follow_a_redirect_to_another_host(
    lua: Callable[..., Lua], twin_servers: tuple[Server, Server]
) -> None:
    good, other = twin_servers
    runner = lua({"deny_private": False, "allowed_hosts": ["127.0.0.1", "127.0.0.2"]})
    r = to_py(
        runner.run(
            f"""return http.get("{good.url("/redirect")}", {{
              query = {{ to = "{other.url("/echo")}" }},
              headers = {{ Authorization = "Bearer s3cret" }} }})"""
        )
    )
    assert r["status"] == 200
    assert good.seen[0].headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in other.seen[0].headers


def test_redirect_loop_stops_at_max_redirects(lua: Callable[..., Lua], server: Server) -> None:
    message = lua({**LOOPBACK, "max_redirects": 3}).error(f'http.get("{server.url("/loop")}")')
    assert "was redirected more than policy http.max_redirects (3) times" in message
    assert len(server.seen) == 4  # the request plus 3 followed redirects, then stop


# --- hostile: DNS rebinding ----------------------------------------------------------------


def test_rebinding_name_connects_only_to_the_checked_address_with_fake_resolver(
    lua: Callable[..., Lua], twin_servers: tuple[Server, Server]
) -> None:
    """A rebinding DNS answers 127.0.0.1 first and 127.0.0.2 (denied) afterwards. A
    check-then-connect-by-name client would reach 127.0.0.2; Rivet resolves once per
    connection and connects to the address it checked."""
    good, attacker = twin_servers
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    runner = lua({"deny_private": False, "denied_hosts": ["127.0.0.2"]}, resolver=rebinding)
    r = to_py(runner.run(f'return http.get("http://rebind.test:{good.port}/echo")'))
    assert r["status"] == 200
    assert asked == ["rebind.test"]
    assert len(good.seen) == 1 and attacker.seen == []
    message = runner.error(f'http.get("http://rebind.test:{good.port}/echo")')
    assert (
        "policy http.denied_hosts forbids 127.0.0.2 (host 'rebind.test' resolves to it)" in message
    )
    assert attacker.seen == []


def test_one_bad_address_among_several_refuses_the_name_with_fake_resolver(
    lua: Callable[..., Lua], twin_servers: tuple[Server, Server]
) -> None:
    good, attacker = twin_servers
    runner = lua(
        {"deny_private": False, "denied_hosts": ["127.0.0.2"]},
        resolver=lambda host, port: ["127.0.0.1", "127.0.0.2"],
    )
    message = runner.error(f'http.get("http://mixed.test:{good.port}/echo")')
    assert "policy http.denied_hosts forbids 127.0.0.2" in message
    assert good.seen == [] and attacker.seen == []


# --- hostile: rate limit ----------------------------------------------------------------------


def test_rate_limit_burst_refuses_the_extra_calls(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua({**LOOPBACK, "rate": 0.1, "burst": 3, "max_wait": 0})
    got = to_py(
        runner.run(
            f"""local out = {{}}
            for i = 1, 6 do
              local ok, r = pcall(function() return http.get("{server.url("/echo")}") end)
              out[i] = ok and tostring(r.status) or r
            end
            return out"""
        )
    )
    assert got[:3] == ["200", "200", "200"]
    for message in got[3:]:
        assert "http.get: policy http.rate exceeded (0.1 requests/s, burst 3)" in message
        assert "longer than http.max_wait (0 s)" in message
    assert len(server.seen) == 3  # the refused calls never reached the server


def test_rate_limit_waits_up_to_max_wait(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua({**LOOPBACK, "rate": 20, "burst": 1, "max_wait": 1})
    started = time.monotonic()
    runner.run(f'for _ = 1, 4 do http.get("{server.url("/echo")}") end')
    assert time.monotonic() - started >= 0.14  # 3 waits of 50 ms (lower bound only)
    assert len(server.seen) == 4


def test_every_redirect_hop_takes_a_token(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua({**LOOPBACK, "rate": 0.1, "burst": 2, "max_wait": 0})
    runner.run(f'http.get("{server.url("/redirect")}", {{ query = {{ to = "/echo" }} }})')
    assert "policy http.rate exceeded" in runner.error(f'http.get("{server.url("/echo")}")')
    assert len(server.seen) == 2


# --- hostile: response size ---------------------------------------------------------------


def test_oversized_streamed_response_is_cut_off(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua({**LOOPBACK, "max_response_bytes": MiB})
    message = runner.error(
        f"""local r = http.get("{server.url("/big")}")
        leaked = r"""
    )
    assert (
        "response body of more than 1048576 bytes exceeds policy http.max_response_bytes (1048576 bytes)"
        in message
    )
    assert "nothing was returned" in message
    assert runner.sandbox.env["leaked"] is None
    deadline = time.monotonic() + 5
    while not server.sent_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    # the client stopped reading: the server could push only a little past the cap
    # (socket buffers), nowhere near the 64 MiB it offered
    assert server.sent_bytes and server.sent_bytes[0] < 16 * MiB


def test_declared_oversized_response_is_refused_before_reading(
    lua: Callable[..., Lua], server: Server
) -> None:
    message = lua({**LOOPBACK, "max_response_bytes": MiB}).error(
        f'http.get("{server.url("/declared")}")'
    )
    assert (
        "response body of 52428800 bytes (Content-Length) exceeds policy http.max_response_bytes"
        in message
    )


def test_head_of_a_large_resource_is_not_refused(lua: Callable[..., Lua], server: Server) -> None:
    runner = lua({**LOOPBACK, "max_response_bytes": MiB})
    r = to_py(
        runner.run(f'return http.request({{ method = "HEAD", url = "{server.url("/declared")}" }})')
    )
    assert (
        r["status"] == 200 and r["body"] == "" and r["headers"]["content-length"] == str(50 * MiB)
    )


def test_gzip_bomb_is_stopped_at_the_cap(lua: Callable[..., Lua], server: Server) -> None:
    message = lua({**LOOPBACK, "max_response_bytes": MiB}).error(
        f'http.get("{server.url("/bomb")}")'
    )
    assert "exceeds policy http.max_response_bytes (1048576 bytes)" in message


# --- hostile: slow servers ----------------------------------------------------------------------


def test_slow_server_times_out(lua: Callable[..., Lua], server: Server) -> None:
    started = time.monotonic()
    message = lua(LOOPBACK).error(f'http.get("{server.url("/slow")}", {{ timeout = 0.3 }})')
    assert "http.get: GET " in message and "/slow timed out after 0.3 s" in message
    assert time.monotonic() - started < 3


def test_dripping_server_hits_the_overall_timeout(lua: Callable[..., Lua], server: Server) -> None:
    """One byte every 50 ms never trips a per-read timeout; the call's deadline does."""
    started = time.monotonic()
    message = lua(LOOPBACK).error(f'http.get("{server.url("/drip")}", {{ timeout = 0.5 }})')
    assert "/drip timed out after 0.5 s" in message
    assert time.monotonic() - started < 3


def test_default_timeout_applies(lua: Callable[..., Lua], server: Server) -> None:
    message = lua({**LOOPBACK, "default_timeout": 0.3}).error(f'http.get("{server.url("/slow")}")')
    assert "timed out after 0.3 s" in message


def test_cancel_interrupts_a_blocked_call(lua: Callable[..., Lua], server: Server) -> None:
    cancel = CancelToken()
    runner = lua(LOOPBACK, cancel=cancel)
    timer = threading.Timer(0.3, cancel.cancel, args=("job cancelled by test",))
    timer.start()
    started = time.monotonic()
    try:
        message = runner.error(f'http.get("{server.url("/slow")}", {{ timeout = 20 }})')
    finally:
        timer.cancel()
    assert "job cancelled by test" in message
    assert time.monotonic() - started < 5
