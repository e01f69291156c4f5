"""``GET /api/jobs/{ref}/logs/stream``: a job's log as Server-Sent Events.

Wire format (``text/event-stream``):

- a log line: ``id: <seq>`` and ``data: <LogLine JSON>`` (default ``message`` event),
  so a reconnecting client's ``Last-Event-ID`` resumes after the last line it saw;
- ``event: status`` with ``data: <JobView JSON>`` first and whenever the job's status,
  cancel flag or a stage status changes (no ``id``, so it never moves the resume point);
- ``event: end`` with the final ``JobView`` once the job has finished and every line
  has been sent; then the server closes the stream;
- ``: keepalive`` comments while nothing happens, and while the database does not
  answer (the stream stays open and reads again, so a database restart costs the
  follower a pause, not a reconnect).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from rivet.errors import StorageUnavailable
from rivet.jobqueue import job_topic
from rivet.limits import MAX_INT32
from rivet.orchestrator.deps import PrincipalDep, ServicesDep
from rivet.orchestrator.services import JobSnapshot, Services

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["jobs"])

_PAGE = 500


@router.get(
    "/jobs/{ref}/logs/stream",
    summary="Follow a job's log (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_logs(
    ref: str,
    services: ServicesDep,
    principal: PrincipalDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_INT32, description="replay lines with seq > after")
    ] = 0,
    last_event_id: Annotated[str | None, Header(description="overrides ?after=")] = None,
) -> StreamingResponse:
    # On the writer, like every read of a stream (see JobService.snapshot); 404 (or 403)
    # before streaming starts.
    job_id = await anyio.to_thread.run_sync(
        functools.partial(services.jobs.resolve, principal, ref, primary=True)
    )
    resume = (last_event_id or "").strip()
    # ASCII decimal only ("²" is a digit int() refuses); out of range: ignored.
    if resume.isascii() and resume.isdecimal() and len(resume) <= 10 and int(resume) <= MAX_INT32:
        after = int(resume)
    return StreamingResponse(
        _events(services, job_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: BaseModel) -> str:
    return f"event: {name}\ndata: {data.model_dump_json()}\n\n"


def _state(snapshot: JobSnapshot) -> tuple[object, ...]:
    job = snapshot.job
    return (job.status, job.cancel_requested, tuple(s.status for s in job.stages))


async def _events(services: Services, job_id: str, after: int) -> AsyncIterator[str]:
    settings = services.settings.server
    keepalive = settings.sse_keepalive
    last_state: tuple[object, ...] | None = None
    last_sent = time.monotonic()
    waiting = False  # for the database, which did not answer the last read
    yield "retry: 1000\n\n"
    # Watching before each read means a change committed during the read still wakes
    # us; the timeout is the polling fallback (e.g. a lost NOTIFY from another server).
    async with services.signals.watch(job_topic(job_id)) as watch:
        while True:
            try:
                snapshot = await anyio.to_thread.run_sync(
                    functools.partial(services.jobs.snapshot, job_id, after, _PAGE, primary=True)
                )
            except StorageUnavailable as exc:
                # The database is restarting: keep the stream (and its keep-alives) and
                # read again, rather than break it with an error mid-response.
                if not waiting:
                    log.warning(
                        "log stream of job %s waits for the database: %s", job_id, exc.reason
                    )
                waiting = True
                if services.queue.draining:
                    return
                if time.monotonic() - last_sent >= keepalive:
                    yield ": keepalive\n\n"
                    last_sent = time.monotonic()
                await anyio.sleep(min(settings.poll_interval, keepalive))
                continue
            waiting = False
            chunks = [
                f"id: {line.seq}\ndata: {line.model_dump_json()}\n\n" for line in snapshot.lines
            ]
            if snapshot.lines:
                after = snapshot.lines[-1].seq
            state = _state(snapshot)
            if state != last_state:
                chunks.append(_event("status", snapshot.job))
                last_state = state
            if chunks:
                yield "".join(chunks)
                last_sent = time.monotonic()
            if len(snapshot.lines) >= _PAGE:
                continue  # more lines are waiting: no need to sleep
            if snapshot.finished:
                yield _event("end", snapshot.job)
                return
            if services.queue.draining:
                return  # the server is shutting down: the client resumes from its last id
            if time.monotonic() - last_sent >= keepalive:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            await watch.wait(min(settings.poll_interval, keepalive))
