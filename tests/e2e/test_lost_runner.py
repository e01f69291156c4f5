"""A runner paused past its lease (SIGSTOP), on SQLite and PostgreSQL: the server ends
the attempt as lost, a cancel of the orphaned job takes effect when the lease runs
out (and the CLI says so), and the runner, resumed (SIGCONT), overwrites nothing —
its late reports are refused with 409 — and stops the job's container.

Real ``rivet server`` and ``rivet runner`` processes, real Podman; the lease is 3 s
(the pipeline's ``lease``), so nothing here waits long.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from live_rivet import ADMIN_TOKEN, Api, free_port, podman_containers, wait_for
from rivet_processes import Processes, rivet_env, run_cli, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

PIPELINE = """
return pipeline.define({
  name = "sleepy",
  lease = 3,
  stages = {
    { name = "nap", script = function()
        process.run({ "sh", "-c", "echo napping; sleep 300" })
      end },
  },
})
"""


def test_a_paused_runner_loses_its_job_and_overwrites_nothing_when_it_wakes(
    podman_available: str, database_url: str, processes: Processes, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = rivet_env(tmp_path / "server", RIVET_SERVER=url, RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
    server = processes.start(
        ["server", "--port", str(port), "--database-url", database_url], env, "server"
    )
    wait_ready(url, server)
    api = Api(url)
    job_id = ""
    try:
        api.create_pipeline(PIPELINE)
        runner_env = rivet_env(
            tmp_path / "runner", RIVET_SERVER=url, RIVET_REGISTRATION_TOKEN=api.registration_token()
        )
        runner = processes.start(["runner", "--name", "sleeper"], runner_env, "runner")
        runner.wait_for_output("ready", timeout=90)
        job_id = api.launch("sleepy")

        def napping() -> bool:
            return any(ln["message"] == "napping" for ln in api.logs(job_id))

        wait_for(napping, 90, "the job's first line")
        assert podman_containers(job_id), "the job's container runs"
        runner.signal(signal.SIGSTOP)
        try:
            cancelled = run_cli(["job", "cancel", job_id], env)
            assert cancelled.returncode == 0, cancelled.stderr
            said = " ".join(cancelled.stdout.split())
            assert "cancel requested" in said, said
            assert "if sleeper is gone, the job ends when its lease runs out at" in said, said

            def ended() -> dict[str, object] | None:
                job = api.job(job_id)
                return job if job["status"] == "cancelled" else None

            job = wait_for(ended, 60, "the orphaned job to end")
            assert "runner sleeper was lost: no heartbeat since" in str(job["error"])
            attempts = job["attempts"]
            assert isinstance(attempts, list) and [a["outcome"] for a in attempts] == ["lost"]
            lines_before = api.logs(job_id)
        finally:
            runner.signal(signal.SIGCONT)

        runner.wait_for_output("stopping it", timeout=60)
        wait_for(lambda: not podman_containers(job_id), 90, "the job's container to go")
        runner.wait_for_output(f"job {job_id} finished", timeout=60)
        assert re.search(r"refused its completion: completion: attempt 1 of job", runner.output)
        after = api.job(job_id)
        assert after["status"] == "cancelled" and after["error"] == job["error"]
        assert after["attempts"] == job["attempts"] and after["outputs"] == {}
        assert api.logs(job_id) == lines_before, "no late line was stored"

        shown = run_cli(["job", "show", job_id], env)
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"1\W+sleeper\W.*\Wlost\W+runner sleeper was lost", shown.stdout), (
            shown.stdout
        )
    finally:
        api.close()
