"""Helpers for runner, e2e and benchmark code: a real orchestrator (in a thread or as a
process) and a small synchronous admin/user API client over plain httpx.

Nothing here fakes the server: every helper talks to the real ``create_app``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from rivet.orchestrator import create_app
from rivet.settings import CoreGroup, JobsGroup, RivetSettings, ServerGroup, load_settings

ADMIN_TOKEN = "rivet_admin_runner-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def rivet_settings(home: Path, **server: object) -> RivetSettings:
    """Settings for a test's server: ``home``, then ``server.<name>`` (or the server's
    ``jobs.<name>``, e.g. ``lease_seconds``) for each keyword (given like flags), and
    nothing from the test process's environment."""
    flags = {CoreGroup.home: home}
    for name, value in server.items():
        group = ServerGroup if hasattr(ServerGroup, name) else JobsGroup
        flags[getattr(group, name)] = value
    return load_settings(flags, env={})


def server_settings(home: Path, database_url: str | None = None, **extra: Any) -> RivetSettings:
    return rivet_settings(
        home,
        database_url=database_url or f"sqlite:///{home / 'rivet.db'}",
        admin_token=ADMIN_TOKEN,
        **extra,
    )


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A plain HTTP server (not Rivet) answering with ``handler`` on a loopback port,
    in a thread; yields its URL and shuts it down afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def live_server(settings: RivetSettings, port: int = 0) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a loopback port; yields its URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        create_app(settings),
        ws="none",
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), what="uvicorn")
        assert thread.is_alive(), "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


