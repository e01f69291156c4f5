"""Dispatch latency and end-to-end time of a three-stage pipeline of `true` commands.

For each database (SQLite, and PostgreSQL when its URL is known) this starts a real
``rivet server`` process and one idle ``rivet runner`` process, then launches the
pipeline ``--runs`` times, one job at a time (the runner is back in its long poll
before each launch):

- dispatch latency = the job's ``started_at - created_at`` (server clock): launch
  committed → claimed by the waiting runner;
- end-to-end = from the client sending the launch to the ``end`` event of the job's
  SSE log stream (the job finished and every line was delivered); each stage runs
  ``true`` in Podman (one container for the job, three ``podman exec``).

Usage: .venv/bin/python bench/dispatch.py [--runs 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import httpx
from harness import Api, RunnerProcess, backends, database, server, summary

PIPELINE = """
return pipeline.define({
  name = "three-trues",
  stages = {
    { name = "one", script = function() process.run({ "true" }) end },
    { name = "two", script = function() process.run({ "true" }) end },
    { name = "three", script = function() process.run({ "true" }) end },
  },
})
"""


def run_once(api: Api) -> dict[str, float]:
    """Seconds: dispatch, end-to-end (client and server clocks), in stages, after them."""
    started = time.perf_counter()
    job_id = api.launch("three-trues")
    with httpx.stream("GET", f"{api.url}/api/jobs/{job_id}/logs/stream", timeout=60) as events:
        for line in events.iter_lines():
            if line == "event: end":
                break
    client_e2e = time.perf_counter() - started
    job = api.job(job_id)
    assert job["status"] == "succeeded", job

    def at(key: str) -> datetime:
        return datetime.fromisoformat(job[key])

    stages = job["stages"]
    first_start = datetime.fromisoformat(stages[0]["started_at"])
    last_end = datetime.fromisoformat(stages[-1]["finished_at"])
    return {
        "dispatch": (at("started_at") - at("created_at")).total_seconds(),
        "e2e": client_e2e,
        "server_e2e": (at("finished_at") - at("created_at")).total_seconds(),
        # First stage includes starting the job's container.
        "stages": (last_end - first_start).total_seconds(),
        # Removing the container and workspace, delivering the last lines, completing.
        "after": (at("finished_at") - last_end).total_seconds(),
    }


def measure(kind: str, runs: int, warmup: int = 2) -> dict[str, list[float]]:
    with database(kind) as url, server(url) as srv:
        api = Api(srv.url)
        runner = RunnerProcess(api, f"bench-{kind}")
        try:
            api.create_pipeline(PIPELINE, "three-trues.lua")
            results: dict[str, list[float]] = {}
            for i in range(warmup + runs):
                time.sleep(0.3)  # let the runner settle back into its long poll
                figures = run_once(api)
                if i >= warmup:
                    for key, value in figures.items():
                        results.setdefault(key, []).append(value)
            return results
        finally:
            runner.stop()
            api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    figures = {}
    for kind in backends():
        print(f"[{kind}] {args.runs} jobs, one at a time, one idle runner …", flush=True)
        figures[kind] = measure(kind, args.runs)
        r = figures[kind]
        print(f"  dispatch latency     {summary(r['dispatch'], 1000, ' ms')}")
        print(f"  end-to-end (client)  {summary(r['e2e'], 1, ' s')}")
        print(f"  end-to-end (server)  {summary(r['server_e2e'], 1, ' s')}")
        print(f"    of which stages    {summary(r['stages'], 1, ' s')}")
        print(f"    after last stage   {summary(r['after'], 1, ' s')}")
    if len(figures) == 2:
        import statistics

        for key, label in (("dispatch", "dispatch latency"), ("e2e", "end-to-end")):
            ratio = statistics.median(figures["postgresql"][key]) / statistics.median(
                figures["sqlite"][key]
            )
            print(f"ratio PostgreSQL / SQLite, median {label}: {ratio:.2f}")


if __name__ == "__main__":
    main()
