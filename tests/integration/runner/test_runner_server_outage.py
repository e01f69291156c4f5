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
from live_rivet import Api, ServerProcess, free_port, podman_containers, tagged_pipeline, wait_for

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
