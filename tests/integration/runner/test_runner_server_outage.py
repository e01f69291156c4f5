"""A server crash while a job runs: the orchestrator process is killed (SIGKILL) and
restarted on the same database and port. The runner keeps its job, buffers its log,
retries, and the job completes with every line stored exactly once, in order."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from live_rivet import (
    Api,
    ServerProcess,
    free_port,
    lua_str,
    podman_containers,
    tagged_pipeline,
    wait_for,
)
from memory import MiB, PeakRss

from rivet.runner.agent import Agent

StartAgent = Callable[..., Agent]
LINES = 60


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", free_port())
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.mark.podman
def test_job_survives_a_server_crash_and_every_line_arrives_once(
    podman_available: str,
    server: ServerProcess,
    start_agent: StartAgent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tag = uuid.uuid4().hex[:12]
    api = Api(server.url)
    try:
        name = tagged_pipeline(
            api,
            tag,
            stages='{ name = "count", script = function() process.run({ "sh", "-c", '
            f'"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.05; done" }}) end }}',
        )
        with caplog.at_level(logging.INFO, logger="rivet.runner"):
            start_agent(
                server=server.url,
                tags=(f"t={tag}",),
                registration_token=api.registration_token(),
            )
            job_id = api.launch(name)
            wait_for(
                lambda: any(ln["message"] == "line 1" for ln in api.logs(job_id)),
                timeout=30,
                what="the first line",
            )
            server.kill()
            time.sleep(1.5)  # lines, stage updates and heartbeats fail meanwhile
            server.start()
            job = api.wait_finished(job_id, timeout=60)
        assert job["status"] == "succeeded", job
        lines = api.logs(job_id)
        assert [ln["seq"] for ln in lines] == list(range(1, len(lines) + 1))
        counted = [ln["message"] for ln in lines if ln["message"].startswith("line ")]
        assert counted == [f"line {i}" for i in range(1, LINES + 1)]
        assert [s["status"] for s in job["stages"]] == ["succeeded"]
        assert "unreachable" in caplog.text and "reachable again" in caplog.text
        assert podman_containers(job_id) == []
    finally:
        api.close()


BIG_LINES = 65536  # of about 1 KiB each: 64 MiB of output, eight times the buffer


@pytest.mark.podman
def test_a_fast_printing_job_while_the_server_is_down_holds_the_runner_to_its_buffer(
    podman_available: str, server: ServerProcess, start_agent: StartAgent
) -> None:
    """The job prints 64 MiB as fast as it can while the server is away. The runner
    (an agent in this process; the server is another process) buffers at most its
    8 MiB and then holds the command back through its pipe: its peak RSS grows by a
    bounded amount, not with the output. When the server is back every line arrives,
    once and in order."""
    tag = uuid.uuid4().hex[:12]
    api = Api(server.url)
    awk = (
        'BEGIN { pad = sprintf("%1000s", ""); gsub(/ /, "x", pad); '
        f"for (i = 1; i <= {BIG_LINES}; i++) print i, pad }}"
    )
    try:
        name = tagged_pipeline(
            api,
            tag,
            stages='{ name = "flood", script = function() process.run({ "awk", '
            f"{lua_str(awk)} }}) end }}",
        )
        start_agent(
            server=server.url, tags=(f"t={tag}",), registration_token=api.registration_token()
        )
        with PeakRss() as peak:
            job_id = api.launch(name)
            wait_for(lambda: api.logs(job_id), timeout=60, what="the first lines")
            server.kill()
            time.sleep(8)  # the job would print all 64 MiB in a second or two
            server.start()
            job = api.wait_finished(job_id, timeout=300)
        print(
            f"64 MiB printed while the server was down: runner peak RSS +{peak.growth / MiB:.0f} MiB"
        )
        assert job["status"] == "succeeded", job
        assert peak.growth < 6 * 8 * MiB, f"runner grew by {peak.growth / MiB:.0f} MiB"
        numbers: list[int] = []
        seqs: list[int] = []
        after = 0
        while True:
            page = api.http.get(f"/api/jobs/{job_id}/logs", params={"after": after, "limit": 5000})
            lines = page.json()["lines"]
            if not lines:
                break
            for line in lines:
                seqs.append(line["seq"])
                first = line["message"].split(" ", 1)[0]
                if first.isdigit() and line["message"].endswith("x" * 1000):
                    numbers.append(int(first))
            after = lines[-1]["seq"]
        assert seqs == list(range(1, len(seqs) + 1))
        assert numbers == list(range(1, BIG_LINES + 1))
    finally:
        api.close()
