"""Claim throughput: 16 runners claiming over HTTP versus the same claim as a raw loop.

For each database (SQLite, and PostgreSQL when its URL is known):

1. ``--jobs`` queued jobs are inserted directly (store functions, one transaction);
   a real ``rivet server`` process serves them to 16 registered runners, each a
   thread with its own connection posting ``/api/runner/claim`` (``wait_seconds=0``)
   until it gets 204. Claims/s = jobs / wall time.
2. The same number of jobs is inserted again and claimed, with the server stopped,
   by the queue module's own claim (``JobQueue.try_claim``: the single
   ``UPDATE … RETURNING`` statement plus the read of the pinned pipeline version that
   makes the assignment) in a loop on one thread.
3. Again, as raw SQL: the very statement ``try_claim`` builds, compiled once and
   executed through the driver in a loop (one commit per claim), on 1 and 16 threads.

The runners, the server and the database share the machine (2 cores here), so the
HTTP figure includes the clients' own cost.

Usage: .venv/bin/python bench/claim_throughput.py [--jobs 2000] [--runners 16]
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from harness import Api, backends, database, server
from live_rivet import logging_pipeline
from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, select, update

from rivet.domain import JobStatus
from rivet.jobqueue import Offer, Signals, make_queue
from rivet.lua.definition import load_definition
from rivet.store import Database, upgrade
from rivet.store import jobs as job_store
from rivet.store import pipelines as pipeline_store
from rivet.store import runners as runner_store
from rivet.store.tables import jobs as jobs_table


def seed(url: str, count: int) -> None:
    """``count`` queued jobs of one pipeline, written in one transaction."""
    source = logging_pipeline("claim-bench", 1, 1)
    definition = load_definition(source, "claim-bench.lua")
    db = Database(url)
    try:
        upgrade(db)
        with db.write() as tx:
            pipeline_store.create_version(
                tx.conn, definition, source, "claim-bench.lua", created_by="anonymous"
            )
            version = pipeline_store.get_version(tx.conn, "claim-bench")
            for _ in range(count):
                job_store.create_job(tx.conn, version, {})
    finally:
        db.close()


def in_threads(threads: int, work: Callable[[int], int]) -> tuple[int, float]:
    """Run ``work(i)`` on ``threads`` threads started together: (total, seconds)."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def body(i: int) -> None:
        barrier.wait()
        counts[i] = work(i)

    pool = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    return sum(counts), time.perf_counter() - started


def http_claims(url: str, jobs: int, runners: int) -> float:
    seed(url, jobs)
    with server(url) as srv:
        api = Api(srv.url)
        tokens = []
        for i in range(runners):
            answer = api.http.post(
                "/api/runners/register",
                json={"registration_token": api.registration_token(), "name": f"bench-{i}"},
            )
            tokens.append(answer.json()["token"])
        api.close()

        def claim_all(i: int) -> int:
            got = 0
            headers = {"Authorization": f"Bearer {tokens[i]}"}
            with httpx.Client(base_url=srv.url, headers=headers, timeout=30) as http:
                while http.post("/api/runner/claim", json={"wait_seconds": 0}).status_code == 200:
                    got += 1
            return got

        total, seconds = in_threads(runners, claim_all)
    assert total == jobs, (total, jobs)
    return total / seconds


def queue_claims(url: str, jobs: int, threads: int) -> float:
    seed(url, jobs)
    db = Database(url, pool_size=threads + 2)
    queue = make_queue(db, Signals())
    try:
        with db.write() as tx:
            runner_id = runner_store.create_runner(tx.conn, "raw", uuid.uuid4().hex, {}, [])

        def claim_all(_i: int) -> int:
            got = 0
            while queue.try_claim(runner_id, Offer()) is not None:
                got += 1
            return got

        total, seconds = in_threads(threads, claim_all)
    finally:
        db.close()
    assert total == jobs, (total, jobs)
    return total / seconds


def raw_sql_claims(url: str, jobs: int, threads: int) -> float:
    """The claim statement of ``SqlQueue.try_claim``, compiled once, run by the driver."""
    seed(url, jobs)
    db = Database(url, pool_size=threads + 2)
    queue = make_queue(db, Signals())
    try:
        with db.write() as tx:
            runner_id = runner_store.create_runner(tx.conn, "raw", uuid.uuid4().hex, {}, [])
        candidate = jobs_table.alias("candidate")
        queued = JobStatus.QUEUED.value
        next_id = (
            select(candidate.c.id)
            .where(candidate.c.status == queued, queue.match(candidate, Offer()))  # type: ignore[attr-defined]
            .order_by(candidate.c.created_at, candidate.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(jobs_table)
            .where(jobs_table.c.id == next_id, jobs_table.c.status == queued)
            .values(
                status=JobStatus.RUNNING.value,
                runner_id=bindparam("rid"),
                started_at=bindparam("now"),
                heartbeat_at=bindparam("now"),
            )
            .returning(jobs_table.c.id, jobs_table.c.pipeline_version_id, jobs_table.c.inputs)
        )
        compiled = statement.compile(dialect=db.engine.dialect)
        sql = str(compiled)

        def claim_all(_i: int) -> int:
            raw = db.engine.raw_connection()
            got = 0
            try:
                values = dict(compiled.params, rid=runner_id, now=datetime.now(UTC))
                for name, value in values.items():
                    if isinstance(value, dict | list) and db.dialect == "postgresql":
                        values[name] = Jsonb(value)  # what the JSONB bind type does
                params = (
                    tuple(values[name] for name in compiled.positiontup)
                    if compiled.positiontup
                    else values
                )
                while True:
                    cursor = raw.cursor()
                    cursor.execute(sql, params)
                    row = cursor.fetchone()
                    cursor.close()
                    raw.commit()
                    if row is None:
                        return got
                    got += 1
            finally:
                raw.close()

        total, seconds = in_threads(threads, claim_all)
    finally:
        db.close()
    assert total == jobs, (total, jobs)
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runners", type=int, default=16)
    args = parser.parse_args()
    for kind in backends():
        with database(kind) as url:
            http = http_claims(url, args.jobs, args.runners)
            in_queue = queue_claims(url, args.jobs, 1)
            raw_one = raw_sql_claims(url, args.jobs, 1)
            raw_many = raw_sql_claims(url, args.jobs, args.runners)
        n = args.runners
        print(f"[{kind}] {args.jobs} jobs per measurement")
        print(f"  HTTP /api/runner/claim, {n} runners   : {http:8.0f} claims/s")
        print(f"  queue try_claim loop, 1 thread      : {in_queue:8.0f} claims/s")
        print(f"  raw claim SQL loop, 1 thread        : {raw_one:8.0f} claims/s")
        print(f"  raw claim SQL loop, {n} threads      : {raw_many:8.0f} claims/s")
        print(
            f"  ratio HTTP / try_claim loop {http / in_queue:.2f}; "
            f"HTTP / raw SQL {http / raw_one:.3f} (1 thread), {http / raw_many:.3f} ({n} threads)",
            flush=True,
        )


if __name__ == "__main__":
    main()
