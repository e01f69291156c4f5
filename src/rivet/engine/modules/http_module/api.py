"""``http.get/post/put/patch/delete/request``: HTTP calls from the runner process.

Calls run synchronously on the job's Lua thread (they are runtime calls, refused
while the pipeline is being defined) and in the runner, never in a container, so
the ``[http]`` runner policy is the only gate: every request, and every redirect
hop, is checked by :class:`HttpGuard` before it is sent, its connection goes only
to addresses checked after resolution (``transport``), it takes a token from
the job's bucket (``rate_limit``), and its body is read under the size cap
(``body``). A non-2xx status is a normal result unless ``check = true``.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from rivet.engine.context import JobContext
from rivet.engine.modules.http_module.body import ACCEPT_ENCODING, UnsupportedEncoding, read_capped
from rivet.engine.modules.http_module.guard import HttpGuard
from rivet.engine.modules.http_module.options import RequestSpec, display_url, parse
from rivet.engine.modules.http_module.rate_limit import RateLimited, TokenBucket
from rivet.engine.modules.http_module.transport import (
    CallSockets,
    Deadline,
    GuardedBackend,
    GuardedTransport,
    ResolveError,
    Resolver,
    system_resolver,
)
from rivet.engine.policy.violation import PolicyViolation
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["USER_AGENT", "HttpModule", "install"]

USER_AGENT = "rivet-ci"

# The request and response bodies go through the json module's own encode/decode,
# captured at install time, so `opts.json` and `response.json` follow exactly what
# json.encode/json.decode document (json.null, empty tables, integers vs floats).
_GLUE = """
local impl, json_encode, json_decode = ...
local type, error, pcall, tostring, gsub = type, error, pcall, tostring, string.gsub
local rawget, ipairs = rawget, ipairs

-- Errors are raised at level 3: the pipeline line that called http.*. Options are
-- read raw, here as in Python (no __index).
local function call(fn, url, opts)
  local encoded
  if type(opts) == "table" and rawget(opts, "json") ~= nil then
    local ok, text = pcall(json_encode, rawget(opts, "json"))
    if not ok then
      local why = gsub(tostring(text), "^json%.encode: ", "")
      error(fn .. ": option 'json' cannot be encoded: " .. why, 3)
    end
    encoded = text
  end
  local ok, response, is_json = impl(fn, url, opts, encoded)
  if not ok then error(response, 3) end
  if is_json then
    local decoded, value = pcall(json_decode, response.body)
    if decoded then response.json = value end
  end
  return response
end

local http = {}
for _, verb in ipairs({ "get", "post", "put", "patch", "delete" }) do
  local fn = "http." .. verb
  http[verb] = function(url, opts)
    local response = call(fn, url, opts)
    return response
  end
end
function http.request(opts)
  local response = call("http.request", nil, opts)
  return response
