"""A runner killed with SIGKILL mid-job, then started again (same home, same token),
on real Podman: before claiming anything it removes the job's container, workspace
and /dev/shm secret files its earlier life left, says which job that was, and the
server ends that attempt as lost at once (no waiting for the 60 s lease)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from live_rivet import ADMIN, ADMIN_TOKEN, Api, free_port, podman_containers, wait_for
from rivet_processes import Processes, rivet_env, wait_ready

from rivet.engine.job_secrets import default_secrets_root

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

PIPELINE = """
return pipeline.define({
  name = "killed",
  lease = 60,
  stages = {
    { name = "nap", container = "localhost/rivet/busybox:latest", script = function()
        process.run({ "sh", "-c", "echo napping; sleep 300", secret_files = { id = "NAP_KEY" } })
      end },
  },
})
"""


def test_a_restarted_runner_removes_what_its_killed_life_left_and_reports_it(
    podman_available: str, processes: Processes, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = rivet_env(tmp_path / "server", RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
    server = processes.start(["server", "--port", str(port)], env, "server")
    wait_ready(url, server)
    api = Api(url)
    try:
        put = api.http.put(
            "/api/secrets/NAP_KEY", json={"value": "s3cr3t", "grants": ["killed"]}, headers=ADMIN
        )
        assert put.is_success, put.text
        assert api.http.post("/api/pipelines", json={"source": PIPELINE}, headers=ADMIN).is_success
        home = tmp_path / "runner"
        runner_env = rivet_env(home, RIVET_SERVER=url)
        first = processes.start(
            ["runner", "--name", "phoenix"],
            dict(runner_env, RIVET_REGISTRATION_TOKEN=api.registration_token()),
            "runner1",
        )
        first.wait_for_output("ready", timeout=90)
        job_id = api.launch("killed", admin=True)  # it has a secret granted
        wait_for(lambda: any(ln["message"] == "napping" for ln in api.logs(job_id)), 90, "napping")
        runner_id = api.job(job_id)["runner_id"]
        secret_dirs = list(default_secrets_root().glob(f"rivet-secrets-{runner_id}-*"))
        workspace = home / "workspaces" / job_id
        assert secret_dirs and workspace.is_dir() and podman_containers(job_id)

        first.signal(signal.SIGKILL)
        first.wait(30)
        assert podman_containers(job_id), "a killed runner leaves its container running"
        assert api.job(job_id)["status"] == "running"

        second = processes.start(["runner", "--name", "phoenix"], runner_env, "runner2")
        second.wait_for_output("the server ended the attempts this runner left running", 90)
        said = second.output
        assert f"cleaned up after an earlier life of this runner: jobs {job_id}" in said, said
        assert "1 container(s), 1 workspace(s), 1 secret dir(s) removed" in said, said
        assert podman_containers(job_id) == []
        assert not workspace.exists()
        assert not any(d.exists() for d in secret_dirs)
        job = api.job(job_id)
        assert job["status"] == "failed", job
        assert job["error"].startswith("runner phoenix restarted at "), job["error"]
        assert "while running attempt 1: the process that ran it died" in job["error"]
        assert [a["outcome"] for a in job["attempts"]] == ["lost"]
        runners = {r["name"]: r for r in api.runners()}
        assert runners["phoenix"]["current_jobs"] == []
    finally:
        api.close()
