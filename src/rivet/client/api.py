"""``RivetClient``: the typed HTTP client the CLI (and scripts) use to talk to a server.

One method per endpoint, each returning :mod:`rivet.protocol` models. Errors:

    RivetError
    ├── ApiError                 the server answered non-2xx; ``str()`` is its message,
    │                            ``.status`` the HTTP status, ``.detail`` the ``ErrorBody``
    ├── ServerUnreachableError   no connection (refused, DNS, timeout, dropped for good)
    └── ConfigError              an admin-only call without an admin token

The client is synchronous (the CLI is) and not thread-safe; use one per thread.
``stream_logs`` follows ``/api/jobs/{id}/logs/stream`` and reconnects from the last
sequence number it saw when the connection drops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from rivet import __version__
from rivet.client.answers import (
    PLAIN,
    api_error,
    error_body,
    is_envelope,
    is_json,
    not_rivet,
)
from rivet.client.sse import parse_sse
from rivet.errors import ApiError, ConfigError, RivetError
from rivet.protocol import (
    JobLaunch,
    JobLaunched,
    JobPage,
    JobView,
    LogLine,
    LogPage,
    PipelineCreate,
    PipelinePage,
    PipelineView,
    RegistrationTokenCreate,
    RegistrationTokenView,
    RunnerUpdate,
    RunnerView,
    Scalar,
    SourceInfo,
)

__all__ = [
    "JobUpdate",
    "RivetClient",
    "ServerUnreachableError",
    "StreamItem",
    "api_error",
    "error_body",
]

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT = 30.0
# Longer than the server's SSE keep-alive (15 s by default), so a quiet job is not a drop.
STREAM_READ_TIMEOUT = 60.0


# Answers after which a log stream is opened again (see RivetClient.stream_logs).
_STREAM_RETRY_STATUSES = frozenset({502, 503, 504})


class ServerUnreachableError(RivetError):
    """The server could not be reached (or the connection was lost for good)."""

    def __init__(self, url: str, reason: str = "") -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the Rivet server at {url} (is it running? start one with "
            "'rivet up' or 'rivet server')" + (f": {reason}" if reason else "")
        )


@dataclass(frozen=True)
class JobUpdate:
    """A job's state from the log stream; ``final`` for the last event of the stream."""

    job: JobView
    final: bool = False


StreamItem = LogLine | JobUpdate


def _segment(ref: str) -> str:
    return quote(ref, safe="")


