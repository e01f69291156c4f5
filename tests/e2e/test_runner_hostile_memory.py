"""One runner process, concurrency 2, many jobs whose pipelines fill their Lua memory
to just under the cap and then call a Rivet function that hands data to Lua
(``fs.read``, ``fs.list``/``glob``, ``json``, ``http`` responses, ``input``,
``secret``, ``output``, ``log``, captured ``process.run`` output, ``process.parallel``,
``container.with``), at several fill levels, and jobs that run out of memory in
every other way (pure Lua, coroutines, building a big argument, error handlers,
``process.parallel`` branches: ``VARIANTS`` of ``tests/support/full_memory_jobs.py``),
interleaved with benign jobs.

Before the fix, the first such call froze the runner: lupa converted the result into
Lua outside any protected call, the allocation failed there, Lua's error jumped
across the Python frames and the thread's hold on the GIL was never released — every
job on the runner stopped with it, and the runner never answered again. Now each such
job ends (failed with "memory limit of 32 MiB exceeded", or succeeded; each variant
job failed with it), and the runner keeps taking and running jobs.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from full_memory_jobs import (
    CALLS,
    CONTAINER_CALLS,
    CONTAINER_VARIANTS,
    VARIANTS,
    Handler,
    leveled_pipeline,
    variant_pipeline,
)
from live_rivet import ADMIN, serve_http, wait_for
from rivet_processes import Processes, Rivet, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

MEMORY_MIB = 32
LEVELS = [(0, 16), (4096, 1024), (1 << 20, 16)]
SECRET = "OOM_TOKEN"

BENIGN = r"""
return pipeline.define({
  name = "benign",
  runner = { { key = "t", value = "oom" } },
  stages = {
    { name = "one", script = function()
        local t = {}
        for i = 1, 2000 do t[i] = string.rep("b", 100) .. i end
        output.set("answer", json.decode(json.encode({ n = #t })).n)
      end },
    { name = "two", script = function()
        local r = process.run({ "sh", "-c", "echo from-container", capture_stdout = true })
        output.set("echoed", (r.stdout:gsub("%s+$", "")))
      end },
  },
})
"""


@pytest.fixture
def http_server() -> Iterator[str]:
    with serve_http(Handler) as url:
        yield url


def groups() -> dict[str, tuple[str, str]]:
    return {**CALLS, **CONTAINER_CALLS}


def variants() -> dict[str, str]:
    return {**VARIANTS, **CONTAINER_VARIANTS}


def pipeline_name(group: str, prefix: str = "oom-") -> str:
    return prefix + "".join(c if c.isalnum() else "-" for c in group)


def test_filling_memory_before_a_rivet_call_never_wedges_the_runner(
    podman_available: str,
    rivet_server: Rivet,
    processes: Processes,
    tmp_path: Path,
    http_server: str,
) -> None:
    api = rivet_server.api
    url = rivet_server.url
    names = {group: pipeline_name(group) for group in groups()}
    # The secret, granted to every hostile pipeline; the admin pushes them after it.
    grant = {"value": "s3cr3t-" + "t" * 4096, "grants": sorted(names.values())}
    put = httpx.put(f"{url}/api/secrets/{SECRET}", headers=ADMIN, json=grant, timeout=30)
    assert put.status_code == 201, put.text
    for group, (setup, calls) in groups().items():
        source = leveled_pipeline(names[group], MEMORY_MIB, setup, calls, "oom")
        source = source.replace("{url}", http_server).replace("'token'", f"'{SECRET}'")
        body = {"source": source, "filename": f"{names[group]}.lua"}
        created = httpx.post(f"{url}/api/pipelines", headers=ADMIN, json=body, timeout=30)
        assert created.status_code == 201, created.text
    variant_names = {v: pipeline_name(v, "oom-variant-") for v in variants()}
    for variant, body in variants().items():
        api.create_pipeline(
            variant_pipeline(variant_names[variant], MEMORY_MIB, body, "oom"),
            f"{variant_names[variant]}.lua",
        )
    api.create_pipeline(BENIGN, "benign.lua")

    policy = tmp_path / "policy.toml"
    policy.write_text('[http]\ndeny_private = false\nallowed_hosts = ["127.0.0.1"]\n')
    token = run_cli(["runner", "token", "create", "--quiet"], rivet_server.env)
    assert token.returncode == 0, token.stderr
    env = dict(
        rivet_server.env,
        RIVET_HOME=str(tmp_path / "runner-home"),
        RIVET_REGISTRATION_TOKEN=token.stdout.strip(),
        RIVET_LUA_MEMORY_MIB=str(MEMORY_MIB),
    )
    runner = processes.start(
        [
            "runner", "--name", "oom-runner", "--tag", "t=oom", "--concurrency", "2",
            "--policy", str(policy),
        ],
        env,
        "runner",
    )  # fmt: skip
    runner.wait_for_output("ready", timeout=90)

    hostile: dict[str, str] = {}
    benign: list[str] = []
    for margin, step in LEVELS:
        for group in groups():
            job = api.launch(names[group], admin=True, big="i" * 60000, margin=margin, step=step)
            hostile[job] = f"{group} margin={margin} step={step}"
            if len(hostile) % 3 == 0:
                benign.append(api.launch("benign"))
    # Every other way of running out of memory; none of these can succeed.
    doomed: dict[str, str] = {}
    for variant in variants():
        doomed[api.launch(variant_names[variant], admin=True)] = variant
        if len(doomed) % 3 == 0:
            benign.append(api.launch("benign"))

    def finished() -> dict[str, dict[str, Any]] | None:
        assert runner.proc.poll() is None, (
            f"the runner died with exit code {runner.proc.returncode}:\n{runner.output[-3000:]}"
        )
        wanted = set(hostile) | set(doomed) | set(benign)
        jobs = {j["id"]: j for j in api.jobs() if j["id"] in wanted}
        done = [j for j in jobs.values() if j["status"] not in ("queued", "running")]
        return jobs if len(done) == len(wanted) else None

    jobs = wait_for(finished, timeout=900, what="every job to finish")

    assert Counter(jobs[j]["status"] for j in benign) == {"succeeded": len(benign)}
    for job_id in benign:
        assert jobs[job_id]["outputs"] == {"answer": 2000, "echoed": "from-container"}

    refused = []
    for job_id, what in hostile.items():
        job = jobs[job_id]
        assert job["status"] in ("succeeded", "failed"), (what, job)
        if job["status"] == "failed":
            assert f"memory limit of {MEMORY_MIB} MiB exceeded" in job["error"], (what, job)
            refused.append(job["error"])
    for job_id, variant in doomed.items():
        job = jobs[job_id]
        assert job["status"] == "failed", (variant, job)
        assert f"memory limit of {MEMORY_MIB} MiB exceeded" in job["error"], (variant, job)
        assert not job.get("outputs"), (variant, job)  # nothing ran on after the kill
    # Many calls were refused by the Rivet function itself, naming it.
    assert len([e for e in refused if "its result needs about" in e]) >= len(groups()), refused

    # Still alive and still claiming: one more benign job after all of that.
    last = api.launch("benign")
    assert api.wait_finished(last, timeout=180)["status"] == "succeeded"
    assert runner.proc.poll() is None
    runner.signal(signal.SIGINT)
    assert runner.wait(60) == 0, runner.output[-3000:]
