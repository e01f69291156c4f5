"""Repository functions on both databases: versions, id prefixes, stages, log lines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from store_helpers import definition, make_runner, store_version

from rivet.domain import JobStatus, StageStatus
from rivet.errors import AmbiguousIdError, NotFoundError
from rivet.protocol import LogLine
from rivet.store import Database
from rivet.store import jobs as job_store
from rivet.store import logs as log_store
from rivet.store import pipelines as pipeline_store
from rivet.store.ids import resolve_prefix
from rivet.store.tables import pipelines

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_same_name_makes_new_versions(db: Database) -> None:
    for expected in (1, 2, 3):
        with db.write() as tx:
            view = pipeline_store.create_version(
                tx.conn, definition("a"), "src", "a.lua", created_by="admin"
            )
        assert view.version == expected and view.created_by == "admin"
    with db.write() as tx:
        b = pipeline_store.create_version(tx.conn, definition("b"), "s", "b.lua", created_by="x")
        assert b.version == 1
    with db.read() as conn:
        latest = pipeline_store.list_latest(conn).pipelines
        assert [(p.name, p.version, p.versions) for p in latest] == [("a", 3, 3), ("b", 1, 1)]
        assert latest[0].source is None
        by_id = pipeline_store.get_pipeline(conn, latest[0].id[:6], version=2)
        assert (by_id.name, by_id.version, by_id.source) == ("a", 2, "src")
        assert [v.version for v in pipeline_store.list_versions(conn, "a")] == [1, 2, 3]
        with pytest.raises(NotFoundError, match="no version 9"):
            pipeline_store.get_pipeline(conn, "a", version=9)
        with pytest.raises(NotFoundError, match="no pipeline named"):
            pipeline_store.get_pipeline(conn, "zzz")


def test_id_prefixes_resolve_unique_ambiguous_unknown(db: Database) -> None:
    with db.write() as tx:
        for pid, name in (("abcd" + "0" * 28, "x"), ("abcd" + "1" * 28, "y"), ("ef01" * 8, "z")):
            tx.conn.execute(insert(pipelines).values(id=pid, name=name, created_at=T0))
    with db.read() as conn:
        assert resolve_prefix(conn, pipelines, "EF01", "pipeline") == "ef01" * 8
        assert resolve_prefix(conn, pipelines, "abcd1", "pipeline") == "abcd" + "1" * 28
        with pytest.raises(AmbiguousIdError) as ambiguous:
            resolve_prefix(conn, pipelines, "abcd", "pipeline")
        assert ambiguous.value.matches == 2
        assert "matches 2 pipelines" in str(ambiguous.value)
        with pytest.raises(NotFoundError, match="no pipeline with id"):
            resolve_prefix(conn, pipelines, "abce", "pipeline")
        for bad in ("abc", "abcz", "ab%d", "a_cd"):
            with pytest.raises(NotFoundError, match="at least 4"):
                resolve_prefix(conn, pipelines, bad, "pipeline")


def test_dashed_uuids_and_their_starts_resolve_like_prefixes(db: Database) -> None:
    version = store_version(db, definition())
    with db.write() as tx:
        job_id = job_store.create_job(tx.conn, version, {})
    dashed = str(uuid.UUID(hex=job_id))
    with db.read() as conn:
        for ref in (dashed, dashed.upper(), dashed[:13], dashed[:9], dashed[:8]):
            assert job_store.resolve_job(conn, ref) == job_id, ref
        for wrong in (f"{job_id[:4]}-{job_id[4:8]}", f"-{job_id[:8]}", dashed + "-"):
            with pytest.raises(NotFoundError, match="ids are hex"):
                job_store.resolve_job(conn, wrong)


def test_job_rows_pin_version_and_track_stages(db: Database) -> None:
    version = store_version(db, definition(tags={"os": "linux"}, plugins=("git", "git")))
    with db.write() as tx:
        job_id = job_store.create_job(tx.conn, version, {"who": "x"})
    with db.read() as conn:
        view = job_store.get_job(conn, job_id)
    assert (view.status, view.version, view.inputs) == ("queued", 1, {"who": "x"})
    assert [(s.name, s.status) for s in view.stages] == [("build", "pending"), ("test", "pending")]
    assert view.created_at.tzinfo is not None
    with db.write() as tx:
        job_store.update_stage(tx.conn, job_id, "build", StageStatus.RUNNING, T0, None, None)
        job_store.finish_job(tx.conn, job_id, JobStatus.FAILED, {"n": 1}, "boom")
    with db.read() as conn:
        view = job_store.get_job(conn, job_id)
    assert (view.status, view.error, view.outputs) == ("failed", "boom", {"n": 1})
    assert [(s.name, s.status) for s in view.stages] == [("build", "failed"), ("test", "skipped")]
    assert view.stages[0].started_at == T0
    assert view.stages[0].duration is not None
    with db.write() as tx, pytest.raises(NotFoundError, match="no stage named 'nope'"):
        job_store.update_stage(tx.conn, job_id, "nope", StageStatus.RUNNING, None, None, None)


def test_list_jobs_filters_and_pages(db: Database) -> None:
    first = store_version(db, definition("first"))
    second = store_version(db, definition("second"))
    with db.write() as tx:
        ids = [job_store.create_job(tx.conn, first, {}) for _ in range(5)]
        ids += [job_store.create_job(tx.conn, second, {}) for _ in range(2)]
        job_store.finish_job(tx.conn, ids[0], JobStatus.CANCELLED)
    with db.read() as conn:
        page = job_store.list_jobs(conn, limit=3, offset=0)
        assert page.total == 7 and len(page.jobs) == 3
        everything = job_store.list_jobs(conn, limit=100).jobs
        assert [j.id for j in everything] == list(reversed(ids))  # newest first
        rest = job_store.list_jobs(conn, limit=3, offset=6)
        assert [j.id for j in rest.jobs] == [ids[0]]
        queued_first = job_store.list_jobs(conn, [JobStatus.QUEUED], first.pipeline_id)
        assert queued_first.total == 4
        both = job_store.list_jobs(conn, [JobStatus.QUEUED, JobStatus.CANCELLED])
        assert both.total == 7


def _line(seq: int, message: str | None = None) -> LogLine:
    return LogLine(seq=seq, ts=T0 + timedelta(seconds=seq), message=message or f"line {seq}")


def test_log_lines_are_idempotent_and_ordered(db: Database) -> None:
    version = store_version(db, definition())
    with db.write() as tx:
        job_id = job_store.create_job(tx.conn, version, {})
    batches = [[_line(4), _line(5)], [_line(1), _line(2), _line(3)], [_line(4), _line(5)]]
    stored = []
    for batch in batches:
        with db.write() as tx:
            stored.append(log_store.append_lines(tx.conn, job_id, batch))
    assert stored == [2, 3, 0]
    with db.write() as tx:  # a retry whose text differs must not overwrite the original
        assert log_store.append_lines(tx.conn, job_id, [_line(1, "changed")]) == 0
    with db.read() as conn:
        lines = log_store.read_lines(conn, job_id, 0, 100, contiguous=True)
        assert [(ln.seq, ln.message) for ln in lines][:1] == [(1, "line 1")]
        assert [ln.seq for ln in lines] == [1, 2, 3, 4, 5]
        assert lines[0].ts == T0 + timedelta(seconds=1)
        assert [ln.seq for ln in log_store.read_lines(conn, job_id, 2, 2, contiguous=True)] == [
            3,
            4,
        ]
        assert log_store.last_seq(conn, job_id) == 5


def test_log_lines_keep_the_stream_they_came_from(db: Database) -> None:
    version = store_version(db, definition())
    with db.write() as tx:
        job_id = job_store.create_job(tx.conn, version, {})
        streams = ["stdout", "stderr", None]
        lines = [_line(i + 1).model_copy(update={"stream": s}) for i, s in enumerate(streams)]
        log_store.append_lines(tx.conn, job_id, lines)
    with db.read() as conn:
        read = log_store.read_lines(conn, job_id, 0, 10, contiguous=True)
    assert [ln.stream for ln in read] == streams


def test_contiguous_reads_stop_at_a_gap(db: Database) -> None:
    version = store_version(db, definition())
    with db.write() as tx:
        job_id = job_store.create_job(tx.conn, version, {})
        log_store.append_lines(tx.conn, job_id, [_line(1), _line(2), _line(5)])
    with db.read() as conn:
        assert [ln.seq for ln in log_store.read_lines(conn, job_id, 0, 10, contiguous=True)] == [
            1,
            2,
        ]
        assert log_store.read_lines(conn, job_id, 2, 10, contiguous=True) == []
        every = log_store.read_lines(conn, job_id, 0, 10, contiguous=False)
        assert [ln.seq for ln in every] == [1, 2, 5]


def test_big_batches_are_chunked(db: Database) -> None:
    version = store_version(db, definition())
    with db.write() as tx:
        job_id = job_store.create_job(tx.conn, version, {})
        assert log_store.append_lines(tx.conn, job_id, [_line(i) for i in range(1, 1202)]) == 1201
    with db.read() as conn:
        assert log_store.last_seq(conn, job_id) == 1201


def test_runner_fk_on_claimed_job(db: Database) -> None:
    runner_id = make_runner(db)
    assert len(runner_id) == 32
