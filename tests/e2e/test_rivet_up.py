"""``rivet up``: a server and a runner from one command, a job through the CLI, a clean
stop on Ctrl-C (exit 0, both children gone), and the runner's token reused next time."""

from __future__ import annotations

import os
import signal
import tomllib
from pathlib import Path

import httpx
import pytest
from live_rivet import REPO, free_port
from rivet_processes import Processes, open_to_others, processes_mentioning, rivet_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.podman]


def start_up(processes: Processes, home: Path, port: int, name: str) -> None:
    up = processes.start(["up", "--port", str(port)], rivet_env(home), name)
    up.wait_for_output("Press Ctrl-C to stop.", timeout=90)
    assert f"Rivet is up at http://127.0.0.1:{port}" in up.output
    assert "rivet pipeline create examples/hello.lua" in up.output


def stop_up(processes: Processes, home: Path) -> None:
    up = processes.started[-1]
    up.signal(signal.SIGINT)
    assert up.wait(60) == 0, up.output
    assert processes_mentioning(str(home)) == [], "server or runner still running"


def test_rivet_up_runs_a_job_and_stops_cleanly(
    podman_available: str, processes: Processes, tmp_path: Path
) -> None:
    previous = os.umask(0o022)  # inherited by `rivet up`: its files must not rely on it
    try:
        _up_runs_a_job_and_stops_cleanly(processes, tmp_path)
    finally:
        os.umask(previous)


def _up_runs_a_job_and_stops_cleanly(processes: Processes, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_up(processes, home, port, "up-1")
    try:
        cli_env = rivet_env(home, RIVET_SERVER=url)
        created = run_cli(["pipeline", "create", str(REPO / "examples" / "hello.lua")], cli_env)
        assert created.returncode == 0, created.stderr
        launched = run_cli(["job", "launch", "hello", "--input", "name=up", "--follow"], cli_env)
        assert launched.returncode == 0, launched.stdout + launched.stderr
        assert "hello from a container, up (1)" in launched.stdout
    finally:
        stop_up(processes, home)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/health", timeout=2)
    assert (home / "logs" / "server.log").stat().st_size > 0
    # Private: database (+ -wal/-shm), admin-token, secret-key, runner.toml, logs/*.log.
    assert {"rivet.db", "admin-token", "secret-key", "runner.toml", "logs"} <= {
        p.name for p in home.iterdir()
    }
    assert open_to_others(home) == []
    first = tomllib.loads((home / "runner.toml").read_text())

    # Same home again: the saved runner token is reused, no new registration token made.
    start_up(processes, home, port, "up-2")
    try:
        assert tomllib.loads((home / "runner.toml").read_text())["token"] == first["token"]
        tokens = httpx.get(f"{url}/api/runner-tokens", headers=_admin(home), timeout=5).json()
        assert len(tokens) == 1
        runners = httpx.get(f"{url}/api/runners", timeout=5).json()
        assert [r["id"] for r in runners] == [first["runner_id"]]
    finally:
        stop_up(processes, home)


def _admin(home: Path) -> dict[str, str]:
    token = (home / "admin-token").read_text().strip()  # written by the server `up` started
    return {"Authorization": f"Bearer {token}"}


def test_rivet_up_hands_its_policy_to_the_runner(
    podman_available: str, processes: Processes, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    policy = tmp_path / "policy.toml"
    policy.write_text('[process]\ndenied_binaries = ["echo"]\n')
    up = processes.start(
        ["up", "--port", str(port), "--policy", str(policy)], rivet_env(home), "up-policy"
    )
    up.wait_for_output("Press Ctrl-C to stop.", timeout=90)
    try:
        cli_env = rivet_env(home, RIVET_SERVER=url)
        created = run_cli(["pipeline", "create", str(REPO / "examples" / "hello.lua")], cli_env)
        assert created.returncode == 0, created.stderr
        launched = run_cli(["job", "launch", "hello", "--follow"], cli_env)
        assert launched.returncode == 1, launched.stdout + launched.stderr
        assert "policy process.denied_binaries forbids 'echo'" in launched.stdout
    finally:
        stop_up(processes, home)
