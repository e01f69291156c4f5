"""Real ``rivet server`` / ``rivet runner`` / ``rivet up`` processes on free loopback
ports with a temporary RIVET_HOME, and the CLI run as a subprocess. Processes are
stopped, and the containers of every job the server knows removed, even on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_rivet import remove_job_containers
from rivet_processes import RIVET, Processes, Rivet


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    if not RIVET.exists():
        pytest.fail(f"{RIVET} is missing: install the project into the venv (pip install -e .)")
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def rivet_server(tmp_path: Path, processes: Processes) -> Iterator[Rivet]:
    rivet = processes.start_server(tmp_path / "home")
    api = rivet.api
    try:
        yield rivet
    finally:
        job_ids = [job["id"] for job in api.jobs()]
        api.close()
        processes.stop_all()
        for job_id in job_ids:
            remove_job_containers(job_id)
