"""The CLI pointed at a server that is not Rivet (a real HTTP server on loopback) says
what answered and what was expected, never that server's page; a URL ending in
``/api`` reaches the real Rivet server it names (issue 14)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from live_rivet import serve_http
from typer.testing import CliRunner, Result

from rivet.cli.main import app

PAGE = (
    b"<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
    b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
    b"<hr><address>SomeServer/2.4 Port 8080</address></body></html>"
)


class _Handler(BaseHTTPRequestHandler):
    status = 404

    def _answer(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


class _Ok(_Handler):
    status = 200


class _HealthOnly(_Handler):
    """Answers /api/health as Rivet does, everything else with a 404 page: what a
    newer CLI sees from an older server behind a proxy that hides the JSON errors."""

    def do_GET(self) -> None:
        if self.path != "/api/health":
            return self._answer()
        body = b'{"status": "ok", "version": "0.0.1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def not_rivet() -> Iterator[str]:
    """A plain HTTP server answering 404 with an HTML page to every request."""
    with serve_http(_Handler) as url:
        yield url


@pytest.fixture
def html_everywhere() -> Iterator[str]:
    """A server answering 200 with an HTML page to everything (a catch-all web app)."""
    with serve_http(_Ok) as url:
        yield url


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Callable[..., Result]:
    for name in [n for n in os.environ if n.startswith("RIVET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RIVET_HOME", str(tmp_path))

    def invoke(server: str, *args: str) -> Result:
        return CliRunner().invoke(app, [*args, "--server", server], catch_exceptions=False)

    return invoke


EXPECTED = (
    "is this a Rivet server? Check --server or RIVET_SERVER: it is the server's root, "
    "e.g. http://127.0.0.1:8420, and should not end in /api"
)


@pytest.mark.parametrize(
    "args", [("pipeline", "list"), ("job", "show", "abcd1234"), ("runner", "list")]
)
def test_a_server_that_is_not_rivet_is_named_not_printed(
    run: Callable[..., Result], not_rivet: str, args: tuple[str, ...]
) -> None:
    result = run(not_rivet, *args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {not_rivet} answered HTTP 404 to /api/health ('404 Not Found'): {EXPECTED}\n"
    )
    assert "<" not in result.output and "SomeServer" not in result.output


def test_a_server_answering_html_with_200_is_not_taken_for_rivet(
    run: Callable[..., Result], html_everywhere: str
) -> None:
    result = run(html_everywhere, "pipeline", "list")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {html_everywhere} answered HTTP 200 to /api/health with an HTML page, not "
        f"Rivet's JSON ('404 Not Found'): {EXPECTED}\n"
    )


def test_a_url_ending_in_api_reaches_the_rivet_server(
    run: Callable[..., Result], rivet_server: Any
) -> None:
    for suffix in ("/api", "/api/", "/API//"):
        result = run(rivet_server.url + suffix, "pipeline", "list")
        assert result.exit_code == 0, result.output
        assert "error" not in result.output


def test_a_rivet_health_without_the_route_says_versions_may_differ(
    run: Callable[..., Result],
) -> None:
    with serve_http(_HealthOnly) as url:
        result = run(url, "pipeline", "list")
        assert result.exit_code == 1
        assert result.stderr.startswith(
            f"error: the Rivet server at {url} answered HTTP 404 to GET /api/pipelines "
            "without a Rivet answer (client "
        )
        assert "server 0.0.1: versions may differ)" in result.stderr
