"""The httpx transport behind the ``http`` module: resolve once, check, connect to
the checked address.

Why a custom transport: httpx (through httpcore) normally resolves the host name
itself inside ``socket.create_connection``. Checking the name's addresses
beforehand and then letting httpx resolve again leaves a window for DNS rebinding
(the first answer public, the second 127.0.0.1). Here the resolution, the policy
check and the connection happen in one place, :meth:`GuardedBackend.connect_tcp`,
an httpcore *network backend*: it resolves the host once, refuses the connection
unless every address passes :meth:`HttpGuard.check_addresses`, and connects to one
of those very addresses. httpcore still knows the original host, so the ``Host``
header, TLS SNI and certificate verification all use the name, not the address.

The transport also enforces the call's overall deadline (every socket operation's
timeout is clamped to the time left, so a server dripping one byte at a time cannot
stretch a call beyond its timeout) and lets another thread abort the call by
shutting its sockets down (job cancel). Proxies never apply: the client is built
with ``trust_env=False`` and no proxy, since a proxy would connect on our behalf to
addresses we never checked.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpcore
import httpx

from rivet.engine.modules.http_module.guard import HttpGuard

__all__ = [
    "CallSockets",
    "Deadline",
    "GuardedBackend",
    "GuardedTransport",
    "ResolveError",
    "Resolver",
    "system_resolver",
]

Resolver = Callable[[str, int], list[str]]


class ResolveError(Exception):
    """The host name did not resolve (message is the resolver's reason)."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host`` from the system resolver, in its preference order.

    Runs on the calling thread without its own timeout: the resolver's own limits
    (``resolv.conf`` timeout and attempts) bound it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolveError(str(exc)) from None
    found: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class Deadline:
    """The end of one call, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def restart(self) -> None:
        self.at = time.monotonic() + self.seconds

    @property
    def left(self) -> float:
        return self.at - time.monotonic()

    def clamp(self, timeout: float | None) -> float:
        """``timeout`` shortened to the time left; raises once nothing is left."""
        left = self.left
        if left <= 0:
            raise httpcore.ReadTimeout(f"overall timeout of {self.seconds:g} s reached")
        return left if timeout is None else min(timeout, left)


class CallSockets:
    """Sockets opened for one call, so that a cancel can interrupt a blocked read."""

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.aborted: str | None = None

    def add(self, stream: httpcore.NetworkStream) -> None:
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                aborted = self.aborted
            if aborted is not None:
                self._shutdown(sock)

    def abort(self, reason: str) -> None:
        """Safe from any thread: blocked reads and writes of the call fail at once."""
        with self._lock:
            self.aborted = reason
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # OSError: already closed or never connected, so nothing to interrupt.
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(
        self, inner: httpcore.NetworkStream, deadline: Deadline, sockets: CallSockets
    ) -> None:
        self._inner = inner
        self._deadline = deadline
        self._sockets = sockets
        sockets.add(inner)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, self._deadline.clamp(timeout))
        return _DeadlineStream(tls, self._deadline, self._sockets)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore network backend for one call: resolve, check, pin, connect."""

    def __init__(
        self,
        guard: HttpGuard,
        resolver: Resolver,
        deadline: Deadline,
        sockets: CallSockets,
    ) -> None:
        self._guard = guard
        self._resolver = resolver
        self._deadline = deadline
        self._sockets = sockets
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolver(host, port)
        if not addresses:
            raise ResolveError("no addresses")
        self._guard.check_addresses(host, addresses)  # raises before any connect
        failure: Exception | None = None
        for address in addresses:  # only ever the addresses just checked
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=self._deadline.clamp(timeout),
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline, self._sockets)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not available to pipelines")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# httpcore errors as the httpx errors they stand for (what httpx's own transport does).
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise _translate(exc) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise _translate(exc) from exc


def _translate(exc: Exception) -> httpx.HTTPError:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc))
    return httpx.TransportError(str(exc))


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _mapped():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool that uses :class:`GuardedBackend`.
    One per call: its connections (and the redirect hops that reuse them) never
    outlive the call's deadline and cancel hook."""

    def __init__(self, backend: GuardedBackend, ssl_context: Any) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            network_backend=backend,
            max_connections=4,
            http1=True,
            http2=False,
            retries=0,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped():
            response = self._pool.handle_request(core)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
