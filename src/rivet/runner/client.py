"""``RunnerClient``: the runner's side of the ``/api/runner/*`` protocol, over httpx.

Each method makes one attempt and sorts failures into what the caller can do:

    RivetError
    └── RunnerClientError
        ├── ServerUnavailable   no answer, a timeout, HTTP 5xx or 429: retry with backoff
        │                       (503: the server's database is down; Retry-After is
        │                       the shortest wait before the next attempt)
        ├── TokenRejected       401: the runner (or registration) token is not valid
        ├── JobGone             403/404 on a job route: the job is no longer this runner's
        │   └── AttemptRefused  409 on a job route: the server ended this attempt (its
        │                       lease ran out…); stop the job, report nothing more
        └── RequestRejected     any other 4xx: retrying the same request cannot help
            └── BodyTooLarge 413: the body is over the server's size limit; a
                                smaller request (half a log batch) may pass

:func:`deliver` retries a call until the server takes it. Every request is idempotent
on the server (logs by sequence number, completion once), so resending after a lost
answer is always safe. One client is shared by every thread of a runner: httpx's
``Client`` and its connection pool are thread-safe.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from rivet import __version__
from rivet.errors import RivetError
from rivet.protocol import (
    API_VERSION,
    Ack,
    ClaimRequest,
    ErrorResponse,
    Heartbeat,
    JobAssignment,
    JobCompletion,
    LogBatch,
    RegisterRequest,
    RegisterResponse,
    RestartAnswer,
    RestartReport,
    RunnerView,
    StageUpdate,
)
from rivet.runner.retry import Backoff, Connectivity

__all__ = [
    "AttemptRefused",
    "BodyTooLarge",
    "JobGone",
    "RequestRejected",
    "RunnerClient",
    "RunnerClientError",
    "ServerUnavailable",
    "TokenRejected",
    "deliver",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# A long poll's answer may take ``wait_seconds``; give the server this much more before
# treating the request as lost (the server stops claiming once we disconnect).
CLAIM_GRACE = 15.0


class RunnerClientError(RivetError):
    """A runner request failed; the subclass says whether retrying can help."""


class ServerUnavailable(RunnerClientError):
    """No usable answer: connection refused or dropped, timeout, HTTP 5xx/429.
    ``retry_after``: the server's Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class TokenRejected(RunnerClientError):
    """HTTP 401: the token is missing, wrong, revoked or (registration) already used.
    ``removed``: the server says an admin removed this runner (code ``runner_removed``),
    so registering again with the same registration token is pointless."""

    def __init__(self, message: str, *, removed: bool = False) -> None:
        self.removed = removed
        super().__init__(message)


class JobGone(RunnerClientError):
    """HTTP 403/404 on a job: another runner holds it, or it no longer exists."""


class AttemptRefused(JobGone):
    """HTTP 409 on a job route: the server already ended this attempt (lease expired,
    past its deadline, reported dead) and stores nothing more of it."""


class RequestRejected(RunnerClientError):
    """Any other 4xx: the request itself is wrong (a bug or a version mismatch)."""


class BodyTooLarge(RequestRejected):
    """HTTP 413: the body is larger than the server accepts (RIVET_MAX_BODY_BYTES)."""


