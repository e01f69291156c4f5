"""How the client reads a server's answer: Rivet's ``{"error": …}`` envelope as an
``ApiError``, and, for an answer that is not Rivet's (another web server, a proxy's
page, a URL with a wrong path), a message saying what was reached and what was
expected, never the page itself (issue 14)."""

from __future__ import annotations

import re

import httpx
from pydantic import ValidationError

from rivet import __version__
from rivet.errors import ApiError
from rivet.protocol import ErrorBody, ErrorResponse

__all__ = [
    "PLAIN",
    "api_error",
    "error_body",
    "is_envelope",
    "is_json",
    "is_rivet_health",
    "not_rivet",
    "title_of",
]

# What a status means when the answer is not Rivet's JSON envelope (a proxy's page).
PLAIN = {
    413: "the request is larger than the server (or a proxy in front of it) accepts",
    422: "the server refused a field of the request",
    503: "the server is temporarily unavailable",
}


def api_error(response: httpx.Response) -> ApiError:
    """The server's ``{"error": {...}}`` answer as an ``ApiError`` (detail: ``ErrorBody``).

    A 503 says when to try again (``Retry-After``); a 413 or 422 carries the server's
    message, which names the limit or the field."""
    status = response.status_code
    retry = response.headers.get("Retry-After", "").strip()
    hint = f" (retry in {retry} s)" if status == 503 and retry.isdecimal() else ""
    try:
        body = ErrorResponse.model_validate_json(response.content).error
    except (ValidationError, ValueError):
        known = PLAIN.get(status)
        message = f"{known} (HTTP {status})" if known else f"the server answered HTTP {status}"
        if "html" in response.headers.get("Content-Type", "").lower():
            title = title_of(response)  # a proxy's page: its title, never its markup
            message += f": {kind_of(response)}" + (f" ({title!r})" if title else "")
        else:
            text = response.text.strip().replace("\n", " ")
            if text:
                message += f": {text[:200]}"
        return ApiError(status, message + hint, None)
    return ApiError(status, body.message + hint, body)


def is_json(response: httpx.Response) -> bool:
    """A body Rivet could have sent: JSON, an event stream, or nothing (204)."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return response.status_code == 204 or kind in ("application/json", "text/event-stream")


def is_envelope(response: httpx.Response) -> bool:
    try:
        ErrorResponse.model_validate_json(response.content)
    except (ValidationError, ValueError):
        return False
    return True


def is_rivet_health(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == "ok" and "version" in body


def kind_of(response: httpx.Response) -> str:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
    return "an HTML page" if kind == "text/html" else kind


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def title_of(response: httpx.Response) -> str:
    """An HTML page's title (one line, at most 80 characters), else ``""``: enough to
    recognise what answered, without printing the page."""
    match = _TITLE.search(response.text[:4096])
    return " ".join(match.group(1).split())[:80] if match else ""


def error_body(error: ApiError) -> ErrorBody | None:
    return error.detail if isinstance(error.detail, ErrorBody) else None


def not_rivet(response: httpx.Response, base_url: str, probe: httpx.Response | None) -> ApiError:
    """The error for ``response``, an answer that is not Rivet's, given ``probe``: the
    answer to ``/api/health`` (None: it could not be asked), which every Rivet server
    gives in JSON. If it did, the server is Rivet and lacks this route (versions may
    differ); if not, say what answered instead."""
    asked = response.request.url.path
    status = response.status_code
    if probe is not None and probe.status_code == 200 and is_rivet_health(probe):
        return ApiError(
            status,
            f"the Rivet server at {base_url} answered HTTP {status} to "
            f"{response.request.method} {asked} without a Rivet answer (client "
            f"{__version__}, server {probe.json().get('version')}: versions may differ)",
        )
    if probe is None:
        seen = f"answered HTTP {status} to {asked}"
    else:
        seen = f"answered HTTP {probe.status_code} to /api/health"
        if probe.status_code == 200:
            seen += f" with {kind_of(probe)}, not Rivet's JSON"
    title = title_of(probe if probe is not None else response)
    if title:
        seen += f" ({title!r})"
    return ApiError(
        status,
        f"{base_url} {seen}: is this a Rivet server? Check --server or RIVET_SERVER: it "
        "is the server's root, e.g. http://127.0.0.1:8420, and should not end in /api",
    )
