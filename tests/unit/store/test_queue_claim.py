"""The queue on both databases: matching, order, exactly-once under a race, wake-ups."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.to_thread
import pytest
from store_helpers import definition, make_runner, store_version

from rivet.jobqueue import JOBS_TOPIC, JobQueue, Offer, Signals, make_queue
from rivet.protocol import JobAssignment, LogLine
from rivet.store import Database
from rivet.store import jobs as job_store
from rivet.store import logs as log_store
from rivet.store.pipelines import PipelineVersion
from rivet.store.portable import utcnow

ODD_KEY = "key with 'quotes\" and.dots"


def launch(db: Database, version: PipelineVersion, queue: JobQueue | None = None) -> str:
    with db.write() as tx:
        job_id = job_store.create_job(tx.conn, version, {"x": 1})
        if queue is not None:
            queue.announce(tx, JOBS_TOPIC)
    return job_id


def test_claims_oldest_matching_job_once(db: Database) -> None:
    queue = make_queue(db, Signals())
    runner = make_runner(db)
    version = store_version(db, definition())
    first, second = launch(db, version), launch(db, version)
    job = queue.try_claim(runner, Offer())
    assert isinstance(job, JobAssignment)
    assert (job.job_id, job.pipeline, job.version, job.inputs) == (first, "demo", 1, {"x": 1})
    assert job.source == "-- demo" and job.filename == "demo.lua" and job.next_seq == 1
    assert job.definition["stages"][0]["name"] == "build"
    again = queue.try_claim(runner, Offer())
    assert again is not None and again.job_id == second
    assert queue.try_claim(runner, Offer()) is None
    with db.read() as conn:
        view = job_store.get_job(conn, first)
    assert view.status == "running" and view.runner_id == runner and view.started_at is not None


@pytest.mark.parametrize(
    ("tags", "plugins", "offer", "claimable"),
    [
        ({}, (), Offer(), True),
        ({}, (), Offer({"os": "linux"}, ["git"]), True),
        ({"os": "linux"}, (), Offer({"os": "linux", "arch": "x86"}), True),
        ({"os": "linux"}, (), Offer({"os": "mac"}), False),
        ({"os": "linux"}, (), Offer(), False),
        ({"os": "linux", "gpu": "yes"}, (), Offer({"os": "linux"}), False),
        ({}, ("git",), Offer({}, ["git", "archive"]), True),
        ({}, ("git", "archive"), Offer({}, ["git"]), False),
        (
            {"key with 'quotes\" and.dots": "v"},
            (),
            Offer({"key with 'quotes\" and.dots": "v"}),
            True,
        ),
        ({"os": "linux"}, ("git",), Offer({"os": "linux"}, ["git"]), True),
    ],
)
def test_tag_and_plugin_matching(
    db: Database,
    tags: dict[str, str],
    plugins: tuple[str, ...],
    offer: Offer,
    claimable: bool,
) -> None:
    queue = make_queue(db, Signals())
    runner = make_runner(db)
    job_id = launch(db, store_version(db, definition(tags=tags, plugins=plugins)))
    job = queue.try_claim(runner, offer)
    assert (job is not None and job.job_id == job_id) is claimable


def test_unmatched_job_does_not_block_later_ones(db: Database) -> None:
    queue = make_queue(db, Signals())
    runner = make_runner(db)
    launch(db, store_version(db, definition("gpu", tags={"gpu": "yes"})))
    plain = launch(db, store_version(db, definition("plain")))
    job = queue.try_claim(runner, Offer())
    assert job is not None and job.job_id == plain


def test_next_seq_continues_after_stored_lines(db: Database) -> None:
    queue = make_queue(db, Signals())
    runner = make_runner(db)
    job_id = launch(db, store_version(db, definition()))
    with db.write() as tx:
        log_store.append_lines(tx.conn, job_id, [LogLine(seq=7, ts=utcnow(), message="x")])
    job = queue.try_claim(runner, Offer())
    assert job is not None and job.next_seq == 8


def test_claim_race_hands_out_every_job_exactly_once(db: Database) -> None:
    queue = make_queue(db, Signals())
    runners = [make_runner(db, f"r{i}") for i in range(16)]
    version = store_version(db, definition())
    with db.write() as tx:
        expected = {job_store.create_job(tx.conn, version, {}) for _ in range(200)}
    start = threading.Barrier(len(runners))

    def drain(runner: str) -> list[str]:
        start.wait()
        got = []
        while (job := queue.try_claim(runner, Offer())) is not None:
            got.append(job.job_id)
        return got

    with ThreadPoolExecutor(len(runners)) as pool:
        results = list(pool.map(drain, runners))
    claimed = [job_id for got in results for job_id in got]
    assert len(claimed) == len(expected) == 200
    assert set(claimed) == expected
    assert sum(1 for got in results if got) > 1  # the claimers really did compete


@pytest.mark.anyio
async def test_waiting_claim_wakes_on_launch(db: Database) -> None:
    queue = make_queue(db, Signals(), poll_interval=5.0)  # polling alone would be too slow
    await queue.start()
    try:
        runner = make_runner(db)
        version = store_version(db, definition())
        launched_at: list[float] = []

        async def launch_soon() -> None:
            await anyio.sleep(0.2)
            launched_at.append(time.monotonic())
            await anyio.to_thread.run_sync(launch, db, version, queue)

        async with anyio.create_task_group() as tg:
            tg.start_soon(launch_soon)
            job = await queue.claim(runner, Offer(), wait_seconds=3)
        assert job is not None
        # well below the 5 s poll fallback: the launch's signal woke the claim
        assert time.monotonic() - launched_at[0] < 2.5
    finally:
        await queue.stop()


@pytest.mark.anyio
async def test_waiting_claim_times_out_empty(db: Database) -> None:
    queue = make_queue(db, Signals(), poll_interval=0.05)
    await queue.start()
    try:
        started = time.monotonic()
        assert await queue.claim(make_runner(db), Offer(), wait_seconds=0.3) is None
        assert 0.25 < time.monotonic() - started < 2
    finally:
        await queue.stop()
