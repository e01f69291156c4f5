"""Claim latency with 10,000 finished jobs of history versus none (issue 10): the
claim must stay flat as history grows.

For each database (SQLite, and PostgreSQL when ``--database-url``,
RIVET_TEST_DATABASE_URL or .venv/.rivet-pg-url names one) two fresh databases are made
side by side: one with no history, one holding ``--history`` finished jobs with their
rows as the real code writes them. One template job goes through the real path
(``create_job``, the queue's claim with its attempt and lease, ``append_lines`` of
``--lines`` log lines, ``end_attempt``, ``finish_job``); its rows in ``jobs``,
``job_attempts``, ``job_stages`` and ``log_lines`` are then copied ``--history`` times
with new ids and times shifted into the past, inserted in bulk (executemany, one
transaction per table chunk), so seeding takes seconds, not the minutes ten thousand
claim/finish round trips would. History is older than every queued job, as it is in
use. On PostgreSQL both databases are ANALYZEd after seeding (what autovacuum does
within a minute of such an insert; without it the planner's statistics would depend
on when autovacuum happened to run).

Then ``--rounds`` times, alternating which database goes first: queue ``--jobs`` jobs,
claim them one by one with ``JobQueue.try_claim`` (the claim statement, the attempt
and lease it starts, the read of the pinned version and of the last log line),
timing each claim, and delete the claimed jobs again so every round starts alike
and the empty database stays empty. Prints, per database, median and p95 claim time
and claims/s of each side, the ratio history / empty, and whether the goal (flat
within 20%, by the medians) is met. ``--explain`` prints the database's plan of the
claim statement on the database with history.

Usage: .venv/bin/python bench/claim_history.py [--history 10000] [--lines 20]
       [--jobs 100] [--rounds 10] [--database-url URL] [--explain]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from harness import backends, database, timed_claims
from psycopg.types.json import Jsonb
from sqlalchemy import Table, delete, select, text

from rivet.domain import JobStatus, PipelineDefinition, StageDef
from rivet.domain.reliability import AttemptEnd
from rivet.jobqueue import JobQueue, Offer, Signals, make_queue
from rivet.protocol import LogLine
from rivet.store import Database, upgrade
from rivet.store import jobs as job_store
from rivet.store import pipelines as pipeline_store
from rivet.store import runners as runner_store
from rivet.store.attempts import end_attempt
from rivet.store.ids import new_id
from rivet.store.logs import append_lines
from rivet.store.portable import utcnow
from rivet.store.tables import job_attempts, job_stages, jobs, log_lines

GOAL = 1.20  # history / empty, medians: "flat within 20%"
_CHUNK = 5000  # rows per executemany


@dataclass
class Side:
    """One database of the comparison and what its claims need."""

    db: Database
    queue: JobQueue
    runner: str
    version: Any
    times: list[float]


def prepare(url: str) -> Side:
    db = Database(url)
    upgrade(db)
    spec = PipelineDefinition(name="history", stages=(StageDef("build"), StageDef("test")))
    with db.write() as tx:
        pipeline_store.create_version(tx.conn, spec, "--", "history.lua", created_by="bench")
        version = pipeline_store.get_version(tx.conn, "history")
        runner = runner_store.create_runner(tx.conn, "bench", uuid.uuid4().hex, {}, [])
    return Side(db, make_queue(db, Signals()), runner, version, [])


def finished_template(side: Side, lines: int) -> str:
    """One job run to the end through the real store and queue code; its id."""
    with side.db.write() as tx:
        job_store.create_job(tx.conn, side.version, {}, "bench")
    assignment = side.queue.try_claim(side.runner, Offer())
    assert assignment is not None
    job_id = assignment.job_id
    now = utcnow()
    logged = [
        LogLine(seq=i, ts=now, stage="build", message=f"line {i} of the build's output")
        for i in range(1, lines + 1)
    ]
    with side.db.write() as tx:
        append_lines(tx.conn, job_id, logged, assignment.attempt)
        end_attempt(tx.conn, job_id, assignment.attempt, AttemptEnd.SUCCEEDED, None, now, "runner")
        job_store.finish_job(tx.conn, job_id, JobStatus.SUCCEEDED)
    return job_id


def copies(rows: list[dict[str, Any]], key: str, ids: list[str]) -> Iterator[dict[str, Any]]:
    """``rows`` once per id in ``ids`` (``key`` set to it), every time moved back by a
    day plus one minute per copy, so copies are older than anything queued later."""
    for n, job_id in enumerate(ids):
        shift = timedelta(days=1, minutes=len(ids) - n)
        for row in rows:
            moved = {k: v - shift if isinstance(v, datetime) else v for k, v in row.items()}
            moved[key] = job_id
            yield moved


def add_history(side: Side, count: int, lines: int) -> None:
    template = finished_template(side, lines)
    ids = [new_id() for _ in range(count)]
    tables: list[tuple[Table, str, Any]] = [
        (jobs, "id", jobs.c.id),
        (job_attempts, "job_id", job_attempts.c.job_id),
        (job_stages, "job_id", job_stages.c.job_id),
        (log_lines, "job_id", log_lines.c.job_id),
    ]
    for table, key, column in tables:  # parents first
        with side.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(table).where(column == template))]
        chunk: list[dict[str, Any]] = []
        for row in copies(rows, key, ids):
            chunk.append(row)
            if len(chunk) == _CHUNK:
                insert_rows(side.db, table, chunk)
                chunk = []
        if chunk:
            insert_rows(side.db, table, chunk)
    if side.db.dialect == "postgresql":
        with side.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


def insert_rows(db: Database, table: Table, rows: list[dict[str, Any]]) -> None:
    with db.write() as tx:
        tx.conn.execute(table.insert(), rows)


def one_round(side: Side, n: int) -> None:
    with side.db.write() as tx:
        for _ in range(n):
            job_store.create_job(tx.conn, side.version, {}, "bench")
    times, claimed = timed_claims(side.queue, side.runner)
    assert len(claimed) == n, (len(claimed), n)
    side.times += times
    with side.db.write() as tx:  # attempts and stages go with them (ON DELETE CASCADE)
        tx.conn.execute(delete(jobs).where(jobs.c.id.in_(claimed)))


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def explain(side: Side) -> str:
    """The database's plan of the claim statement (PostgreSQL: EXPLAIN ANALYZE inside
    a transaction rolled back, so nothing is claimed)."""
    statement = side.queue._claim_statement()  # type: ignore[attr-defined]
    params = {"claim_runner": side.runner, "claim_now": utcnow()}
    params.update(side.queue.match_params(Offer()))  # type: ignore[attr-defined]
    with side.db.write() as tx:
        job_store.create_job(tx.conn, side.version, {}, "bench")
    compiled = statement.compile(dialect=side.db.engine.dialect)
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS) " if side.db.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    )
    with side.db.engine.connect() as conn:
        driver_params = bound(compiled, params, side.db.dialect)
        rows = conn.exec_driver_sql(prefix + str(compiled), driver_params).all()
        conn.rollback()
    with side.db.write() as tx:
        tx.conn.execute(delete(jobs).where(jobs.c.status == JobStatus.QUEUED.value))
    return "\n".join("    " + " ".join(str(v) for v in row) for row in rows)


def bound(compiled: Any, params: dict[str, Any], dialect: str) -> Any:
    """``params`` as the driver takes them for ``compiled`` (JSON values encoded as the
    JSON column types do)."""
    values = dict(compiled.params, **params)
    for name, value in values.items():
        if isinstance(value, dict | list):
            values[name] = Jsonb(value) if dialect == "postgresql" else json.dumps(value)
    if compiled.positiontup:
        return tuple(values[name] for name in compiled.positiontup)
    return values


def measure(kind: str, args: argparse.Namespace) -> None:
    with database(kind) as empty_url, database(kind) as history_url:
        empty, history = prepare(empty_url), prepare(history_url)
        try:
            add_history(history, args.history, args.lines)
            for i in range(args.rounds):
                for side in (empty, history) if i % 2 == 0 else (history, empty):
                    one_round(side, args.jobs)
            report(kind, args, empty, history)
            if args.explain:
                print(f"  plan of the claim with history ({kind}):\n{explain(history)}")
        finally:
            empty.db.close()
            history.db.close()


def report(kind: str, args: argparse.Namespace, empty: Side, history: Side) -> None:
    print(
        f"[{kind}] {args.rounds} rounds x {args.jobs} claims each side, interleaved; "
        f"history: {args.history} finished jobs, {args.lines} log lines each"
    )
    for name, side in (("empty history", empty), (f"{args.history} finished", history)):
        med, tail = statistics.median(side.times), p95(side.times)
        rate = len(side.times) / sum(side.times)
        print(
            f"  {name:<15}: median {med * 1000:7.3f} ms  p95 {tail * 1000:7.3f} ms  "
            f"{rate:7.0f} claims/s"
        )
    ratio = statistics.median(history.times) / statistics.median(empty.times)
    tail_ratio = p95(history.times) / p95(empty.times)
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(
        f"  ratio history / empty: median {ratio:.2f}, p95 {tail_ratio:.2f}; "
        f"goal flat within 20% (median ratio <= {GOAL:.2f}): {verdict}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10000, help="finished jobs")
    parser.add_argument("--lines", type=int, default=20, help="log lines per finished job")
    parser.add_argument("--jobs", type=int, default=100, help="claims per round and side")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database-url", help="PostgreSQL server for the scratch databases")
    parser.add_argument("--explain", action="store_true", help="print the claim's plan")
    args = parser.parse_args()
    if args.database_url:  # harness.database reads the base URL from here
        os.environ["RIVET_TEST_DATABASE_URL"] = args.database_url
    for kind in backends():
        measure(kind, args)


if __name__ == "__main__":
    main()
