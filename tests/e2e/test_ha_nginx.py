"""Three ``rivet server`` processes on one PostgreSQL behind a real nginx configured
with the sample of docs/reliability.md: a runner and the CLI know only nginx's address.

In the middle of a job that prints numbered lines, the orchestrator serving the
``rivet job logs --follow`` stream (found by its access log) is killed with SIGKILL.
The runner and the follower carry on through the other two: the job succeeds, the
follower printed every line exactly once and in order, and the stored log is lines
1..N, each once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

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
from nginx import Nginx
from rivet_processes import Processes, RivetProcess, rivet_env, wait_ready

from rivet.store.testing import postgres_test_url, scratch_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.podman]

SERVERS = 3
LINES = 60

PIPELINE = counting_pipeline("ha-count", LINES)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = postgres_test_url()  # raises under CI when unset
    if base is None:
        pytest.skip("RIVET_TEST_DATABASE_URL is not set")
    with scratch_postgres(base) as url:
        yield url


@pytest.fixture
def nginx_front(
    postgres_url: str, processes: Processes, tmp_path: Path
) -> Iterator[tuple[Nginx, list[RivetProcess]]]:
    ports = [free_port() for _ in range(SERVERS)]
    servers = []
    for i, port in enumerate(ports):
        env = rivet_env(tmp_path / f"server{i}", RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
        argv = ["server", "--port", str(port), "--database-url", postgres_url]
        servers.append(processes.start(argv, env, f"server{i}"))
    for port, server in zip(ports, servers, strict=True):
        wait_ready(f"http://127.0.0.1:{port}", server)
    nginx = Nginx([f"127.0.0.1:{p}" for p in ports]).start()
    try:
        yield nginx, servers
    finally:
        processes.stop_all()
        nginx.stop()


def test_killing_an_orchestrator_mid_job_loses_nothing_behind_nginx(
    podman_available: str,
    nginx_front: tuple[Nginx, list[RivetProcess]],
    processes: Processes,
    tmp_path: Path,
) -> None:
    nginx, servers = nginx_front
    env = rivet_env(tmp_path / "cli", RIVET_SERVER=nginx.url, RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
    api = Api(nginx.url)
    job_id = ""
    try:
        api.create_pipeline(PIPELINE, "ha-count.lua")
        runner_env = dict(env, RIVET_REGISTRATION_TOKEN=api.registration_token())
        runner = processes.start(["runner", "--name", "ha-runner"], runner_env, "runner")
        runner.wait_for_output("ready", timeout=90)

        job_id = api.launch("ha-count")
        follower = processes.start(["job", "logs", job_id, "--follow"], env, "follower")
        follower.wait_for_output("line 5", timeout=90)

        stream = f"/api/jobs/{job_id}/logs/stream"
        streaming = wait_for(
            lambda: [s for s in servers if stream in s.output], 30, "the stream's access log"
        )
        assert len(streaming) == 1, "exactly one orchestrator serves the follower's stream"
        victim = streaming[0]
        killed_at = datetime.now(UTC)
        victim.signal(signal.SIGKILL)
        victim.wait(timeout=20)

        assert follower.wait(timeout=120) == 0, follower.output[-3000:]
        job = api.wait_finished(job_id, timeout=60)
        assert job["status"] == "succeeded", job
        assert datetime.fromisoformat(job["finished_at"]) > killed_at, "killed mid-job"

        expected = [f"line {i}" for i in range(1, LINES + 1)]
        printed = [f"line {n}" for n in COUNTED.findall(follower.output)]
        assert printed == expected, follower.output[-3000:]
        stored = api.logs(job_id)
        assert [ln["seq"] for ln in stored] == list(range(1, len(stored) + 1))
        assert [ln["message"] for ln in stored if ln["message"].startswith("line ")] == expected
        # The follower resumed on a survivor, after the last line it had printed.
        resumed = [s for s in servers if s is not victim and "logs/stream?after=" in s.output]
        assert resumed, "the follower reconnected through nginx to another orchestrator"
    finally:
        api.close()
        if job_id:
            remove_job_containers(job_id)
