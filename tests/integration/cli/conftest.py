"""A real ``rivet server`` process (SQLite in a temp RIVET_HOME) per test module, and the
CLI driven against it in-process (typer's CliRunner) or as the installed console script.

Fixtures (no helper module: tests run in pytest's importlib mode):

- ``rivet_server``: ``.url``, ``.home``, ``.admin`` (headers) and ``.runner(tags)``,
  which registers a runner through the API and returns its auth headers;
- ``played_runner(lane, **registration)``: a :class:`PlayedRunner` registered with
  tag ``lane``, which claims a job and reports stages, log lines and completion
  through the runner API as a real runner would;
- ``cli(args, input=None)``: runs the app with RIVET_SERVER/RIVET_HOME pointing at it;
- ``rivet_exe(args)``: runs the console script as a subprocess;
- ``pipeline_file(text)``: writes a Lua file.
- ``older_rivet``: an :class:`OlderRivet` writing rows straight into the server's
  database, as a Rivet before today's name rules accepted them (``.pipeline(source)``,
  ``.runner(lane, name, tags, plugins)``): rows that must stay readable.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from rivet.cli.main import app
from rivet.home import RivetHome
from rivet.lua.definition import load_pipeline
from rivet.orchestrator.auth import hash_token, new_token
from rivet.protocol import PipelineView
from rivet.store import Database
from rivet.store import pipelines as pipeline_store
from rivet.store import runners as runner_store

RIVET = Path(sys.executable).with_name("rivet")
_names = itertools.count(1)


@dataclass
class RivetServer:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def admin(self) -> dict[str, str]:
        token = (self.home / "admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def runner(
        self, tags: dict[str, str], name: str | None = None, plugins: Sequence[str] = ()
    ) -> dict[str, str]:
        """Register a runner through the API; its ``Authorization`` headers."""
        with httpx.Client(base_url=self.url, timeout=30) as http:
            made = http.post("/api/runner-tokens", headers=self.admin, json={})
            made.raise_for_status()
            request = {
                "registration_token": made.json()["token"],
                "name": name or f"test-runner-{next(_names)}",
                "tags": tags,
                "plugins": list(plugins),
            }
            registered = http.post("/api/runners/register", json=request)
            registered.raise_for_status()
        return {"Authorization": f"Bearer {registered.json()['token']}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def rivet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RivetServer]:
    assert RIVET.exists(), "the rivet console script is not installed in this venv"
    home = tmp_path_factory.mktemp("server-home")
    port = free_port()
    log = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env.update(
        {"RIVET_HOME": str(home), "RIVET_POLL_INTERVAL": "0.2", "RIVET_LOG_LEVEL": "warning"}
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(RIVET), "server", "--host", "127.0.0.1", "--port", str(port), "--home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = RivetServer(f"http://127.0.0.1:{port}", home, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"rivet server exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{server.url}/api/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"rivet server did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def cli(rivet_server: RivetServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    for name in list(os.environ):
        if name.startswith("RIVET_") or name in ("NO_COLOR", "FORCE_COLOR"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RIVET_SERVER", rivet_server.url)
    monkeypatch.setenv("RIVET_HOME", str(rivet_server.home))
    monkeypatch.setenv("COLUMNS", "200")

    def run(args: Sequence[str], input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def rivet_exe(rivet_server: RivetServer) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
        env.update({"RIVET_SERVER": rivet_server.url, "RIVET_HOME": str(rivet_server.home)})
        return subprocess.run(
            [str(RIVET), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    return run


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "pipeline.lua") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


class PlayedRunner:
    """Claims one job and reports stages, log lines and completion like a runner would."""

    def __init__(self, url: str, headers: dict[str, str], lane: str) -> None:
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)
        self.lane = lane
        self.job_id = ""

    def claim(self) -> dict[str, Any]:
        answer = self.http.post("/api/runner/claim", json={"wait_seconds": 10})
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        self.job_id = job["job_id"]
        return job

    def stage(self, name: str, status: str, error: str | None = None) -> None:
        now = datetime.now(UTC).isoformat()
        body: dict[str, Any] = {"name": name, "status": status, "error": error}
        body["started_at" if status == "running" else "finished_at"] = now
        self.post("stages", body)

    def log(
        self,
        seq: int,
        stage: str | None,
        message: str,
        level: str = "info",
        stream: str | None = None,
    ) -> None:
        line = {
            "seq": seq,
            "ts": datetime.now(UTC).isoformat(),
            "stage": stage,
            "level": level,
            "message": message,
            "stream": stream,
        }
        self.post("logs", {"lines": [line]})

    def complete(self, status: str, error: str | None = None, **outputs: Any) -> None:
        self.post("complete", {"status": status, "outputs": outputs, "error": error})

    def post(self, what: str, body: dict[str, Any]) -> None:
        answer = self.http.post(f"/api/runner/jobs/{self.job_id}/{what}", json=body)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def played_runner(rivet_server: RivetServer) -> Iterator[Callable[..., PlayedRunner]]:
    """``played_runner(lane, tags=..., name=..., plugins=...)``: a registered
    :class:`PlayedRunner` (tag ``lane`` plus ``tags``), closed afterwards."""
    made: list[PlayedRunner] = []

    def make(
        lane: str,
        tags: dict[str, str] | None = None,
        name: str | None = None,
        plugins: Sequence[str] = (),
    ) -> PlayedRunner:
        headers = rivet_server.runner({"lane": lane, **(tags or {})}, name, plugins)
        runner = PlayedRunner(rivet_server.url, headers, lane)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.http.close()


class OlderRivet:
    """Writes rows into the database of a running ``rivet server`` as an older Rivet
    would have: a pipeline version or a runner whose names today's rules refuse (a
    ``/`` or control characters in a pipeline's name, control characters in a
    runner's name, tags or plugins)."""

    def __init__(self, server: RivetServer) -> None:
        self.server = server
        self.made: list[PlayedRunner] = []

    def pipeline(self, source: str, filename: str = "legacy.lua") -> PipelineView:
        # What the older Rivet validated: the rules a stored version is run under.
        definition = load_pipeline(source, filename, stored=True).definition
        db = Database(RivetHome(self.server.home).database_url)
        try:
            with db.write() as tx:
                pipeline_id, _ = pipeline_store.lock_pipeline(tx.conn, definition.name, "anonymous")
                return pipeline_store.add_version(
                    tx.conn, pipeline_id, definition, source, filename, created_by="anonymous"
                )
        finally:
            db.close()

    def runner(
        self, lane: str, name: str, tags: dict[str, str], plugins: Sequence[str] = ()
    ) -> PlayedRunner:
        token = new_token("runner")
        db = Database(RivetHome(self.server.home).database_url)
        try:
            with db.write() as tx:
                runner_store.create_runner(
                    tx.conn, name, hash_token(token), {"lane": lane, **tags}, plugins
                )
        finally:
            db.close()
        runner = PlayedRunner(self.server.url, {"Authorization": f"Bearer {token}"}, lane)
        self.made.append(runner)
        return runner


@pytest.fixture
def older_rivet(rivet_server: RivetServer) -> Iterator[OlderRivet]:
    older = OlderRivet(rivet_server)
    yield older
    for runner in older.made:
        runner.http.close()