class RivetClient:
    def __init__(
        self,
        base_url: str,
        *,
        admin_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        reconnect_for: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``reconnect_for``: how long ``stream_logs`` keeps trying to reconnect after a
        drop before raising ``ServerUnreachableError``."""
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.reconnect_for = reconnect_for
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"rivet-cli/{__version__}", "Accept": "application/json"},
        )

    # --- plumbing -------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RivetClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _admin_headers(self) -> dict[str, str]:
        if not self.admin_token:
            raise ConfigError(
                "this command needs the server's admin token: pass --admin-token or set "
                "RIVET_ADMIN_TOKEN (a local server writes it to $RIVET_HOME/admin-token)"
            )
        return {"Authorization": f"Bearer {self.admin_token}"}

    def _credentials(self, headers: dict[str, str] | None) -> dict[str, str] | None:
        """Every request carries the client's token when it has one: the server decides
        what the request may do from who sends it (pipeline and secret permissions)."""
        if not self.admin_token or (headers and "Authorization" in headers):
            return headers
        return {**(headers or {}), "Authorization": f"Bearer {self.admin_token}"}

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = self._credentials(headers)
        try:
            response = self._http.request(
                method, path, json=json_body, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise ServerUnreachableError(self.base_url, _reason(exc)) from None
        if response.is_error:
            raise self._error(response)
        if not is_json(response):
            raise self._not_rivet(response)
        return response

    def _error(self, response: httpx.Response) -> ApiError:
        """Rivet's error answer, or, for an answer that is not Rivet's (no JSON error
        envelope: another server's page, a URL ending in ``/api``), what was reached."""
        status = response.status_code
        if is_envelope(response) or status in PLAIN or status >= 500:
            return api_error(response)
        return self._not_rivet(response)

    def _not_rivet(self, response: httpx.Response) -> ApiError:
        try:
            probe: httpx.Response | None = self._http.get("/api/health")
        except httpx.TransportError:
            probe = None
        return not_rivet(response, self.base_url, probe)

    def _get(self, path: str, model: type[M], **kwargs: Any) -> M:
        return _parse(self._request("GET", path, **kwargs), model)

    def _get_list(self, path: str, model: type[M], **kwargs: Any) -> list[M]:
        response = self._request("GET", path, **kwargs)
        try:
            return TypeAdapter(list[model]).validate_json(response.content)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise _bad_answer(response, exc) from None

    # --- health ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._request("GET", "/api/health").json()
        return data

    # --- pipelines ------------------------------------------------------------------

    def create_pipeline(self, source: str, filename: str = "pipeline.lua") -> PipelineView:
        """A new pipeline, or a new version when the name exists. A definition error is an
        ``ApiError`` (422, code ``invalid_definition``) whose detail carries the messages."""
        body = PipelineCreate(source=source, filename=filename).model_dump()
        # The admin token, when known, is sent along: the server requires it for new
        # versions of pipelines that have secrets granted to them.
        headers = self._admin_headers() if self.admin_token else None
        response = self._request("POST", "/api/pipelines", json_body=body, headers=headers)
        return _parse(response, PipelineView)

    def list_pipelines(
        self, *, archived: str = "hide", limit: int = 50, offset: int = 0
    ) -> PipelinePage:
        """One page, by name; ``archived``: ``hide`` (default), ``include`` or ``only``."""
        params = {"archived": archived, "limit": limit, "offset": offset}
        return self._get("/api/pipelines", PipelinePage, params=params)

    def archive_pipeline(self, ref: str) -> PipelineView:
        """``rivet pipeline delete``: launches and new versions refused from now on."""
        return _parse(self._request("DELETE", f"/api/pipelines/{_segment(ref)}"), PipelineView)

    def restore_pipeline(self, ref: str) -> PipelineView:
        path = f"/api/pipelines/{_segment(ref)}/restore"
        return _parse(self._request("POST", path), PipelineView)

    def get_pipeline(self, ref: str, version: int | None = None) -> PipelineView:
        """By name or unique id prefix; with its source."""
        params = {"version": version} if version is not None else None
        return self._get(f"/api/pipelines/{_segment(ref)}", PipelineView, params=params)

    def pipeline_versions(self, ref: str) -> list[PipelineView]:
        return self._get_list(f"/api/pipelines/{_segment(ref)}/versions", PipelineView)

    # --- jobs -----------------------------------------------------------------------

    def launch_job(
        self,
        pipeline: str,
        inputs: dict[str, Scalar] | None = None,
        version: int | None = None,
        source: SourceInfo | None = None,
    ) -> JobLaunched:
        """Bad inputs are an ``ApiError`` (422, ``invalid_inputs``) naming every one;
        ``.warnings`` of the answer name secrets this version will not receive.
        ``source``: an archive uploaded with ``ArtifactClient.upload_source``."""
        body = JobLaunch(
            pipeline=pipeline, version=version, inputs=inputs or {}, source_archive=source
        )
        response = self._request("POST", "/api/jobs", json_body=body.model_dump(mode="json"))
        return _parse(response, JobLaunched)

    def list_jobs(
        self,
        statuses: Sequence[str] = (),
        pipeline: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        params: list[tuple[str, Any]] = [("status", s) for s in statuses]
        if pipeline is not None:
            params.append(("pipeline", pipeline))
        params += [("limit", limit), ("offset", offset)]
        return self._get("/api/jobs", JobPage, params=params)

    def rerun_job(self, ref: str) -> JobLaunched:
        """A new job of the same pipeline version with the same inputs as ``ref``."""
        response = self._request("POST", f"/api/jobs/{_segment(ref)}/rerun")
        return _parse(response, JobLaunched)

    def get_job(self, ref: str) -> JobView:
        return self._get(f"/api/jobs/{_segment(ref)}", JobView)

    def cancel_job(self, ref: str) -> JobView:
        return _parse(self._request("POST", f"/api/jobs/{_segment(ref)}/cancel"), JobView)

    def retry_job(self, ref: str) -> JobView:
        return _parse(self._request("POST", f"/api/jobs/{_segment(ref)}/retry"), JobView)

    def job_logs(
        self, ref: str, after: int = 0, limit: int = 1000, attempt: int | None = None
    ) -> LogPage:
        params = {"after": after, "limit": limit}
        if attempt is not None:
            params["attempt"] = attempt
        return self._get(f"/api/jobs/{_segment(ref)}/logs", LogPage, params=params)

    def iter_logs(self, ref: str, after: int = 0, attempt: int | None = None) -> Iterator[LogLine]:
        """Every stored line after ``after`` (of one attempt, or all), page by page,
        until none is left."""
        while True:
            page = self.job_logs(ref, after, attempt=attempt)
            yield from page.lines
            if not page.lines or page.next_after <= after:
                return
            after = page.next_after

    def stream_logs(self, ref: str, after: int = 0) -> Iterator[StreamItem]:
        """Follow a job live: log lines and :class:`JobUpdate` s, ending with a final
        update once the job has finished and every line was sent.

        A dropped connection (network error, read timeout, server restart) and an
        answer that says "not now" (502, 503 and 504: an orchestrator behind a load
        balancer gone, the database restarting) are retried with backoff from the
        last sequence number seen, for up to ``reconnect_for`` seconds without a
        successful connection; lines are never repeated.
        """
        delay = 1.0
        down_since: float | None = None
        while True:
            try:
                for item in self._stream_once(ref, after):
                    down_since = None
                    delay = 1.0
                    if isinstance(item, LogLine):
                        if item.seq <= after:
                            continue
                        after = item.seq
                    yield item
                    if isinstance(item, JobUpdate) and item.final:
                        return
                reason = "the server closed the stream"
            except httpx.TransportError as exc:
                reason = _reason(exc)
            except ApiError as exc:
                if exc.status not in _STREAM_RETRY_STATUSES:
                    raise
                reason = str(exc)
            now = time.monotonic()
            if down_since is None:
                down_since = now
            elif now - down_since > self.reconnect_for:
                raise ServerUnreachableError(self.base_url, f"log stream lost: {reason}")
            self._sleep(delay)
            delay = min(delay * 2, 10.0)

    def _stream_once(self, ref: str, after: int) -> Iterator[StreamItem]:
        timeout = httpx.Timeout(DEFAULT_TIMEOUT, read=STREAM_READ_TIMEOUT)
        with self._http.stream(
            "GET",
            f"/api/jobs/{_segment(ref)}/logs/stream",
            params={"after": after},
            headers=self._credentials({"Accept": "text/event-stream", "Last-Event-ID": str(after)}),
            timeout=timeout,
        ) as response:
            if response.is_error:
                response.read()
                raise self._error(response)
            for event in parse_sse(response.iter_lines()):
                if event.event == "message":
                    yield LogLine.model_validate_json(event.data)
                elif event.event in ("status", "end"):
                    job = JobView.model_validate_json(event.data)
                    yield JobUpdate(job, final=event.event == "end")

    # --- runners --------------------------------------------------------------------

    def list_runners(self, *, removed: bool = False) -> list[RunnerView]:
        """The runners; removed ones too with ``removed``."""
        params = {"removed": "true"} if removed else None
        return self._get_list("/api/runners", RunnerView, params=params)

    def remove_runner(self, ref: str, *, force: bool = False) -> RunnerView:
        """Admin: revoke the runner's token; ``force`` also fails the jobs it runs."""
        params = {"force": "true"} if force else None
        response = self._request(
            "DELETE", f"/api/runners/{_segment(ref)}", params=params, headers=self._admin_headers()
        )
        return _parse(response, RunnerView)

    def get_runner(self, ref: str) -> RunnerView:
        return self._get(f"/api/runners/{_segment(ref)}", RunnerView)

    def update_runner(
        self,
        ref: str,
        *,
        tags: dict[str, str] | None = None,
        plugins: list[str] | None = None,
        pool: str | None = None,
    ) -> RunnerView:
        """Replace a runner's stored tags, plugins and/or pool (admin); ``None`` keeps them."""
        body = RunnerUpdate(tags=tags, plugins=plugins, pool=pool).model_dump(exclude_none=True)
        response = self._request(
            "PATCH", f"/api/runners/{_segment(ref)}", json_body=body, headers=self._admin_headers()
        )
        return _parse(response, RunnerView)

    def create_runner_token(self, description: str | None = None) -> RegistrationTokenView:
        """A one-time registration token (admin); ``.token`` holds the secret, shown once."""
        body = RegistrationTokenCreate(description=description).model_dump()
        response = self._request(
            "POST", "/api/runner-tokens", json_body=body, headers=self._admin_headers()
        )
        return _parse(response, RegistrationTokenView)

    def list_runner_tokens(self) -> list[RegistrationTokenView]:
        return self._get_list(
            "/api/runner-tokens", RegistrationTokenView, headers=self._admin_headers()
        )

    def delete_runner_token(self, ref: str) -> None:
        self._request(
            "DELETE", f"/api/runner-tokens/{_segment(ref)}", headers=self._admin_headers()
        )


def _parse(response: httpx.Response, model: type[M]) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise _bad_answer(response, exc) from None


def _bad_answer(response: httpx.Response, exc: ValidationError) -> ApiError:
    first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
    return ApiError(
        response.status_code,
        f"unexpected answer from the server for {response.request.url.path}: "
        f"{first.get('msg')} (client and server versions may differ)",
    )


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out{': ' + text if text else ''}"
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return text or type(exc).__name__
