"""Job log lines, numbered per job by the runner and stored idempotently."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from rivet.protocol import LogLine
from rivet.store.portable import insert_ignoring_duplicates
from rivet.store.tables import log_lines

__all__ = ["append_lines", "last_seq", "read_lines"]

# 6 parameters per row: 500 rows stays far below SQLite's 32,766-parameter limit and
# is where executemany-style batching stops getting faster on PostgreSQL (measured).
_CHUNK = 500


def append_lines(conn: Connection, job_id: str, lines: Sequence[LogLine], attempt: int = 1) -> int:
    """Insert lines not stored yet, as logged by ``attempt``; returns how many were new.

    Idempotent by ``(job_id, seq)``: a retried or overlapping batch stores nothing twice,
    and batches may arrive in any order. The attempt is the caller's (the job's
    current one), never the line's own field.
    """
    stored = 0
    for start in range(0, len(lines), _CHUNK):
        rows = [
            {
                "job_id": job_id,
                "seq": line.seq,
                "ts": line.ts,
                "stage": line.stage,
                "level": line.level,
                "message": line.message,
                "stream": line.stream,
                "attempt": attempt,
            }
            for line in lines[start : start + _CHUNK]
        ]
        statement = (
            insert_ignoring_duplicates(conn, log_lines, "job_id", "seq")
            .values(rows)
            .returning(log_lines.c.seq)
        )
        # RETURNING lists only the rows actually inserted (rowcount is unreliable for
        # multi-row inserts across drivers).
        stored += len(conn.execute(statement).all())
    return stored


_LAST_SEQ = select(func.coalesce(func.max(log_lines.c.seq), 0)).where(
    log_lines.c.job_id == bindparam("job_id")
)


def last_seq(conn: Connection, job_id: str) -> int:
    """Highest stored sequence number of a job, 0 if none."""
    return int(conn.execute(_LAST_SEQ, {"job_id": job_id}).scalar_one())


def read_lines(
    conn: Connection,
    job_id: str,
    after: int,
    limit: int,
    *,
    contiguous: bool,
    attempt: int | None = None,
) -> list[LogLine]:
    """Up to ``limit`` lines with ``seq > after`` in order.

    With ``contiguous`` the page stops before the first missing number: while a job
    runs, a later batch may land before an earlier one, and a follower that skipped
    the gap would never see the late lines. Pass ``contiguous=False`` once the job has
    finished (read its status *before* the lines), when no more lines will arrive.
    ``attempt``: only that attempt's lines (numbers go on across attempts, so its
    first line need not be ``after + 1``; no gap check then).
    """
    query = select(log_lines).where(log_lines.c.job_id == job_id, log_lines.c.seq > after)
    if attempt is not None:
        query = query.where(log_lines.c.attempt == attempt)
    query = query.order_by(log_lines.c.seq).limit(limit)
    result: list[LogLine] = []
    expected = after + 1
    for row in conn.execute(query):
        if contiguous and attempt is None and row.seq != expected:
            break
        result.append(
            LogLine(
                seq=row.seq,
                ts=row.ts,
                stage=row.stage,
                level=row.level,
                message=row.message,
                stream=row.stream,
                attempt=row.attempt,
            )
        )
        expected = row.seq + 1
    return result