class ServerProcess:
    """``rivet server`` as a child process (``python -m rivet.cli.server``)."""

    def __init__(self, home: Path, port: int, database_url: str | None = None) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.database_url = database_url or f"sqlite:///{home / 'rivet.db'}"
        self.log_path = home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, RIVET_HOME=str(self.home), RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
        argv = [sys.executable, "-m", "rivet.cli.server", "--port", str(self.port)]
        argv += ["--database-url", self.database_url, "--home", str(self.home)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self._ready, timeout=60, what=f"rivet server on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited: {self.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/api/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Api:
    """What a user and an admin do, over the real HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        assert response.is_success, (
            f"{response.request.url}: {response.status_code} {response.text}"
        )
        return response.json()

    def create_pipeline(self, source: str, filename: str = "pipeline.lua") -> dict[str, Any]:
        body = {"source": source, "filename": filename}
        return dict(self._json(self.http.post("/api/pipelines", json=body)))

    def push_again_as_admin(self, pipeline: str) -> int:
        """The latest version's source pushed again with the admin token (so that the
        pipeline's secret grants cover it); the new version number."""
        latest = self._json(self.http.get(f"/api/pipelines/{pipeline}"))
        body = {"source": latest["source"], "filename": f"{pipeline}.lua"}
        created = self.http.post("/api/pipelines", json=body, headers=ADMIN)
        return int(self._json(created)["version"])

    def launch(
        self, pipeline: str, version: int | None = None, *, admin: bool = False, **inputs: Any
    ) -> str:
        """Launch anonymously or (``admin``: needed for a pipeline with secrets granted
        to it) with the admin token."""
        body = {"pipeline": pipeline, "inputs": inputs, "version": version}
        headers = ADMIN if admin else None
        return str(self._json(self.http.post("/api/jobs", json=body, headers=headers))["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/api/jobs/{job_id}")))

    def jobs(self, limit: int = 500) -> list[dict[str, Any]]:
        return list(self._json(self.http.get("/api/jobs", params={"limit": limit}))["jobs"])

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.post(f"/api/jobs/{job_id}/cancel")))

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        page = self._json(self.http.get(f"/api/jobs/{job_id}/logs", params={"limit": 5000}))
        return list(page["lines"])

    def registration_token(self) -> str:
        created = self.http.post("/api/runner-tokens", json={}, headers=ADMIN)
        return str(self._json(created)["token"])

    def runners(self) -> list[dict[str, Any]]:
        return list(self._json(self.http.get("/api/runners")))

    def wait_finished(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job = self.job(job_id)
            done = job["status"] in ("succeeded", "failed", "cancelled")
            return job if done else None

        result: dict[str, Any] = wait_for(finished, timeout, f"job {job_id} to finish")
        return result


def lua_str(value: str) -> str:
    return json.dumps(value)


def counting_pipeline(name: str, lines: int) -> str:
    """One stage printing ``line 1`` … ``line N`` from a container, a tenth of a
    second apart: long enough to break something under it mid-job; the printed
    numbers are read back with :data:`COUNTED`."""
    return f"""
return pipeline.define({{
  name = "{name}",
  stages = {{
    {{ name = "count", script = function()
        process.run({{ "sh", "-c",
          "for i in $(seq 1 {lines}); do echo \\"line $i\\"; sleep 0.1; done" }})
      end }},
  }},
}})
"""


# The numbers of the lines a counting pipeline printed, in a log or a follower's output.
COUNTED = re.compile(r"\bline (\d+)$", re.M)


def logging_pipeline(name: str, stages: int = 3, lines: int = 4) -> str:
    """A pipeline whose stages only log (no container is ever started)."""
    body = ", ".join(
        f'{{ name = "s{s}", script = function() for i = 1, {lines} do '
        f'log.info("s{s} line " .. i) end end }}'
        for s in range(1, stages + 1)
    )
    return f'return pipeline.define({{ name = "{name}", stages = {{ {body} }} }})'


def tagged_pipeline(api: Api, tag: str, stages: str, inputs: str = "", extra_tags: str = "") -> str:
    """Create a pipeline (Lua ``stages``/``inputs`` table bodies) requiring ``t=<tag>``
    plus ``extra_tags`` (Lua, e.g. ``, { key = "os", value = "linux" }``); its name."""
    name = f"p-{uuid.uuid4().hex[:10]}"
    api.create_pipeline(
        f'return pipeline.define({{ name = "{name}", inputs = {{ {inputs} }}, '
        f'runner = {{ {{ key = "t", value = "{tag}" }}{extra_tags} }}, '
        f"stages = {{ {stages} }} }})",
        f"{name}.lua",
    )
    return name


def save_bogus_token(path: Path, server: str) -> None:
    """A runner config holding a token the server never issued (e.g. a reset database)."""
    from rivet.runner.config_file import save_registration

    save_registration(path, server=server, runner_id="gone", token="rivet_runner_stale", name="x")


def podman_containers(job_id: str) -> list[str]:
    proc = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=rivet.job={job_id}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.split()


def remove_job_containers(job_id: str) -> None:
    names = podman_containers(job_id)
    if names:
        subprocess.run(["podman", "rm", "-f", *names], capture_output=True, check=False)


@dataclass
class ClaimedJob:
    url: str
    token: str
    job_id: str
    api: Api


def claim_new_job(api: Api) -> ClaimedJob:
    """A job of a one-stage pipeline, claimed by a new runner (tagged so that no other
    test's job can be handed to it)."""
    from rivet.protocol import ClaimRequest, RegisterRequest
    from rivet.runner.client import RunnerClient

    tag = uuid.uuid4().hex[:12]
    name = f"p-{tag}"
    api.create_pipeline(
        f'return pipeline.define({{ name = "{name}", '
        f'runner = {{ {{ key = "t", value = "{tag}" }} }}, '
        'stages = { { name = "only", script = function() end } } })'
    )
    client = RunnerClient(api.url)
    try:
        request = RegisterRequest(
            registration_token=api.registration_token(), name=name, tags={"t": tag}
        )
        client.token = client.register(request).token
        job_id = api.launch(name)
        assignment = client.claim(ClaimRequest(wait_seconds=5))
    finally:
        client.close()
    assert assignment is not None and assignment.job_id == job_id
    return ClaimedJob(api.url, client.token, job_id, api)
