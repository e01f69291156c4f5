"""``LogShipper``: a job's :class:`~rivet.engine.events.JobEvents` sink that ships log
lines (in batches) and stage updates to the server, in the order they happened.

Batching: lines wait in one ordered buffer; a sender thread posts the leading lines as
one ``LogBatch`` once ``batch_lines`` (or ``batch_bytes``) are waiting, once the oldest
has waited ``flush_interval``, or at once when a stage update follows them. A stage
update is posted after the lines logged before it, so a client that sees "stage
finished" already finds every line of that stage.

Delivery: a batch leaves the buffer only when the server acknowledged it. A failed
POST is resent with the *same* lines (same sequence numbers from the executor) with
jittered exponential backoff; the server stores lines idempotently by ``(job, seq)``,
so a POST whose answer was lost is resent without creating duplicates, and nothing
is dropped or reordered while the server is away.

Size: each line's message is cut to the server's per-line cap (``MAX_LOG_MESSAGE``,
saying how much was cut) and a batch never has more than ``MAX_LOG_LINES`` lines. A
batch the server still refuses as too large (413, a server configured with a smaller
``RIVET_MAX_BODY_BYTES``) is split in halves and each half sent; a single line that
alone is too large is replaced by a short warning line with the same number (so the
log keeps no gap) and counted as dropped, with an error in the runner's log.

Memory: the buffer holds at most ``max_buffer_bytes`` of messages; beyond that
:meth:`log` blocks its caller (the job's Lua thread or a process reader), which
stalls the job's output (and, through the pipe, the process) until the server takes
lines again. Backpressure, not loss.

Thread-safety: :meth:`log` and the stage callbacks may be called from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rivet.engine.events import LogEvent, StageResult
from rivet.limits import MAX_ERROR, MAX_LOG_LINES, MAX_LOG_MESSAGE, truncate
from rivet.observe.logs import in_context
from rivet.protocol import Ack, LogBatch, LogLine, StageUpdate
from rivet.runner.client import (
    BodyTooLarge,
    JobGone,
    RequestRejected,
    RunnerClient,
    TokenRejected,
    deliver,
)
from rivet.runner.retry import Backoff

__all__ = ["LogShipper", "ShipperSettings"]

log = logging.getLogger("rivet.runner")

# Per-line overhead (seq, timestamp, stage, level, JSON) counted against the buffer.
_LINE_OVERHEAD = 96


@dataclass(frozen=True)
class ShipperSettings:
    batch_lines: int = 200
    batch_bytes: int = 512 * 1024
    flush_interval: float = 0.1
    max_buffer_bytes: int = 8 * 1024 * 1024
    retry_initial: float = 0.1
    retry_cap: float = 5.0


@dataclass
class _Entry:
    arrival: float
    item: LogLine | StageUpdate
    size: int


class LogShipper:
    def __init__(
        self,
        client: RunnerClient,
        job_id: str,
        settings: ShipperSettings | None = None,
        *,
        give_up: threading.Event | None = None,
        on_ack: Callable[[Ack], None] | None = None,
        attempt: int | None = None,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.attempt = attempt
        # Why the last delivery failed (the server's answer), None once one succeeds:
        # heartbeats carry it so `rivet job show` can say why the log stalled.
        self.problem: str | None = None
        self.settings = settings or ShipperSettings()
        self._give_up = give_up or threading.Event()
        self._on_ack = on_ack
        self._entries: deque[_Entry] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._has_room = threading.Condition(self._lock)
        self._closing = False
        self._abandoned = False
        self.delivered_lines = 0
        self.dropped_lines = 0
        self._thread = threading.Thread(
            target=in_context(self._run), name=f"logs-{job_id[:8]}", daemon=True
        )
        self._thread.start()

    # --- JobEvents ------------------------------------------------------------------

    def log(self, event: LogEvent) -> None:
        message = truncate(event.message, MAX_LOG_MESSAGE)
        line = LogLine(
            seq=event.seq,
            ts=event.ts,
            stage=event.stage,
            level=event.level,
            message=message,
            stream=event.stream,
        )
        size = len(message) + _LINE_OVERHEAD
        limit = self.settings.max_buffer_bytes
        with self._lock:
            while not self._abandoned and self._entries and self._bytes + size > limit:
                self._has_room.wait()
            self._put(line, size)

    def stage_started(self, stage: StageResult) -> None:
        self._put_stage(stage)

    def stage_finished(self, stage: StageResult) -> None:
        self._put_stage(stage)

    # --- lifecycle ------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Send everything still buffered, then stop; True if all of it was delivered."""
        with self._lock:
            self._closing = True
            self._has_work.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive() and self.dropped_lines == 0 and not self._entries

    @property
    def pending(self) -> int:
        """Entries (lines and stage updates) not yet acknowledged by the server."""
        with self._lock:
            return len(self._entries)

    # --- internals ------------------------------------------------------------------

    def _put_stage(self, stage: StageResult) -> None:
        update = StageUpdate(
            name=stage.name,
            status=stage.status.value,
            started_at=stage.started_at,
            finished_at=stage.finished_at,
            error=truncate(stage.error, MAX_ERROR) if stage.error is not None else None,
        )
        with self._lock:
            self._put(update, _LINE_OVERHEAD)  # tiny: exempt from backpressure

    def _put(self, item: LogLine | StageUpdate, size: int) -> None:
        """Append under the lock; wake the sender only when its decision may change."""
        if self._abandoned:
            self.dropped_lines += isinstance(item, LogLine)
            return
        self._entries.append(_Entry(time.monotonic(), item, size))
        self._bytes += size
        count = len(self._entries)
        if (
            count == 1
            or isinstance(item, StageUpdate)
            or count >= self.settings.batch_lines
            or self._bytes >= self.settings.batch_bytes
        ):
            self._has_work.notify()

    def _next_batch(self) -> list[LogLine] | StageUpdate | None:
        """Under the lock: wait until something should be sent; None when done."""
        settings = self.settings
        most = min(settings.batch_lines, MAX_LOG_LINES)
        while not self._abandoned:
            if not self._entries:
                if self._closing:
                    return None
                self._has_work.wait()
                continue
            head = self._entries[0]
            if isinstance(head.item, StageUpdate):
                return head.item
            lines: list[LogLine] = []
            size = 0
            for entry in self._entries:
                if not isinstance(entry.item, LogLine) or len(lines) >= most:
                    break
                if lines and size + entry.size > settings.batch_bytes:
                    break
                lines.append(entry.item)
                size += entry.size
            more_behind = len(lines) < len(self._entries)
            wait = head.arrival + settings.flush_interval - time.monotonic()
            if more_behind or wait <= 0 or self._closing:
                return lines
            self._has_work.wait(wait)
        return None

    def _run(self) -> None:
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_cap)
        while True:
            with self._lock:
                batch = self._next_batch()
            if batch is None:
                return
            count = 1 if isinstance(batch, StageUpdate) else len(batch)
            dropped = self._send(batch, backoff)
            with self._lock:
                if dropped is None:
                    self._abandon()
                    return
                for _ in range(count):
                    self._bytes -= self._entries.popleft().size
                lines = 0 if isinstance(batch, StageUpdate) else count
                self.delivered_lines += lines - dropped
                self.dropped_lines += dropped
                self._has_room.notify_all()

    def _send(self, batch: list[LogLine] | StageUpdate, backoff: Backoff) -> int | None:
        """One batch until acknowledged; how many of its lines the server refused, or
        None to abandon the job's log. A batch too large for the server is sent in
        halves (recursively), so one oversized line costs only itself."""
        try:
            return self._send_once(batch, backoff)
        except BodyTooLarge as exc:
            if isinstance(batch, StageUpdate):
                log.error("job %s: the server refuses a stage update (%s)", self.job_id, exc)
                return 0
            if len(batch) == 1:
                return self._replace_line(batch[0], exc, backoff)
            half = len(batch) // 2
            first = self._send(batch[:half], backoff)
            if first is None:
                return None
            second = self._send(batch[half:], backoff)
            return None if second is None else first + second

    def _replace_line(self, line: LogLine, exc: BodyTooLarge, backoff: Backoff) -> int | None:
        """A line the server refuses even alone: its number is kept (a gap would stop
        readers of the running job there) with a short message saying what happened."""
        log.error(
            "job %s: the server refuses line %d as too large (%s)", self.job_id, line.seq, exc
        )
        note = (
            f"[line {line.seq} not stored: the server refused it as too large "
            f"({len(line.message)} characters)]"
        )
        stand_in = line.model_copy(update={"message": note, "level": "warning"})
        try:
            refused = self._send_once([stand_in], backoff)
        except BodyTooLarge:
            return 1
        return None if refused is None else 1

    def _send_once(self, batch: list[LogLine] | StageUpdate, backoff: Backoff) -> int | None:
        """Deliver ``batch`` as one request: 0, the line count if refused, None to abandon;
        :class:`BodyTooLarge` propagates to :meth:`_send`."""
        job = self.job_id
        if isinstance(batch, StageUpdate):
            update = batch
            what = f"stage update {update.name}={update.status}"

            def call() -> Ack:
                return self.client.update_stage(job, update, self.attempt)
        else:
            body = LogBatch(lines=batch)
            what = f"log lines {batch[0].seq}..{batch[-1].seq}"

            def call() -> Ack:
                return self.client.post_logs(job, body, self.attempt)

        lines = 0 if isinstance(batch, StageUpdate) else len(batch)
        try:
            ack = deliver(call, backoff, self._give_up, on_retry=self._note_problem)
        except BodyTooLarge:
            raise
        except (JobGone, TokenRejected) as exc:
            log.error("job %s: the server refuses its updates (%s); dropping the rest", job, exc)
            return None
        except RequestRejected as exc:
            log.error("job %s: the server rejected %s (%s); dropping it", job, what, exc)
            return lines
        except Exception:  # a dead sender would block the job's output forever
            log.exception("job %s: unexpected error delivering %s; dropping the rest", job, what)
            return None
        if ack is None:
            log.error("job %s: gave up delivering %s and the rest of its log", job, what)
            return None
        self.problem = None
        if self._on_ack is not None:
            self._on_ack(ack)
        return 0

    def _note_problem(self, exc: Exception) -> None:
        self.problem = str(exc)

    def _abandon(self) -> None:
        """Under the lock: forget everything buffered and unblock waiting producers."""
        self._abandoned = True
        self.dropped_lines += sum(isinstance(e.item, LogLine) for e in self._entries)
        self._entries.clear()
        self._bytes = 0
        self._has_room.notify_all()
