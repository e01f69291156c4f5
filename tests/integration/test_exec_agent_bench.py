"""A quick smoke run of bench/exec_agent.py (issue 12, goal 1), asserting only what is
stable under any load: the benchmark runs, every command took the agent path, the
agent path is faster than ``podman exec`` in the same run, and eight commands of
``process.parallel`` overlap. The figures themselves are the benchmark's to print
(docs/performance.md), never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.podman

BENCH = Path(__file__).resolve().parents[2] / "bench" / "exec_agent.py"


def test_the_exec_agent_benchmark_runs_through_the_agent_and_beats_podman_exec(
    podman_available: str,
) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "5", "--parallel-runs", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["agent_in_use"] is True, figures["exec_counts"]
    assert figures["agent_median_ms"] < figures["podman_exec_median_ms"], figures
    # Eight 0.5 s sleeps at once, not one after the other (4 s).
    assert figures["parallel_wall_median_s"] < figures["parallel_sequential_s"], figures
