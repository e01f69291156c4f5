"""Real ``rivet server`` / ``rivet runner`` / ``rivet up`` processes on free loopback
ports with a temporary RIVET_HOME, and the CLI run as a subprocess. Processes are
stopped, and the containers of every job the server knows removed, even on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_rivet import ADMIN_TOKEN, Api, free_port, remove_job_containers
from rivet_processes import RIVET, Processes, Rivet, rivet_env, wait_ready


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    if not RIVET.exists():
        pytest.fail(f"{RIVET} is missing: install the project into the venv (pip install -e .)")
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def rivet_server(tmp_path: Path, processes: Processes) -> Iterator[Rivet]:
    home = tmp_path / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = rivet_env(home, RIVET_SERVER=url, RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
    server = processes.start(["server", "--port", str(port)], env, "server")
    wait_ready(url, server)
    api = Api(url)
    try:
        yield Rivet(url, home, env, api)
    finally:
        job_ids = [job["id"] for job in api.jobs()]
        api.close()
        processes.stop_all()
        for job_id in job_ids:
            remove_job_containers(job_id)
