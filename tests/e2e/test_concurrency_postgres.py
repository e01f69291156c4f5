"""Eight runner processes, one server on PostgreSQL, 200 jobs whose stages only log:
every job is claimed exactly once and every log line is stored exactly once, in order.

Evidence for "exactly once": each runner logs ``claimed job <id>`` for every claim;
across all runners the 200 ids appear once each, and the runner recorded on each job
is the one that logged the claim. A job handed to two runners would show up twice
(and the loser's reports would be refused).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from live_rivet import ADMIN_TOKEN, Api, free_port, logging_pipeline, wait_for
from rivet_processes import Processes, rivet_env, wait_ready

from rivet.store.testing import postgres_test_url, scratch_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

RUNNERS = 8
JOBS = 200
STAGES = 3
LINES = 5
CLAIMED = re.compile(r"claimed job ([0-9a-f]{32})")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = postgres_test_url()  # raises under CI when unset
    if base is None:
        pytest.skip("RIVET_TEST_DATABASE_URL is not set")
    with scratch_postgres(base) as url:
        yield url


def test_200_jobs_on_8_runners_are_claimed_once_with_every_line_once(
    postgres_url: str, processes: Processes, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = rivet_env(tmp_path / "server", RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
    server = processes.start(
        ["server", "--port", str(port), "--database-url", postgres_url], server_env, "server"
    )
    wait_ready(url, server)
    api = Api(url)
    try:
        api.create_pipeline(logging_pipeline("chatty", STAGES, LINES))
        runners = []
        for i in range(RUNNERS):
            env = rivet_env(
                tmp_path / f"runner{i}",
                RIVET_SERVER=url,
                RIVET_REGISTRATION_TOKEN=api.registration_token(),
            )
            runners.append(processes.start(["runner", "--name", f"r{i}"], env, f"runner{i}"))
        for runner in runners:
            runner.wait_for_output("ready", timeout=90)

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            job_ids = list(pool.map(lambda _: api.launch("chatty"), range(JOBS)))

        def all_finished() -> list[dict[str, object]] | None:
            jobs = [j for j in api.jobs(limit=500) if j["id"] in set(job_ids)]
            done = [j for j in jobs if j["status"] not in ("queued", "running")]
            return jobs if len(done) == JOBS else None

        jobs = wait_for(all_finished, timeout=150, what="all 200 jobs to finish")
        elapsed = time.monotonic() - started

        assert Counter(j["status"] for j in jobs) == {"succeeded": JOBS}
        runner_ids = {r["name"]: r["id"] for r in api.runners()}
        claims: dict[str, list[str]] = {}
        for i, runner in enumerate(runners):
            for job_id in CLAIMED.findall(runner.output):
                claims.setdefault(job_id, []).append(runner_ids[f"r{i}"])
        assert sorted(claims) == sorted(job_ids), "every job claimed, by someone"
        twice = {job: who for job, who in claims.items() if len(who) != 1}
        assert twice == {}, f"jobs claimed more than once: {twice}"
        for job in jobs:
            assert job["runner_id"] == claims[str(job["id"])][0]

        expected = [f"s{s} line {i}" for s in range(1, STAGES + 1) for i in range(1, LINES + 1)]
        with ThreadPoolExecutor(4) as pool:
            all_logs = list(pool.map(api.logs, job_ids))
        for job_id, lines in zip(job_ids, all_logs, strict=True):
            assert [ln["seq"] for ln in lines] == list(range(1, len(expected) + 1)), job_id
            assert [ln["message"] for ln in lines] == expected, job_id
        busy = Counter(who[0] for who in claims.values())
        print(f"\n{JOBS} jobs on {RUNNERS} runners in {elapsed:.1f} s; per runner: {busy}")
    finally:
        api.close()
