"""A job's Lua runtime without the executor, for the benchmarks that time
``process.run`` from Lua (bench/exec_agent.py, bench/process_overhead.py): the real
runtime modules, policy and Podman backend in one sandbox, its container started by a
first ``process.run({'true'})``, and the name of that container for a bare
``podman exec`` into it."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken, LogEvent, StageResult
from rivet.engine.modules import install_all
from rivet.lua.sandbox import Sandbox

__all__ = ["LuaJob", "lua_job", "pct"]

ONE_RUN = "local clock = ...\nlocal t0 = clock()\nprocess.run({ 'true' })\nreturn clock() - t0"


class Quiet:
    """An event sink that drops every event (the benchmarks print their own)."""

    def log(self, event: LogEvent) -> None:
        pass

    def stage_started(self, stage: StageResult) -> None:
        pass

    def stage_finished(self, stage: StageResult) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class LuaJob:
    sandbox: Sandbox
    container: str  # the job's running container, for `podman exec`

    def __post_init__(self) -> None:
        self._clock = self.sandbox.expose(time.perf_counter, "clock")
        self._one_run = self.sandbox.load(ONE_RUN, "bench.lua")

    def load(self, source: str) -> object:
        """A chunk that gets the clock as ``...`` and returns the seconds it measured."""
        return self.sandbox.load(source, "bench.lua")

    def time(self, chunk: object | None = None, label: str = "bench") -> float:
        """Seconds ``chunk`` (default: ``process.run({'true'})``) took, by its clock."""
        chunk = self._one_run if chunk is None else chunk
        return float(self.sandbox.call(chunk, self._clock, budget=60, label=label))


@contextmanager
def lua_job(backend: PodmanBackend, image: str) -> Iterator[LuaJob]:
    """A job on ``backend`` whose container (``image``) is already running; its
    containers are removed and its closers run on exit."""
    job_id = f"bench-{uuid.uuid4().hex[:8]}"
    ctx = JobContext(
        job_id=job_id,
        events=Quiet(),
        backend=backend,
        workspace=Path(tempfile.mkdtemp(prefix="rivet-bench-")),
        default_image=image,
        inputs={},
        cancel=CancelToken(),
    )
    sandbox = Sandbox()
    install_all(sandbox, ctx)
    ctx.phase = Phase.RUN
    try:
        job = LuaJob(sandbox, container="")
        job.time(label="warm-up")  # starts the container (and its agent)
        # The executor's own container: its name includes the policy's default limits.
        job.container = subprocess.run(
            ["podman", "ps", "--filter", f"label=rivet.job={job_id}", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield job
    finally:
        ctx.remove_containers()
        for close in ctx.closers:
            close()
