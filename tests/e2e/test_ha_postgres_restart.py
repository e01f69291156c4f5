"""PostgreSQL restarts in the middle of a job: nothing is lost and nobody needs a hand.

A ``rivet server`` on a PostgreSQL cluster of the test's own (tests/support/pg_cluster.py;
the shared test cluster is never stopped), a runner and a ``rivet job logs --follow``.
While the job prints numbered lines the cluster is stopped: ``/api/ready`` answers 503
naming the database; the cluster is started again: ``/api/ready`` is 200 again (which
also needs the wake-up listener to have reconnected). The job succeeds, the follower
printed every line once and in order, and the stored log is lines 1..N, each once —
including the lines printed while the database was gone (the runner buffered them and
retried with backoff).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from live_rivet import (
    ADMIN_TOKEN,
    COUNTED,
    Api,
    counting_pipeline,
    free_port,
    remove_job_containers,
    wait_for,
)
from pg_cluster import own_cluster
from rivet_processes import Processes, rivet_env, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.podman]

LINES = 80
OUTAGE = 3.0  # seconds the database stays down (the job prints on meanwhile)

PIPELINE = counting_pipeline("pg-restart", LINES)


def ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/api/ready", timeout=10)


def test_a_postgres_restart_mid_job_loses_nothing(
    podman_available: str, processes: Processes, tmp_path: Path
) -> None:
    with own_cluster() as cluster:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = rivet_env(tmp_path / "home", RIVET_SERVER=url, RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
        server = processes.start(
            ["server", "--port", str(port), "--database-url", cluster.url], env, "server"
        )
        wait_ready(url, server)
        api = Api(url)
        job_id = ""
        try:
            api.create_pipeline(PIPELINE, "pg-restart.lua")
            runner_env = dict(env, RIVET_REGISTRATION_TOKEN=api.registration_token())
            runner = processes.start(["runner", "--name", "pg-runner"], runner_env, "runner")
            runner.wait_for_output("ready", timeout=90)

            job_id = api.launch("pg-restart")
            follower = processes.start(["job", "logs", job_id, "--follow"], env, "follower")
            follower.wait_for_output("line 5", timeout=90)

            stopped_at = datetime.now(UTC)
            cluster.stop()
            down = wait_for(lambda: (r := ready(url)).status_code == 503 and r, 30, "503")
            error = down.json()["error"]
            assert error["code"] == "not_ready"
            assert error["message"].startswith("database unavailable")
            time.sleep(OUTAGE)  # the job goes on printing; the runner buffers
            cluster.start()
            wait_for(lambda: ready(url).status_code == 200, 60, "ready again")

            assert follower.wait(timeout=120) == 0, follower.output[-3000:]
            job = api.wait_finished(job_id, timeout=60)
            assert job["status"] == "succeeded", job
            finished_at = datetime.fromisoformat(job["finished_at"])
            assert finished_at > stopped_at, "the database went away in the middle of the job"
            expected = [f"line {i}" for i in range(1, LINES + 1)]
            printed = [f"line {n}" for n in COUNTED.findall(follower.output)]
            assert printed == expected, follower.output[-3000:]
            stored = api.logs(job_id)
            assert [ln["seq"] for ln in stored] == list(range(1, len(stored) + 1))
            messages = [ln["message"] for ln in stored if ln["message"].startswith("line ")]
            assert messages == expected
        finally:
            api.close()
            processes.stop_all()
            if job_id:
                remove_job_containers(job_id)
