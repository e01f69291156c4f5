"""Stage and job timeouts on real Podman: past its ``timeout`` a stage's process is
killed and its containers removed, the stage and the job end ``timed_out`` with a
message naming the stage (or the job) and the limit; later stages do not run."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from live_rivet import podman_containers
from recording import EventLog

from rivet.domain.status import JobStatus, StageStatus
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec

pytestmark = pytest.mark.podman

SLEEPER = """
return pipeline.define({{ name = "t", {job} stages = {{
  {{ name = "nap", {stage} container = "localhost/rivet/busybox:latest",
     script = function() process.run({{ "sh", "-c", "echo sleeping; sleep 120" }}) end }},
  {{ name = "after", script = function() log.info("not reached") end }},
}} }})
"""


def run(tmp_path: Path, source: str, timeout: float | None = None) -> tuple[object, EventLog, str]:
    job_id = f"t-{uuid.uuid4().hex[:10]}"
    executor = Executor(PodmanBackend(), ExecutorSettings(workspace_root=tmp_path / "ws"))
    events = EventLog()
    result = executor.run(JobSpec(job_id, source, "t.lua", {}, timeout=timeout), events)
    return result, events, job_id


@pytest.mark.parametrize(
    ("job", "stage", "spec_timeout", "message"),
    [
        ("", "timeout = 2,", None, "timed out: stage 'nap' ran past its timeout of 2 s"),
        ("timeout = 2,", "", None, "timed out: the job ran past its timeout of 2 s"),
        ("", "", 2.0, "timed out: the job ran past its timeout of 2 s"),  # the server's
    ],
    ids=["stage", "definition", "server"],
)
def test_a_timeout_kills_the_stage_and_ends_the_job_timed_out(
    podman_available: str,
    tmp_path: Path,
    job: str,
    stage: str,
    spec_timeout: float | None,
    message: str,
) -> None:
    started = time.monotonic()
    result, events, job_id = run(tmp_path, SLEEPER.format(job=job, stage=stage), spec_timeout)
    elapsed = time.monotonic() - started
    assert result.status is JobStatus.TIMED_OUT, result  # type: ignore[attr-defined]
    assert result.error == message  # type: ignore[attr-defined]
    stages = {s.name: s.status for s in result.stages}  # type: ignore[attr-defined]
    assert stages == {"nap": StageStatus.TIMED_OUT, "after": StageStatus.PENDING}
    said = [e.message for e in events.lines]
    assert "sleeping" in said and "not reached" not in said
    assert any(message in m for m in said), said
    assert elapsed < 100, "the 120 s sleep was killed"  # loose: only that it did not run out
    assert podman_containers(job_id) == []
