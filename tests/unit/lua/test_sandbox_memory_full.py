"""The sandbox battery, part five: a pipeline that fills its Lua memory to just under
the cap and then calls a Rivet function cannot hang, crash or wedge the process.

Before the fix, the Rivet function's result was converted into Lua by lupa with no
protected call around it: the allocation failed there, Lua's error jumped across the
Python frames of the call, the thread's hold on the GIL was never released, and the
process hung (every other job on the runner with it). Now the memory cap holds for
Lua code only and is lifted while Python has control; what Rivet hands to Lua is
measured against the cap instead, and a result that does not fit fails the call with
"memory limit … exceeded" (see ``rivet/lua/memory.py``).

Each test runs its jobs through the real executor in a subprocess
(``tests/support/full_memory_jobs.py``) with a timeout, so that a hang fails the test
instead of wedging pytest. Every Rivet function that hands data to Lua is called at
several fill levels (how close to the cap) and with several piece sizes (how the
last bytes were filled); each job must end — succeeded, or failed with the memory
error — and a benign job run afterwards in the same process must still succeed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from full_memory_jobs import (
    CALLS,
    CONTAINER_CALLS,
    CONTAINER_VARIANTS,
    DEFINITIONS,
    FEW_LEVELS,
    LEVELS,
    VARIANTS,
    fill_code,
    stage_job,
    variant_pipeline,
)

MEMORY_MIB = 32
HARNESS = Path(__file__).resolve().parents[2] / "support" / "full_memory_jobs.py"
MEMORY_ERROR = f"memory limit of {MEMORY_MIB} MiB exceeded"


def run_jobs(jobs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    spec = json.dumps({"memory_mib": MEMORY_MIB, "jobs": jobs})
    try:
        proc = subprocess.run(
            [sys.executable, str(HARNESS)],
            input=spec,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        last = stderr.strip().splitlines()[-1:] or ["before any job"]
        pytest.fail(f"the process hung (killed after {timeout:g} s), last progress: {last[0]}")
    assert proc.returncode == 0, (
        f"the process died with exit code {proc.returncode}:\n{proc.stderr[-3000:]}"
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["name"] for line in lines] == [job["name"] for job in jobs] + ["after"]
    after = lines[-1]
    assert after["status"] == "succeeded", after
    assert after["outputs"] == {"n": 1000, "decoded": 3}
    return lines[:-1]


# Which Rivet function refuses a result that does not fit, for the calls that hand
# data to Lua (log functions and a stage's own results build their data in Lua: there
# the pipeline's own allocation fails, which ends the job just as well).
REFUSED_BY = {
    "fs.read": "fs.read",
    "fs.list and fs.glob": "fs.list",
    "json.decode": "json.decode",
    "json.encode": "json.encode",
    "http": "http.get",
    "input": "input.",
    "secret": "secret.get",
    "output": "output.",
    "process.run": "process.run",
    "process.parallel and container.with": "process.",
}


def check_outcomes(lines: list[dict[str, Any]]) -> list[str]:
    """Every job ended, succeeded or failed with the memory error; the errors."""
    errors = []
    for line in lines:
        assert line["status"] in ("succeeded", "failed"), line
        if line["status"] == "failed":
            assert MEMORY_ERROR in (line["error"] or ""), line
            errors.append(line["error"])
    return errors


def jobs_for(name: str, setup: str, calls: str, levels: list[tuple[int, int]]) -> list[Any]:
    return [
        {
            "name": f"{name} margin={margin} step={step}",
            "source": stage_job(MEMORY_MIB, setup, calls, margin, step),
            "inputs": {"big": "i" * 60000},
            "secrets": {"token": "s3cr3t-" + "t" * 4096},
        }
        for margin, step in levels
    ]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_rivet_call_with_memory_nearly_full_ends_the_job_not_the_process(name: str) -> None:
    setup, calls = CALLS[name]
    errors = check_outcomes(run_jobs(jobs_for(name, setup, calls, LEVELS), timeout=300))
    # Near the cap, at least one job was stopped: the calls really ran with memory full.
    assert errors, f"no job of {name} reached the memory limit"
    if name in REFUSED_BY:
        assert any(f"{REFUSED_BY[name]}" in e and "its result" in e for e in errors), errors


@pytest.mark.timeout(900)
@pytest.mark.podman
@pytest.mark.parametrize("name", sorted(CONTAINER_CALLS))
def test_a_command_result_with_memory_nearly_full_ends_the_job_not_the_process(
    podman_available: str, name: str
) -> None:
    setup, calls = CONTAINER_CALLS[name]
    errors = check_outcomes(run_jobs(jobs_for(name, setup, calls, FEW_LEVELS), timeout=600))
    assert errors, f"no job of {name} reached the memory limit"
    assert any(f"{REFUSED_BY[name]}" in e and "its result" in e for e in errors), errors


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_a_definition_with_memory_nearly_full_fails_cleanly(name: str) -> None:
    jobs = [
        {
            "name": f"{name} margin={margin} step={step}",
            "source": f"{fill_code(MEMORY_MIB)}\nKEEP = fill({margin}, {step})\n{DEFINITIONS[name]}",
        }
        for margin, step in LEVELS
    ]
    errors = check_outcomes(run_jobs(jobs, timeout=300))
    assert errors, f"no {name} job reached the memory limit"


def check_variant(body: str, timeout: float) -> None:
    """The job of ``body`` failed with the memory error, as a user mistake: the error
    names the limit, with no traceback and no internal error (then the benign job
    after it succeeded, see run_jobs)."""
    [line] = run_jobs([{"name": "v", "source": variant_pipeline("v", MEMORY_MIB, body)}], timeout)
    assert line["status"] == "failed", line
    error = line["error"] or ""
    assert MEMORY_ERROR in error, error
    assert "Traceback" not in error and "internal error" not in error, error
    assert line["outputs"] == {}, line  # nothing ran on once the limit was hit


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_running_out_of_memory_anywhere_fails_the_job_with_the_memory_error(name: str) -> None:
    check_variant(VARIANTS[name], timeout=240)


@pytest.mark.timeout(600)
@pytest.mark.podman
@pytest.mark.parametrize("name", sorted(CONTAINER_VARIANTS))
def test_running_out_of_memory_in_parallel_branches_fails_the_job(
    podman_available: str, name: str
) -> None:
    check_variant(CONTAINER_VARIANTS[name], timeout=480)


def test_a_refused_result_names_the_call_and_the_sizes() -> None:
    """Refused by Rivet before lupa converts it: the message says which call, how much
    it needed and how much the state held."""
    source = stage_job(
        MEMORY_MIB,
        "fs.write('big', string.rep('r', 4 * 1024 * 1024))",
        "local s = fs.read('big')",
        65536,
        16,
    )
    [line] = run_jobs([{"name": "read", "source": source}], timeout=300)
    assert line["status"] == "failed", line
    error = line["error"] or ""
    assert f"fs.read: {MEMORY_ERROR}: its result needs about 4.0 MiB" in error, error
    assert "the job's Lua state already holds" in error, error
