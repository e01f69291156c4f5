"""End to end (real ``rivet server``, ``rivet runner`` and CLI processes): a job no
runner can take is explained once while it is followed, and a removed runner stops
(issue 14)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from live_rivet import wait_for
from rivet_processes import Processes, Rivet, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

PIPELINE = """
return pipeline.define({
  name = "needs-windows",
  runner = { { key = "os", value = "windows" }, { key = "arch", value = "x86_64" } },
  stages = { { name = "build", script = function() log.info("never") end } },
})
"""


def test_follow_says_once_why_no_runner_takes_the_job_and_remove_stops_the_runner(
    podman_available: str, rivet_server: Rivet, processes: Processes, tmp_path: Path
) -> None:
    env = rivet_server.env
    runner = processes.start_runner(env, "--name", "linux-box", "--tag", "os=linux")
    source = tmp_path / "needs-windows.lua"
    source.write_text(PIPELINE)
    assert run_cli(["pipeline", "create", str(source)], env).returncode == 0

    wanted = (
        "waiting for a runner with os=windows, arch=x86_64 "
        "(the only online runner does not match); still following"
    )
    launched = processes.start(["job", "launch", "needs-windows", "--follow"], env, "launch")
    launched.wait_for_output(wanted)
    job_id = re.search(r"launched job ([0-9a-f]{32})", launched.output)
    assert job_id is not None, launched.output
    logs = processes.start(["job", "logs", job_id.group(1)[:8], "--follow"], env, "logs")
    logs.wait_for_output(wanted)
    assert rivet_server.api.job(job_id.group(1))["status"] == "queued"  # still following

    shown = run_cli(["job", "show", job_id.group(1)], env)
    assert re.search(
        r"waiting\s+" + re.escape(wanted.removesuffix("; still following")), shown.stdout
    )

    rivet_server.api.cancel(job_id.group(1))
    assert launched.wait() == 130 and logs.wait() == 130
    assert launched.output.count("waiting for a runner") == 1  # printed once

    # Removing the runner revokes its token: its next poll is refused and it stops.
    runner_id = rivet_server.api.runners()[0]["id"]
    removed = run_cli(["runner", "remove", runner_id[:8], "--yes"], env)
    assert removed.returncode == 0, removed.stderr
    assert runner.wait(timeout=90) == 1
    assert re.search(
        # One error line, in the runner's text or JSON log format.
        r"(ERROR |\"level\": \"error\").*stopping: claim: runner 'linux-box' "
        r"\([0-9a-f]{8}\) was removed by an admin",
        runner.output,
    ), runner.output
    wait_for(lambda: not rivet_server.api.runners(), what="the runner to leave the list")
