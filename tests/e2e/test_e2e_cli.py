"""End to end: real ``rivet server`` and ``rivet runner`` processes; the pipeline is
created, launched with inputs and followed through the CLI (logs live over SSE)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from live_rivet import podman_containers
from rivet_processes import Processes, Rivet, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

PIPELINE = """
return pipeline.define({
  name = "e2e-greeter",
  inputs = {
    who = { type = "string", required = true },
    times = { type = "number", default = 1, options = { 1, 2, 3 } },
    shout = { type = "bool", default = false },
  },
  stages = {
    { name = "prepare", script = function()
        log.info("preparing for " .. input.get("who"))
        process.run({ "sh", "-c", "echo prepared > /workspace/state" })
      end },
    { name = "greet", script = function()
        for i = 1, input.get("times") do
          process.run({ "sh", "-c", "echo \\"hello $WHO #$N from $(cat state)\\"",
                        env = { WHO = input.get("who"), N = tostring(i) } })
        end
        output.set("greeted", input.get("who"))
      end },
    { name = "shout", condition = function() return input.get("shout") end,
      script = function() log.info("HELLO") end },
    { name = "finish", script = function() log.info("done with " .. output.get("greeted")) end },
  },
})
"""

EXPECTED = [
    "preparing for e2e",
    "hello e2e #1 from prepared",
    "hello e2e #2 from prepared",
    "hello e2e #3 from prepared",
    "done with e2e",
]


def in_order(output: str, expected: list[str]) -> None:
    position = 0
    for text in expected:
        found = output.find(text, position)
        assert found >= 0, f"{text!r} missing (or out of order) in:\n{output}"
        position = found + len(text)


def test_cli_launch_with_inputs_runs_in_podman_and_streams_the_log(
    podman_available: str, rivet_server: Rivet, processes: Processes, tmp_path: Path
) -> None:
    env = rivet_server.env
    processes.start_runner(env, "--name", "e2e-runner", "--tag", "os=linux")

    source = tmp_path / "greeter.lua"
    source.write_text(PIPELINE)
    created = run_cli(["pipeline", "create", str(source)], env)
    assert created.returncode == 0, created.stderr
    assert "created pipeline e2e-greeter version 1" in created.stdout

    bad = run_cli(["job", "launch", "e2e-greeter", "--input", "times=7"], env)
    assert bad.returncode == 2 and "who" in bad.stderr and "times" in bad.stderr

    # Launch and follow in one command.
    launched = run_cli(
        ["job", "launch", "e2e-greeter", "--input", "who=e2e", "--input", "times=3", "--follow"],
        env,
    )
    assert launched.returncode == 0, launched.stdout + launched.stderr
    in_order(launched.stdout, EXPECTED)
    job_id = re.search(r"launched job ([0-9a-f]{32})", launched.stdout + launched.stderr)
    assert job_id is not None
    job = rivet_server.api.job(job_id.group(1))
    assert job["status"] == "succeeded" and job["outputs"] == {"greeted": "e2e"}
    assert [s["status"] for s in job["stages"]] == [
        "succeeded",
        "succeeded",
        "skipped",
        "succeeded",
    ]
    assert job["runner"] == "e2e-runner"

    # Launch, then follow the live log over SSE from a separate command.
    second = run_cli(
        ["job", "launch", "e2e-greeter", "--input", "who=sse", "--input", "shout=yes"], env
    )
    assert second.returncode == 0, second.stderr
    second_id = re.search(r"([0-9a-f]{32})", second.stdout + second.stderr)
    assert second_id is not None
    followed = run_cli(["job", "logs", second_id.group(1)[:8], "--follow"], env)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    in_order(
        followed.stdout,
        ["preparing for sse", "hello sse #1 from prepared", "HELLO", "done with sse"],
    )
    lines = rivet_server.api.logs(second_id.group(1))
    assert [ln["seq"] for ln in lines] == list(range(1, len(lines) + 1))
    for job_ref in (job_id.group(1), second_id.group(1)):
        assert podman_containers(job_ref) == []
