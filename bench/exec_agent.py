"""The exec agent (issue 12, goal 1): ``process.run{"true"}`` from Lua through the
container's agent against a bare ``podman exec CTR true`` into the same running
container, interleaved in the same run; then ``process.parallel`` of 8
``sleep 0.5`` (one agent runs them at once: about 0.5 s, not 4 s).

    .venv/bin/python bench/exec_agent.py [--runs 50] [--parallel-runs 5] [--settle 0.3] [--json]

Each sample is preceded by a pause (``--settle``): podman and conmon go on working
for a while after ``podman exec`` returns, and without the pause the agent sample
that follows pays for that work instead of its own.

Prints medians and p90s, the ratio of the medians (goal: median <= 10 ms and
<= 0.05x podman exec), and the parallel wall time against 8 x 0.5 s. ``--json``
prints one JSON object instead (the test suite's smoke run reads it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from typing import Any

from lua_job import lua_job, pct

from rivet.engine.backends.podman import PodmanBackend

IMAGE = "localhost/rivet/busybox:latest"
PARALLEL = 8
SLEEP = 0.5


def measure(runs: int, parallel_runs: int, settle: float) -> dict[str, Any]:
    backend = PodmanBackend(exec_agent=True)
    with lua_job(backend, IMAGE) as job:
        name = job.container
        parallel = job.load(
            "local clock = ...\nlocal t0 = clock()\n"
            f"process.parallel({{ {', '.join(['1'] * PARALLEL)} }}, function()\n"
            f"  process.run({{ 'sleep', '{SLEEP}' }})\nend)\nreturn clock() - t0"
        )
        agent: list[float] = []
        bare: list[float] = []
        for _ in range(runs):
            time.sleep(settle)
            agent.append(job.time())
            time.sleep(settle)
            t0 = time.perf_counter()
            subprocess.run(["podman", "exec", name, "true"], check=True)
            bare.append(time.perf_counter() - t0)
        walls = [job.time(parallel, label="parallel") for _ in range(parallel_runs)]
        counts = backend.exec_counts()
    return {
        "container": name,
        "runs": runs,
        "settle_s": settle,
        "agent_median_ms": statistics.median(agent) * 1000,
        "agent_p90_ms": pct(agent, 0.9) * 1000,
        "podman_exec_median_ms": statistics.median(bare) * 1000,
        "podman_exec_p90_ms": pct(bare, 0.9) * 1000,
        "ratio": statistics.median(agent) / statistics.median(bare),
        "parallel_wall_median_s": statistics.median(walls),
        "parallel_sequential_s": PARALLEL * SLEEP,
        "exec_counts": counts,
        "agent_in_use": counts["agent"] == runs + 1 + PARALLEL * parallel_runs
        and counts["podman exec"] == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--parallel-runs", type=int, default=5)
    parser.add_argument(
        "--settle",
        type=float,
        default=0.3,
        help="seconds of pause before each sample (podman and conmon go on working after "
        "podman exec returns; without a pause the next sample pays for that)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.runs, args.parallel_runs, args.settle)
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"runs: {args.runs} each, interleaved, {args.settle:g} s pause before each, same "
        f"container ({figures['container']})"
    )
    print(
        f"podman exec CTR true      : median {figures['podman_exec_median_ms']:7.1f} ms"
        f"   p90 {figures['podman_exec_p90_ms']:7.1f} ms"
    )
    print(
        f"process.run('true'), agent: median {figures['agent_median_ms']:7.1f} ms"
        f"   p90 {figures['agent_p90_ms']:7.1f} ms"
    )
    print(f"ratio (agent / podman exec): {figures['ratio']:.3f}")
    print(
        f"process.parallel of {PARALLEL} x sleep {SLEEP}: median wall "
        f"{figures['parallel_wall_median_s']:.2f} s ({args.parallel_runs} runs; "
        f"one after the other would take {figures['parallel_sequential_s']:.1f} s), "
        f"ratio {figures['parallel_wall_median_s'] / figures['parallel_sequential_s']:.3f}"
    )
    print(f"commands through the agent: {figures['agent_in_use']} ({figures['exec_counts']})")


if __name__ == "__main__":
    main()
