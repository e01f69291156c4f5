"""End to end, on SQLite and PostgreSQL: the pipeline / secret / runner-pool permission
matrix through the real CLI against a real server and two real runners (pools
``prod``, exclusive, and ``default``).

The server is the real ``rivet server`` code with the test-only FAKE principal
tokens of ``tests/support/fake_principals.py`` accepted, so the CLI can act as users
and API keys before accounts exist (``RIVET_ADMIN_TOKEN=fake|user:ann|user``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_principals import fake_token
from live_rivet import ADMIN_TOKEN, free_port, wait_for
from rivet_processes import RIVET, Processes, rivet_env, run_cli, wait_ready

pytestmark = [pytest.mark.e2e]

SERVER_SCRIPT = Path(__file__).parents[1] / "support" / "fake_principal_server.py"
VALUE = "e2e-perm-Secret-4242"


def pipeline(name: str, *, uses_secret: bool = False) -> str:
    body = 'log.info("in ' + name + '")'
    if uses_secret:
        body += '; output.set("secret_length", #secret.get("KEY"))'
    return (
        "return pipeline.define({ name = " + json.dumps(name) + ", stages = { "
        "{ name = 'only', script = function() " + body + " end } } })\n"
    )


@dataclass
class World:
    url: str
    tmp: Path
    envs: dict[str, dict[str, str]]

    def cli(self, who: str, *args: str, ok: bool = True, stdin: str | None = None) -> str:
        """``rivet ARGS`` as ``who``; its stdout, or (``ok=False``: it must fail) its
        stderr."""
        if stdin is not None:
            result = subprocess.run(
                [str(RIVET), *args],
                env=self.envs[who],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        else:
            result = run_cli(list(args), self.envs[who])
        if ok:
            assert result.returncode == 0, (who, args, result.stdout, result.stderr)
            return result.stdout
        assert result.returncode != 0, (who, args, result.stdout)
        # one clear line, never a traceback
        assert "Traceback" not in result.stderr, result.stderr
        return result.stderr

    def push(self, who: str, name: str, ok: bool = True, uses_secret: bool = False) -> str:
        path = self.tmp / f"{name}-{time.monotonic_ns()}.lua"
        path.write_text(pipeline(name, uses_secret=uses_secret))
        return self.cli(who, "pipeline", "create", str(path), ok=ok)

    def admin_api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Set-up steps as the admin over HTTP (cheaper than a CLI process each)."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        response = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)
        assert response.is_success, response.text
        return response.json()

    def admin_push(self, name: str) -> None:
        self.admin_api("POST", "/api/pipelines", json={"source": pipeline(name)})

    def launch(self, who: str, name: str, ok: bool = True) -> str:
        out = self.cli(who, "job", "launch", name, "--quiet", ok=ok)
        return out.strip()

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as the API shows it to the admin (polled: cheaper than the CLI)."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        response = httpx.get(f"{self.url}/api/jobs/{job_id}", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        shown: dict[str, Any] = response.json()
        return shown

    def finished(self, job_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        result: dict[str, Any] = wait_for(done, 120, f"job {job_id} to finish")
        return result


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    processes = Processes(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = tmp_path / "server-home"
    server_env = rivet_env(home, RIVET_ADMIN_TOKEN=ADMIN_TOKEN, RIVET_DATABASE_URL=database_url)
    program = [sys.executable, str(SERVER_SCRIPT)]
    server = processes.start(["--port", str(port)], server_env, "server", program)
    try:
        wait_ready(url, server)
        tokens = {
            "admin": ADMIN_TOKEN,
            "ann": fake_token("user:ann"),
            "bob": fake_token("user:bob"),
            "carl": fake_token("user:carl"),
            "key": fake_token("api-key:ci", "user", ("a",)),
        }
        envs = {
            who: rivet_env(tmp_path / f"cli-{who}", RIVET_SERVER=url, RIVET_ADMIN_TOKEN=token)
            for who, token in tokens.items()
        }
        world = World(url, tmp_path, envs)
        # Exclusive before any runner joins it: prod runners never run random code.
        world.cli("admin", "runner", "pool", "prod", "--exclusive")
        for name, pool in (("prod-runner", "prod"), ("shared-runner", "default")):
            token = world.admin_api("POST", "/api/runner-tokens", json={})["token"]
            runner_env = rivet_env(
                tmp_path / f"home-{name}", RIVET_SERVER=url, RIVET_REGISTRATION_TOKEN=token
            )
            runner = processes.start(["runner", "--name", name, "--pool", pool], runner_env, name)
            runner.wait_for_output("ready")
        yield world
    finally:
        processes.stop_all()


def test_the_permission_matrix_through_the_cli(world: World) -> None:
    # --- pipeline permissions: owner vs non-owner push, ACL changes ------------------
    assert "created pipeline deploy version 1" in world.push("ann", "deploy")
    refused = world.push("bob", "deploy", ok=False)
    assert "user 'bob' may not push new versions of 'deploy': ask its owner or an admin" in (
        refused
    )
    acl = world.cli("bob", "pipeline", "grant", "deploy", "user:bob", "--can", "push", ok=False)
    assert "only its owner (user:ann) or an admin may" in acl
    shown = world.cli("ann", "pipeline", "grant", "deploy", "user:bob", "--can", "push")
    assert "user:bob" in shown and "push" in shown
    assert "version 2" in world.push("bob", "deploy")
    world.push("carl", "deploy", ok=False)
    access = json.loads(world.cli("carl", "pipeline", "access", "deploy", "--json"))
    assert access["owner"] == "user:ann" and access["you"] == "launch"

    # --- runner pools: deploy only on prod; prod runs nothing else -----------------
    world.cli("ann", "pipeline", "pools", "deploy", "prod", ok=False)  # admin only
    world.cli("admin", "pipeline", "pools", "deploy", "prod")
    world.admin_push("tests")
    world.admin_push("staging-only")
    # restricted to a pool that has no runner
    world.admin_api("PUT", "/api/pipelines/staging-only/pools", json={"pools": ["staging"]})
    stuck = world.launch("carl", "staging-only")
    jobs = [world.launch("carl", "tests") for _ in range(2)] + [world.launch("carl", "deploy")]
    ran = {world.finished(job)["runner"] for job in jobs[:2]}
    assert ran == {"shared-runner"}
    deployed = world.finished(jobs[2])
    assert deployed["status"] == "succeeded" and deployed["runner"] == "prod-runner"
    # both runners polled after it was queued, and neither may take it
    assert world.job(stuck)["status"] == "queued"
    listed = world.cli("admin", "runner", "list")
    assert re.search(r"prod-runner\W+\w+\W+prod\b", listed), listed
    world.cli("bob", "job", "cancel", stuck)
    cancelled = world.job(stuck)
    assert (cancelled["status"], cancelled["cancelled_by"]) == ("cancelled", "user:bob")
    shown_job = world.cli("admin", "job", "show", stuck)
    assert "launched by" in shown_job and "user:carl" in shown_job
    assert "cancelled by" in shown_job and "user:bob" in shown_job

    # --- secret permissions ----------------------------------------------------------
    world.cli("admin", "secret", "set", "KEY", stdin=VALUE)
    no_grant = world.cli("ann", "secret", "grant", "KEY", "deploy", ok=False)
    assert "user 'ann' may not grant secret 'KEY'" in no_grant
    world.cli("admin", "secret", "allow", "KEY", "user:ann", "--can", "grant")
    world.cli("ann", "secret", "grant", "KEY", "deploy")
    world.push("ann", "deploy", uses_secret=True)  # v3: after the grant, by ann
    no_launch = world.launch("carl", "deploy", ok=False)
    assert "user 'carl' may not launch 'deploy'" in no_launch and "KEY" in no_launch
    job_id = world.launch("ann", "deploy")
    world.finished(job_id)
    job = json.loads(world.cli("ann", "job", "show", job_id, "--json"))
    assert job["status"] == "succeeded", job
    assert job["outputs"] == {"secret_length": len(VALUE)} and job["runner"] == "prod-runner"
    assert job["launched_by"] == "user:ann"

    # --- an API key narrowed to pipeline a -------------------------------------------
    world.admin_push("a")
    assert world.cli("key", "pipeline", "list").count("deploy") == 0
    narrowed = world.cli("key", "pipeline", "show", "deploy", ok=False)
    assert "api-key 'ci' may not view 'deploy': it is limited to the pipelines 'a'" in narrowed
    world.launch("key", "deploy", ok=False)
    world.push("key", "b", ok=False)
    assert world.finished(world.launch("key", "a"))["status"] == "succeeded"

    # --- the audit trail (admin) -------------------------------------------------------
    world.cli("ann", "audit", "list", ok=False)
    events = json.loads(world.cli("admin", "audit", "list", "--json", "--limit", "200"))
    seen = {(e["actor"], e["action"]) for e in events}
    for expected in [
        ("user:ann", "pipeline.push"),
        ("user:ann", "pipeline.access.grant"),
        ("admin", "pipeline.pools"),
        ("admin", "pool.set"),
        ("admin", "runner-token.create"),
        ("user:carl", "job.launch"),
        ("user:bob", "job.cancel"),
        ("admin", "secret.create"),
        ("admin", "secret.allow"),
        ("user:ann", "secret.grant"),
        ("api-key:ci", "job.launch"),
    ]:
        assert expected in seen, expected
    assert sum(1 for e in events if e["action"] == "runner.register") == 2
    assert VALUE not in json.dumps(events)
    with httpx.Client(base_url=world.url, timeout=30) as http:
        assert VALUE not in http.get("/api/jobs", params={"limit": 500}).text
