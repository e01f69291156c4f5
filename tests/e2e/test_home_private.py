"""RIVET_HOME stays private through real use: a ``rivet server`` and a ``rivet runner``
process (started under the usual 022 umask, on a home an older Rivet left 0755) run a
job that uses a secret and writes files; afterwards nothing in the home is accessible
to group or others: the SQLite database with its -wal/-shm, admin-token, secret-key,
runner.toml, the CLI config, workspaces/."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_rivet import free_port
from rivet_processes import Processes, open_to_others, rivet_env, run_cli, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

VALUE = "home-test-secret-value-1234"
PIPELINE = """
return pipeline.define({
  name = "private-home",
  stages = {
    { name = "use", script = function()
        fs.write("note.txt", "written by the job")
        local token = secret.get("HOME_TOKEN")
        process.run({ "sh", "-c", "cat note.txt && test -n \\"$T\\"", secrets = { T = "HOME_TOKEN" } })
        log.info("token has " .. #token .. " characters")
      end },
  },
})
"""


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what children inherit: Rivet must not rely on it
    try:
        yield
    finally:
        os.umask(previous)


def test_server_and_runner_keep_rivet_home_private(
    podman_available: str, processes: Processes, tmp_path: Path, open_umask: None
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # as an older Rivet (or a plain mkdir) left it
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (home / "config").write_text(f'server = "{url}"\n')  # by hand, 0644
    env = rivet_env(home)
    server = processes.start(["server", "--port", str(port)], env, "server")
    wait_ready(url, server)
    admin = {"Authorization": f"Bearer {(home / 'admin-token').read_text().strip()}"}

    stored = httpx.put(
        f"{url}/api/secrets/HOME_TOKEN",
        json={"value": VALUE, "grants": ["private-home"]},
        headers=admin,
        timeout=10,
    )
    assert stored.status_code == 201, stored.text
    source = tmp_path / "private-home.lua"
    source.write_text(PIPELINE)
    created = run_cli(["pipeline", "create", str(source)], env)  # admin token from the home
    assert created.returncode == 0, created.stderr
    token = run_cli(["runner", "token", "create", "--quiet"], env)
    assert token.returncode == 0, token.stderr
    runner_env = dict(env, RIVET_REGISTRATION_TOKEN=token.stdout.strip())
    runner = processes.start(["runner", "--name", "home-runner"], runner_env, "runner")
    runner.wait_for_output("ready")

    launched = run_cli(["job", "launch", "private-home", "--follow"], env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "written by the job" in launched.stdout
    assert "token has 27 characters" in launched.stdout

    expected = {"rivet.db", "rivet.db-wal", "rivet.db-shm", "admin-token", "secret-key"}
    expected |= {"runner.toml", "config", "workspaces"}
    assert expected <= {p.name for p in home.iterdir()}
    assert open_to_others(home) == []
    runner.stop()
    server.stop()
    assert open_to_others(home) == []  # also once both have closed their files
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
