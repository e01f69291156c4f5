"""What the runner-pool check costs a claim: the claim statement with ``pool_allows``
(rivet.jobqueue.sql) versus the same statement without it, interleaved in one run.

For each database (SQLite, and PostgreSQL when its URL is known), ``--rounds`` times:
queue ``--jobs`` jobs of an unrestricted pipeline behind ``--blocked`` older jobs that
need a tag the runner lacks (both statements scan past them), then claim every
claimable job one by one, timing each ``try_claim``; once with the real queue and once
with a queue whose statement lacks the pool condition, alternating which goes first.
The runner is in the shared pool ``default`` while pool ``prod`` is exclusive, so the
condition evaluates all three of its subqueries (the common case's worst). Prints the
median claim time of each and their ratio.

Usage: .venv/bin/python bench/claim_pools.py [--jobs 200] [--blocked 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from typing import Any

from harness import backends, database, timed_claims
from sqlalchemy import true, update

from rivet.domain import JobStatus, PipelineDefinition, RunnerTag, StageDef
from rivet.jobqueue import Signals, make_queue, sql
from rivet.store import Database, upgrade
from rivet.store import jobs as job_store
from rivet.store import pipelines as pipeline_store
from rivet.store import runners as runner_store
from rivet.store.tables import jobs as jobs_table
from rivet.store.testing import empty_tables


def versions(db: Database) -> tuple[Any, Any]:
    made = []
    for name, tags in (("open", ()), ("mac-only", (RunnerTag("os", "mac"),))):
        spec = PipelineDefinition(name=name, stages=(StageDef("s"),), tags=tags)
        with db.write() as tx:
            pipeline_store.create_version(tx.conn, spec, "--", "p.lua", created_by="bench")
            made.append(pipeline_store.get_version(tx.conn, name))
    with db.write() as tx:
        runner_store.set_pool(tx.conn, "prod", True)
    return made[0], made[1]


def round_of_claims(
    db: Database, queue: Any, runner: str, open_: Any, blocked: Any, n: int, b: int
) -> list[float]:
    with db.write() as tx:
        for _ in range(b):
            job_store.create_job(tx.conn, blocked, {}, "bench")
        for _ in range(n):
            job_store.create_job(tx.conn, open_, {}, "bench")
    times, _ = timed_claims(queue, runner)
    assert len(times) == n, len(times)
    with db.write() as tx:  # the blocked jobs go, so every round starts alike
        tx.conn.execute(
            update(jobs_table)
            .where(jobs_table.c.status == JobStatus.QUEUED.value)
            .values(status=JobStatus.CANCELLED.value)
        )
    return times


def measure(url: str, jobs: int, blocked: int, rounds: int) -> tuple[float, float]:
    db = Database(url)
    try:
        upgrade(db)
        empty_tables(db)
        open_, restricted = versions(db)
        with db.write() as tx:
            runner = runner_store.create_runner(tx.conn, "bench", uuid.uuid4().hex, {}, [])
        with_pools = make_queue(db, Signals())
        real = sql.pool_allows
        sql.pool_allows = lambda candidate, runner_id: true()  # type: ignore[assignment]
        try:
            without = make_queue(db, Signals())
            without._claim_statement()  # built now, without the pool condition
        finally:
            sql.pool_allows = real
        with_pools._claim_statement()
        a: list[float] = []
        b: list[float] = []
        for i in range(rounds):
            order = [(with_pools, a), (without, b)]
            for queue, into in order if i % 2 == 0 else reversed(order):
                into += round_of_claims(db, queue, runner, open_, restricted, jobs, blocked)
        return statistics.median(a), statistics.median(b)
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--blocked", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for kind in backends():
        with database(kind) as url:
            with_pools, without = measure(url, args.jobs, args.blocked, args.rounds)
        print(
            f"{kind}: claim with the pool check {with_pools * 1000:.2f} ms median, "
            f"without {without * 1000:.2f} ms, ratio {with_pools / without:.2f} "
            f"({args.jobs} claimable jobs behind {args.blocked} needing another tag, "
            f"{args.rounds} rounds interleaved)"
        )


if __name__ == "__main__":
    main()
