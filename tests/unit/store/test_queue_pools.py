"""Runner pools in the claim statement, on SQLite and PostgreSQL (the ``db`` fixture):
a runner never claims a job its pool may not run, whatever it offers, even when many
runners race for the same jobs, and an admin's change applies at the next attempt."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from store_helpers import definition, store_version

from rivet.jobqueue import Offer, Signals, make_queue
from rivet.store import Database
from rivet.store import access as access_store
from rivet.store import jobs as job_store
from rivet.store import runners as runner_store
from rivet.store.pipelines import PipelineVersion


def runner_in(db: Database, name: str, pool: str) -> str:
    with db.write() as tx:
        return runner_store.create_runner(tx.conn, name, f"hash-{name}", {}, [], pool=pool)


def restrict(db: Database, version: PipelineVersion, *pools: str) -> None:
    with db.write() as tx:
        access_store.set_pools(tx.conn, version.pipeline_id, pools)


def exclusive(db: Database, pool: str, value: bool = True) -> None:
    with db.write() as tx:
        runner_store.set_pool(tx.conn, pool, value)


def launch(db: Database, version: PipelineVersion, count: int = 1) -> set[str]:
    with db.write() as tx:
        return {job_store.create_job(tx.conn, version, {}, "anonymous") for _ in range(count)}


def test_a_pipeline_restricted_to_a_pool_runs_only_there(db: Database) -> None:
    queue = make_queue(db, Signals())
    deploy = store_version(db, definition("deploy"))
    restrict(db, deploy, "prod")
    (job,) = launch(db, deploy)
    default, staging = runner_in(db, "d", "default"), runner_in(db, "s", "staging")
    # Hostile: whatever tags and plugins the wrong runners offer, nothing is handed out.
    for runner in (default, staging):
        assert queue.try_claim(runner, Offer({"pool": "prod"}, ["prod"])) is None
    claimed = queue.try_claim(runner_in(db, "p", "prod"), Offer())
    assert claimed is not None and claimed.job_id == job


def test_an_exclusive_pool_runs_only_the_pipelines_assigned_to_it(db: Database) -> None:
    queue = make_queue(db, Signals())
    exclusive(db, "prod")
    prod = runner_in(db, "p", "prod")
    random_code = store_version(db, definition("random"))
    (stray,) = launch(db, random_code)
    assert queue.try_claim(prod, Offer()) is None  # unrestricted: not for prod runners
    deploy = store_version(db, definition("deploy"))
    restrict(db, deploy, "prod", "staging")
    (job,) = launch(db, deploy)
    claimed = queue.try_claim(prod, Offer())
    assert claimed is not None and claimed.job_id == job
    # the unrestricted job still runs on a shared pool
    shared = queue.try_claim(runner_in(db, "d", "default"), Offer())
    assert shared is not None and shared.job_id == stray


def test_changes_apply_at_the_next_claim_attempt(db: Database) -> None:
    queue = make_queue(db, Signals())
    prod = runner_in(db, "p", "prod")
    version = store_version(db, definition("demo"))
    (job,) = launch(db, version)
    exclusive(db, "prod")
    assert queue.try_claim(prod, Offer()) is None
    exclusive(db, "prod", False)
    restrict(db, version, "staging")
    assert queue.try_claim(prod, Offer()) is None  # restricted elsewhere now
    with db.write() as tx:  # an admin moves the runner
        runner_store.update_runner(tx.conn, prod, pool="staging")
    claimed = queue.try_claim(prod, Offer())
    assert claimed is not None and claimed.job_id == job


def test_racing_runners_of_the_wrong_pool_never_claim(db: Database) -> None:
    """16 runners drain the queue at once: the prod jobs go to prod runners only, the
    others to the shared pool only (prod is exclusive), each exactly once."""
    queue = make_queue(db, Signals())
    exclusive(db, "prod")
    deploy = store_version(db, definition("deploy"))
    restrict(db, deploy, "prod")
    tests = store_version(db, definition("tests"))
    prod_jobs, other_jobs = launch(db, deploy, 60), launch(db, tests, 60)
    pools = {runner_in(db, f"r{i}", "prod" if i % 4 == 0 else "default"): i for i in range(16)}
    start = threading.Barrier(len(pools))

    def drain(runner: str) -> list[str]:
        start.wait()
        got = []
        while (job := queue.try_claim(runner, Offer())) is not None:
            got.append(job.job_id)
        return got

    with ThreadPoolExecutor(len(pools)) as executor:
        results = dict(zip(pools, executor.map(drain, pools), strict=True))
    by_prod = [j for r, got in results.items() if pools[r] % 4 == 0 for j in got]
    by_others = [j for r, got in results.items() if pools[r] % 4 != 0 for j in got]
    assert sorted(by_prod) == sorted(prod_jobs)
    assert sorted(by_others) == sorted(other_jobs)