class RunnerClient:
    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        connectivity: Connectivity | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.connectivity = connectivity or Connectivity(self.server)
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.server,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"rivet-runner/{__version__}", "X-Rivet-Api": API_VERSION},
        )

    def close(self) -> None:
        self._http.close()

    # --- endpoints ------------------------------------------------------------------

    def register(self, request: RegisterRequest) -> RegisterResponse:
        response = self._send("POST", "/api/runners/register", request, "registration", auth=False)
        return _parse(response, RegisterResponse)

    def whoami(self) -> RunnerView:
        """This runner as the server stores it: the tags and plugins claims match."""
        return _parse(self._send("GET", "/api/runner/self", None, "runner lookup"), RunnerView)

    def claim(self, request: ClaimRequest) -> JobAssignment | None:
        """Long poll; ``None`` when no matching job came within ``wait_seconds``."""
        timeout = httpx.Timeout(self._timeout, read=request.wait_seconds + CLAIM_GRACE)
        response = self._send("POST", "/api/runner/claim", request, "claim", timeout=timeout)
        if response.status_code == 204:
            return None
        return _parse(response, JobAssignment)

    def restarted(self, jobs: list[str]) -> RestartAnswer:
        """Tell the server this runner (re)started: it ends the attempts left running."""
        body = RestartReport(jobs=jobs)
        return _parse(
            self._send("POST", "/api/runner/restarted", body, "restart report"), RestartAnswer
        )

    # ``attempt``: the assignment's; None only for callers that predate attempts.

    def post_logs(self, job_id: str, batch: LogBatch, attempt: int | None = None) -> Ack:
        return self._ack(_job_path(job_id, "logs", attempt), batch, "log upload")

    def update_stage(self, job_id: str, update: StageUpdate, attempt: int | None = None) -> Ack:
        return self._ack(_job_path(job_id, "stages", attempt), update, "stage update")

    def heartbeat(
        self, job_id: str, attempt: int | None = None, log_problem: str | None = None
    ) -> Ack:
        body = Heartbeat(log_problem=log_problem) if log_problem is not None else None
        return self._ack(_job_path(job_id, "heartbeat", attempt), body, "heartbeat")

    def complete(self, job_id: str, completion: JobCompletion, attempt: int | None = None) -> Ack:
        return self._ack(_job_path(job_id, "complete", attempt), completion, "completion")

    # --- raw bytes (artifacts, sources) ------------------------------------------------

    def upload_raw(
        self, path: str, params: dict[str, str | int], body: Iterator[bytes], size: int, what: str
    ) -> httpx.Response:
        """POST ``body`` (chunks, ``size`` bytes) as application/octet-stream to a job
        route; the answer, failures sorted like every other call."""
        headers = self._auth({"Content-Type": "application/octet-stream"})
        headers["Content-Length"] = str(size)
        return self._checked(
            what,
            lambda: self._http.request(
                "POST", path, params=params, content=body, headers=headers, timeout=None
            ),
            job_route=True,
        )

    @contextlib.contextmanager
    def download_raw(
        self, path: str, params: dict[str, str | int], what: str
    ) -> Iterator[httpx.Response]:
        """GET a job route's streamed bytes: the open response (read ``iter_bytes``)."""
        request = self._http.build_request(
            "GET", path, params=params, headers=self._auth({}), timeout=self._timeout
        )
        response = self._checked(
            what, lambda: self._http.send(request, stream=True), job_route=True
        )
        try:
            yield response
        finally:
            response.close()

    def get_json(self, path: str, params: dict[str, str | int], model: type[M], what: str) -> M:
        headers = self._auth({})
        response = self._checked(
            what,
            lambda: self._http.request("GET", path, params=params, headers=headers),
            job_route=True,
        )
        return _parse(response, model)

    def _auth(self, headers: dict[str, str]) -> dict[str, str]:
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    # --- plumbing -------------------------------------------------------------------

    def _ack(self, path: str, body: BaseModel | None, what: str) -> Ack:
        return _parse(self._send("POST", path, body, what, job_route=True), Ack)

    def _send(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        what: str,
        *,
        auth: bool = True,
        job_route: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        content = body.model_dump_json().encode() if body is not None else b""
        headers["Content-Type"] = "application/json"
        return self._checked(
            what,
            lambda: self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                timeout=timeout if timeout is not None else self._timeout,
            ),
            job_route=job_route,
        )

    def _checked(
        self, what: str, call: Callable[[], httpx.Response], *, job_route: bool
    ) -> httpx.Response:
        """``call()``'s answer when it is a success; the errors of the module docstring
        otherwise (a streamed answer is read first, so its message can be shown)."""
        try:
            response = call()
        except httpx.TransportError as exc:
            reason = _reason(exc)
            self.connectivity.failed(what, reason)
            raise ServerUnavailable(f"{what}: {reason}") from None
        status = response.status_code
        if status >= 400 and not response.is_stream_consumed:
            try:
                response.read()
            except httpx.TransportError:
                pass
            finally:
                response.close()
        if status >= 500 or status == 429:
            # The server answered: its trouble (database down, disk full) is told as
            # what it is, never as "unreachable".
            reason = f"HTTP {status}: {_message(response)}"
            self.connectivity.failed(what, reason, answered=True)
            raise ServerUnavailable(f"{what}: {reason}", _retry_after(response))
        self.connectivity.succeeded()
        if status == 401:
            removed = _code(response) == "runner_removed"
            raise TokenRejected(f"{what}: {_message(response)}", removed=removed)
        if job_route and status in (403, 404):
            raise JobGone(f"{what}: {_message(response)}")
        if job_route and status == 409:
            raise AttemptRefused(f"{what}: {_message(response)}")
        if status == 413:
            raise BodyTooLarge(f"{what}: HTTP 413: {_message(response)}")
        if status >= 400:
            raise RequestRejected(f"{what}: HTTP {status}: {_message(response)}")
        return response


def deliver(
    call: Callable[[], T],
    backoff: Backoff,
    give_up: threading.Event,
    on_retry: Callable[[ServerUnavailable], None] | None = None,
) -> T | None:
    """``call()`` until it stops raising :class:`ServerUnavailable`; ``None`` once
    ``give_up`` is set. Other errors propagate."""
    backoff.reset()
    while not give_up.is_set():
        try:
            return call()
        except ServerUnavailable as exc:
            if on_retry is not None:
                on_retry(exc)
            delay = backoff.next_delay()
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, backoff.cap))
            give_up.wait(delay)
    return None


def _job_path(job_id: str, what: str, attempt: int | None) -> str:
    path = f"/api/runner/jobs/{job_id}/{what}"
    return path if attempt is None else f"{path}?attempt={attempt}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None  # absent, or an HTTP date (no server of ours sends one)
    return seconds if 0 <= seconds <= 3600 else None


def _parse(response: httpx.Response, model: type[M]) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise RequestRejected(
            f"unexpected answer to {response.request.url.path}: {exc.errors()[0]['msg']} "
            "(runner and server versions may differ)"
        ) from None


def _code(response: httpx.Response) -> str | None:
    try:
        return ErrorResponse.model_validate_json(response.content).error.code
    except (ValidationError, ValueError):
        return None


def _message(response: httpx.Response) -> str:
    try:
        return ErrorResponse.model_validate_json(response.content).error.message
    except (ValidationError, ValueError):
        return response.text.strip()[:200] or response.reason_phrase


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return text or type(exc).__name__
