"""Overhead of ``process.run`` of ``true`` against a bare ``podman exec CTR true``
into the same running container, measured interleaved in the same run.

    .venv/bin/python bench/process_overhead.py [--runs 50]

Prints the median and p90 of each and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from lua_job import lua_job, pct

from rivet.engine.backends.podman import PodmanBackend

IMAGE = "alpine:latest"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    rivet: list[float] = []
    bare: list[float] = []
    with lua_job(PodmanBackend(), IMAGE) as job:
        name = job.container
        for _ in range(args.runs):
            rivet.append(job.time())
            t0 = time.perf_counter()
            subprocess.run(["podman", "exec", name, "true"], check=True)
            bare.append(time.perf_counter() - t0)

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