end
return http
"""


class _Failure(Exception):
    """A request that could not complete; the message is for the pipeline author."""


@dataclass(frozen=True)
class _Outcome:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    encoding: str
    content_type: str
    url: httpx.URL
    hops: int


class HttpModule:
    """The ``http`` module of one job. ``resolver`` and ``clock`` are injectable so
    tests can play DNS answers that cannot be produced here and drive the bucket."""

    def __init__(
        self,
        sandbox: Sandbox,
        ctx: JobContext,
        *,
        resolver: Resolver = system_resolver,
        clock: Any = time.monotonic,
    ) -> None:
        self.sandbox = sandbox
        self.ctx = ctx
        self.policy = ctx.policy.http
        self.guard = HttpGuard(self.policy)
        self.bucket = TokenBucket(self.policy.rate, self.policy.burst, clock=clock)
        self.resolver = resolver
        self._ssl: ssl.SSLContext | None = None
        self._active: CallSockets | None = None
        ctx.cancel.on_cancel(self._on_cancel)

    # --- Lua entry point -----------------------------------------------------------

    def call(self, fn: Any, url: Any, opts: Any, encoded_json: Any) -> tuple[Any, bool]:
        """One ``http.*`` call from the glue: the response table and whether its body
        is JSON (the glue then decodes it with ``json.decode``)."""
        name = str(fn)
        ctx = self.ctx
        ctx.require_run_phase(name)
        if ctx.cancel.cancelled:
            raise LuaCallError(f"{name}: {ctx.cancel.reason}")
        method = None if name == "http.request" else name.removeprefix("http.").upper()
        try:
            spec = parse(name, self.policy, method, url, opts, encoded_json)
            started = time.monotonic()
            outcome = self._perform(spec)
        except (PolicyViolation, _Failure) as exc:
            raise LuaCallError(f"{name}: {exc}") from None
        where = f"{spec.method} {display_url(outcome.url)}"
        via = f", after {outcome.hops} redirect(s)" if outcome.hops else ""
        ctx.log(
            "debug",
            f"http: {where} -> {outcome.status} ({len(outcome.body)} bytes, "
            f"{time.monotonic() - started:.2f} s{via})",
        )
        if spec.check and not 200 <= outcome.status < 300:
            raise LuaCallError(f"{name}: {where} returned {_status_line(outcome)}")
        return self._to_lua(outcome, name), _is_json(outcome.content_type)

    # --- the request --------------------------------------------------------------

    def _perform(self, spec: RequestSpec) -> _Outcome:
        deadline = Deadline(spec.timeout)
        sockets = CallSockets()
        self._active = sockets
        backend = GuardedBackend(self.guard, self.resolver, deadline, sockets)
        transport = GuardedTransport(backend, self._ssl_context())
        where = f"{spec.method} {display_url(spec.url)}"
        try:
            with httpx.Client(
                transport=transport,
                trust_env=False,
                follow_redirects=False,
                timeout=spec.timeout,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
            ) as client:
                # Merged here: httpx's build_request would replace the URL's query.
                url = spec.url.copy_merge_params(list(spec.query)) if spec.query else spec.url
                request = client.build_request(
                    spec.method,
                    url,
                    headers=list(spec.headers),
                    content=spec.content,
                )
                return self._send(client, request, spec, deadline)
        except (PolicyViolation, _Failure):
            raise
        except Exception as exc:
            message = _failure_message(exc, spec, sockets)
            if message is None:
                raise  # a bug, not a network condition: the sandbox reports it as internal
            raise _Failure(f"{where}{message}") from None
        finally:
            self._active = None

    def _send(
        self, client: httpx.Client, request: httpx.Request, spec: RequestSpec, deadline: Deadline
    ) -> _Outcome:
        hops = 0
        while True:
            self.guard.check_url(request.url)  # the first URL and every redirect target
            self._take_token()
            if hops == 0:
                # Waiting for the first token is not the server's time; waits for
                # redirect hops are part of the call.
                deadline.restart()
            response = client.send(request, stream=True)
            try:
                target = response.next_request if spec.follow_redirects else None
                if target is not None:
                    if hops >= self.policy.max_redirects:
                        raise PolicyViolation(
                            "http.max_redirects",
                            f"{spec.method} {display_url(spec.url)} was redirected more than "
                            f"policy http.max_redirects ({self.policy.max_redirects}) times",
                        )
                    hops += 1
                    request = target
                    continue
                # HEAD, 204 and 304 have no body whatever Content-Length says.
                bodiless = request.method == "HEAD" or response.status_code in (204, 304)
                body = b"" if bodiless else read_capped(response, self.policy.max_response_bytes)
                return _Outcome(
                    status=response.status_code,
                    reason=response.reason_phrase,
                    headers=_lower_headers(response.headers),
                    body=body,
                    encoding=response.charset_encoding or "utf-8",
                    content_type=response.headers.get("content-type", ""),
                    url=request.url,
                    hops=hops,
                )
            finally:
                response.close()

    def _take_token(self) -> None:
        policy = self.policy
        try:
            wait = self.bucket.reserve(policy.max_wait)
        except RateLimited as exc:
            raise PolicyViolation(
                "http.rate",
                f"policy http.rate exceeded ({policy.rate:g} requests/s, burst {policy.burst}): "
                f"the next request would wait {exc.wait:.2f} s, longer than "
                f"http.max_wait ({policy.max_wait:g} s)",
            ) from None
        if wait > 0 and self.ctx.cancel.wait(wait):
            raise _Failure(self.ctx.cancel.reason)

    def _ssl_context(self) -> ssl.SSLContext:
        # Loading the CA bundle costs tens of milliseconds: once per job. The runner
        # operator's SSL_CERT_FILE / SSL_CERT_DIR are honoured (not the pipeline's).
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(trust_env=True)
        return self._ssl

    def _on_cancel(self, reason: str) -> None:
        active = self._active
        if active is not None:
            active.abort(reason)

    # --- results ------------------------------------------------------------------

    def _to_lua(self, outcome: _Outcome, name: str) -> Any:
        return self.sandbox.table(
            {
                "status": outcome.status,
                "ok": 200 <= outcome.status < 300,
                "headers": outcome.headers,
                "body": _decode(outcome.body, outcome.encoding),
                "url": str(outcome.url.copy_with(username=None, password=None)),
            },
            name,
        )


def _failure_message(exc: Exception, spec: RequestSpec, sockets: CallSockets) -> str | None:
    """What went wrong, as the tail of ``"GET url..."``; None for unexpected errors."""
    if sockets.aborted is not None:  # cancelled: whatever broke, that is why
        return f": {sockets.aborted}"
    if isinstance(exc, httpx.TimeoutException):
        return f" timed out after {spec.timeout:g} s"
    if isinstance(exc, ResolveError):
        return f": cannot resolve host '{spec.url.host}': {exc}"
    if isinstance(exc, UnsupportedEncoding):
        return f": {exc}"
    if isinstance(exc, httpx.ConnectError):
        return f": cannot connect: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f": the server sent an invalid response: {exc}"
    if isinstance(exc, httpx.HTTPError | httpx.InvalidURL):
        return f": {type(exc).__name__}: {exc}"
    return None


def _status_line(outcome: _Outcome) -> str:
    line = f"{outcome.status} {outcome.reason}".strip()
    snippet = _decode(outcome.body[:400], outcome.encoding)
    snippet = " ".join(snippet.split())[:200]
    return f"{line}: {snippet}" if snippet else line


def _lower_headers(headers: httpx.Headers) -> dict[str, str]:
    """Names lower-cased; a repeated header's values joined with ', ' (RFC 9110)."""
    merged: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _decode(body: bytes, encoding: str) -> str:
    try:
        return body.decode(encoding, "replace")
    except LookupError:  # an unknown charset name: UTF-8 is the best guess
        return body.decode("utf-8", "replace")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def install(
    sandbox: Sandbox,
    ctx: JobContext,
    *,
    resolver: Resolver = system_resolver,
    clock: Any = time.monotonic,
) -> None:
    codec = sandbox.env["json"]
    if codec is None:
        raise RuntimeError("the http module needs the json module installed before it")
    module = HttpModule(sandbox, ctx, resolver=resolver, clock=clock)
    sandbox.env["http"] = sandbox.eval_lua(
        _GLUE,
        sandbox.expose(module.call, "http", raw=True),
        codec["encode"],
        codec["decode"],
    )
