"""SIGTERM and SIGHUP stop the runner and ``rivet up`` the way Ctrl-C does, never by
killing them with a job's containers still running (``rivet run``'s cases are in
tests/integration/cli/test_run_cli.py).

Runner: the first signal stops claiming and lets the job go on, the second cancels it:
the job is reported ``cancelled``, its containers are gone, the runner exits 0.
``rivet up``: the signal stops the runner (drain, then cancel after the grace) and
the server; the job ends ``cancelled`` with its containers gone and both children
have exited."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx
import pytest
from live_rivet import Api, free_port, podman_containers, wait_for
from rivet_processes import Processes, Rivet, processes_mentioning, rivet_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

SLEEPER = """
return pipeline.define({
  name = "sleeper",
  stages = {
    { name = "wait", script = function() process.run({ "sleep", "60" }) end },
    { name = "after", script = function() log.info("after the sleep") end },
  },
})
"""

SIGNALS = [signal.SIGTERM, signal.SIGHUP]


def wait_sleeping(api: Api, job_id: str) -> None:
    """Until the job's container runs ``sleep 60``."""

    def sleeping() -> bool:
        started = any("$ sleep 60" in line["message"] for line in api.logs(job_id))
        return started and bool(podman_containers(job_id))

    wait_for(sleeping, 90, f"job {job_id} to run its sleep")


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_runner_cancels_on_the_second_signal_and_leaves_no_container(
    podman_available: str, rivet_server: Rivet, processes: Processes, sig: signal.Signals
) -> None:
    token = run_cli(["runner", "token", "create", "--quiet"], rivet_server.env)
    assert token.returncode == 0, token.stderr
    env = dict(rivet_server.env, RIVET_REGISTRATION_TOKEN=token.stdout.strip())
    runner = processes.start(["runner", "--name", f"sig-{sig.name}"], env, "runner")
    runner.wait_for_output("ready")
    api = rivet_server.api
    api.create_pipeline(SLEEPER, "sleeper.lua")
    job_id = api.launch("sleeper")
    wait_sleeping(api, job_id)

    runner.signal(sig)
    runner.wait_for_output(f"{sig.name}: stopping (again to cancel running jobs)")
    assert api.job(job_id)["status"] == "running"  # the first signal lets it run
    runner.signal(sig)
    runner.wait_for_output(f"{sig.name}: cancelling the running jobs")
    job = api.wait_finished(job_id, timeout=60)
    assert job["status"] == "cancelled", job
    assert job["stages"][0]["status"] == "cancelled", job
    assert not any("after the sleep" in line["message"] for line in api.logs(job_id))
    assert runner.wait(60) == 0, runner.output
    assert podman_containers(job_id) == []
    assert "runner stopped" in runner.output


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_rivet_up_stops_its_children_and_the_job_on_the_signal(
    podman_available: str, processes: Processes, tmp_path: Path, sig: signal.Signals
) -> None:
    home = tmp_path / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = processes.start(["up", "--port", str(port)], rivet_env(home), "up")
    up.wait_for_output("Press Ctrl-C to stop.", timeout=90)
    api = Api(url)
    try:
        api.create_pipeline(SLEEPER, "sleeper.lua")
        job_id = api.launch("sleeper")
        wait_sleeping(api, job_id)
    finally:
        api.close()

    up.signal(sig)
    assert up.wait(90) == 0, up.output
    assert "stopping the runner and the server" in up.output
    assert processes_mentioning(str(home)) == [], "server or runner still running"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/health", timeout=2)
    assert podman_containers(job_id) == []
    with sqlite3.connect(home / "rivet.db") as db:
        (status,) = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert status == "cancelled"
    runner_log = (home / "logs" / "runner.log").read_text()
    assert (
        "SIGTERM: stopping" in runner_log and "SIGTERM: cancelling the running jobs" in runner_log
    )
