"""Overhead of ``process.run`` of ``true`` against a bare ``podman exec CTR true``
into the same running container, measured interleaved in the same run.

    .venv/bin/python bench/process_overhead.py [--runs 50]

Prints the median and p90 of each and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken, LogEvent, StageResult
from rivet.engine.modules import install_all
from rivet.lua.sandbox import Sandbox

IMAGE = "alpine:latest"


class Quiet:
    def log(self, event: LogEvent) -> None:
        pass

    def stage_started(self, stage: StageResult) -> None:
        pass

    def stage_finished(self, stage: StageResult) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    backend = PodmanBackend()
    workspace = Path(tempfile.mkdtemp(prefix="rivet-bench-"))
    job_id = f"bench-{uuid.uuid4().hex[:8]}"
    ctx = JobContext(
        job_id=job_id,
        events=Quiet(),
        backend=backend,
        workspace=workspace,
        default_image=IMAGE,
        inputs={},
        cancel=CancelToken(),
    )
    sandbox = Sandbox()
    install_all(sandbox, ctx)
    ctx.phase = Phase.RUN
    clock = sandbox.expose(time.perf_counter, "clock")
    one_run = sandbox.load(
        "local clock = ...\nlocal t0 = clock()\nprocess.run({ 'true' })\nreturn clock() - t0",
        "bench.lua",
    )
    try:
        sandbox.call(one_run, clock, budget=60, label="warm-up")  # starts the container
        # The executor's own container: its name includes the policy's default limits.
        name = subprocess.run(
            ["podman", "ps", "--filter", f"label=rivet.job={job_id}", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        rivet: list[float] = []
        bare: list[float] = []
        for _ in range(args.runs):
            rivet.append(sandbox.call(one_run, clock, budget=60, label="bench"))
            t0 = time.perf_counter()
            subprocess.run(["podman", "exec", name, "true"], check=True)
            bare.append(time.perf_counter() - t0)
    finally:
        ctx.remove_containers()
        for close in ctx.closers:
            close()

    med_r, med_b = statistics.median(rivet), statistics.median(bare)
    print(f"runs: {args.runs} each, interleaved, same container ({name})")
    for label, samples, median in (
        ("podman exec CTR true", bare, med_b),
        ("process.run('true')", rivet, med_r),
    ):
        p90 = pct(samples, 0.9)
        print(f"{label:<21}: median {median * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms")
    overhead = (med_r - med_b) * 1000
    print(f"overhead             : {overhead:+.1f} ms per call, ratio {med_r / med_b:.3f}")


if __name__ == "__main__":
    main()
