"""Every script of bench/ still runs: a tiny run of each, asserting only that it ends
with exit 0 and prints its figures (never the figures themselves: those are the
benchmark's to print, docs/performance.md quotes them). A benchmark that no longer
runs against the code (a changed signature, a renamed module) fails here, not on the
day someone needs its numbers. bench/exec_agent.py has its own smoke test
(test_exec_agent_bench.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

# script, tiny arguments, a word every run prints with its figures
WITHOUT_CONTAINERS = [
    (
        "pipeline_listing.py",
        ["--pipelines", "2", "--versions", "1", "--source-kib", "2", "--rounds", "1"],
        "median",
    ),
    ("check_large.py", ["--stages", "20", "--runs", "1"], "median"),
    ("callback_overhead.py", ["--calls", "1000", "--runs", "1"], "median"),
    ("archive_extract.py", ["--files", "20", "--runs", "1"], "median"),
    ("claim_throughput.py", ["--jobs", "20", "--runners", "2"], "claims/s"),
    ("claim_pools.py", ["--jobs", "5", "--blocked", "5", "--rounds", "1"], "median"),
    (
        "claim_history.py",
        ["--history", "20", "--lines", "2", "--jobs", "3", "--rounds", "2", "--explain"],
        "ratio",
    ),
    ("lease_detection.py", ["--samples", "2", "--lease", "1"], "median"),
    ("artifact_transfer.py", ["--mib", "1", "--rounds", "1"], "medians"),
    ("tracing_overhead.py", ["--rounds", "1", "--commands", "5"], "median"),
]
WITH_CONTAINERS = [
    ("dispatch.py", ["--runs", "1"], "median"),
    ("process_overhead.py", ["--runs", "2"], "median"),
    ("userns_start.py", ["--rounds", "1"], "median"),
]


def run_bench(script: str, args: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def test_every_benchmark_is_covered_by_a_smoke_run() -> None:
    covered = {s for s, _, _ in WITHOUT_CONTAINERS + WITH_CONTAINERS} | {"exec_agent.py"}
    helpers = {"harness.py", "lua_job.py"}  # shared pieces, not benchmarks
    scripts = {p.name for p in BENCH.glob("*.py") if p.name not in helpers}
    assert scripts == covered


@pytest.mark.parametrize(("script", "args", "word"), WITHOUT_CONTAINERS)
def test_a_benchmark_without_containers_runs_and_prints_its_figures(
    script: str, args: list[str], word: str
) -> None:
    assert word in run_bench(script, args)


@pytest.mark.podman
@pytest.mark.parametrize(("script", "args", "word"), WITH_CONTAINERS)
def test_a_benchmark_with_containers_runs_and_prints_its_figures(
    podman_available: str, script: str, args: list[str], word: str
) -> None:
    assert word in run_bench(script, args)
