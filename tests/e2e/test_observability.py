"""End to end: a real Prometheus (Debian's package, started here on free loopback
ports with the scrape configuration of docs/observability.md) scrapes a real
``rivet server`` (behind its metrics token) and a real ``rivet runner
--metrics-port``; a few jobs run in Podman; the values are read back through
Prometheus's query API. The same run's server and runner logs are JSON lines with
their ids, and no secret or token reaches them by any path tried here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from live_rivet import ADMIN_TOKEN, Api, free_port, remove_job_containers, wait_for
from rivet_processes import Processes, RivetProcess, rivet_env, run_cli, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
METRICS_TOKEN = "rivet-metrics-e2e-Token-0451"
SECRET_VALUE = "sEcReT-e2e-value-93417"
SECRET_NAME = "OBS_SECRET"

OK_PIPELINE = """
return pipeline.define({
  name = "obs-ok",
  stages = {
    { name = "work", script = function()
        process.run({ "sh", "-c", "head -c 30000000 /dev/zero | md5sum; sleep 3" })
      end },
    { name = "leak", script = function()
        local value = secret.get("OBS_SECRET")
        log.info("the secret is " .. value)
        process.run({ "sh", "-c", "echo \\"$V\\"", env = { V = value } })
      end },
  },
})
"""
FAILING_PIPELINE = """
return pipeline.define({
  name = "obs-fail",
  stages = {
    { name = "boom", script = function()
        error("failed holding " .. secret.get("OBS_SECRET"))
      end },
  },
})
"""


def scrape_config(server: str, runner: str, token_file: Path) -> str:
    """The configuration of docs/observability.md, with this test's addresses, token
    file and a 1 s interval."""
    doc = (DOCS / "observability.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    (config,) = [b for b in blocks if "scrape_configs" in b]
    replaced = {
        "scrape_interval: 15s": "scrape_interval: 1s",
        '"127.0.0.1:8420"': f'"{server}"',
        '"127.0.0.1:9464"': f'"{runner}"',
        "/etc/prometheus/rivet-metrics-token": str(token_file),
    }
    for old, new in replaced.items():
        assert old in config, f"docs/observability.md's scrape config lost {old!r}"
        config = config.replace(old, new)
    return config


class Prometheus:
    def __init__(self, config: str, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (tmp / "prometheus.yml").write_text(config)
        self.log = (tmp / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 60, "prometheus ready")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, "prometheus exited; see prometheus.log"
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def query(self, expr: str) -> dict[str, float]:
        """``expr`` now: the value of each series, keyed by its labels as text."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "success", body
        return {
            json.dumps(r["metric"], sort_keys=True): float(r["value"][1])
            for r in body["data"]["result"]
        }

    def scalar(self, expr: str) -> float | None:
        found = self.query(expr)
        return next(iter(found.values())) if len(found) == 1 else None

    def eventually(self, expr: str, expected: float, timeout: float = 60.0) -> None:
        """Poll until ``expr`` (one series) equals ``expected`` (scrapes are 1 s apart)."""
        wait_for(lambda: self.scalar(expr) == expected, timeout, f"{expr} == {expected}")

    def names(self) -> set[str]:
        answer = httpx.get(f"{self.url}/api/v1/label/__name__/values", timeout=10)
        return set(answer.json()["data"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Stack:
    prometheus: Prometheus
    server: RivetProcess
    runner: RivetProcess
    jobs: dict[str, str]
    home: Path
    registration_token: str
    stream_events: list[str] = field(default_factory=list)


def follow(url: str, job_id: str, events: list[str]) -> None:
    with httpx.stream("GET", f"{url}/api/jobs/{job_id}/logs/stream", timeout=60) as answer:
        for line in answer.iter_lines():
            events.append(line)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, podman_available: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("observability")
    procs = Processes(tmp)
    home = tmp / "home"
    port, runner_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = rivet_env(
        home,
        RIVET_SERVER=url,
        RIVET_ADMIN_TOKEN=ADMIN_TOKEN,
        RIVET_METRICS_TOKEN=METRICS_TOKEN,
        RIVET_METRICS_ALLOW="none",  # so Prometheus must present the token
        RIVET_LOG_LEVEL="info,alembic=warning",
    )
    server = procs.start(["server", "--port", str(port), "--log-format", "json"], env, "server")
    prometheus: Prometheus | None = None
    api = Api(url)
    try:
        wait_ready(url, server)
        token = run_cli(["runner", "token", "create", "--quiet"], env)
        assert token.returncode == 0, token.stderr
        registration = token.stdout.strip()
        runner_env = dict(env, RIVET_REGISTRATION_TOKEN=registration)
        runner = procs.start(
            ["runner", "--name", "obs-runner", "--metrics-port", str(runner_port)],
            runner_env,
            "runner",
        )
        runner.wait_for_output("ready")
        token_file = tmp / "metrics-token"
        token_file.write_text(METRICS_TOKEN + "\n")
        prometheus = Prometheus(
            scrape_config(f"127.0.0.1:{port}", f"127.0.0.1:{runner_port}", token_file), tmp
        )
        # Both targets scraped once before anything runs: a first scrape comes late.
        prometheus.eventually('up{job="rivet-server"}', 1)
        prometheus.eventually('up{job="rivet-runner"}', 1)
        api.create_pipeline(OK_PIPELINE, "obs-ok.lua")
        api.create_pipeline(FAILING_PIPELINE, "obs-fail.lua")
        secret = api.http.put(
            f"/api/secrets/{SECRET_NAME}",
            json={"value": SECRET_VALUE, "grants": ["obs-ok", "obs-fail"]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert secret.status_code == 201, secret.text
        for name in ("obs-ok", "obs-fail"):
            api.push_again_as_admin(name)  # a version the grant covers
        events: list[str] = []
        jobs = {"first": api.launch("obs-ok", admin=True)}
        reader = threading.Thread(target=follow, args=(url, jobs["first"], events), daemon=True)
        reader.start()
        # Seen open by a scrape while the job runs (it sleeps 3 s in a container).
        prometheus.eventually("max_over_time(rivet_sse_streams_active[1m])", 1)
        api.wait_finished(jobs["first"], 120)
        reader.join(30)
        jobs["second"] = api.launch("obs-ok", admin=True)
        jobs["failing"] = api.launch("obs-fail", admin=True)
        for job_id in jobs.values():
            api.wait_finished(job_id, 120)
        # Ways a token could reach the server's log: a query string, a bad bearer.
        httpx.get(f"{url}/api/jobs?token={ADMIN_TOKEN}", timeout=10)
        httpx.get(f"{url}/api/runners", headers={"Authorization": f"Bearer {SECRET_VALUE}x"})
        httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        yield Stack(prometheus, server, runner, jobs, home, registration, events)
    finally:
        job_ids = [job["id"] for job in api.jobs()] if server.proc.poll() is None else []
        api.close()
        if prometheus is not None:
            prometheus.stop()
        procs.stop_all()
        for job_id in job_ids:
            remove_job_containers(job_id)


def test_prometheus_reads_the_server_and_runner_metrics(stack: Stack) -> None:
    p = stack.prometheus
    p.eventually('rivet_jobs_finished_total{pipeline="obs-ok",status="succeeded"}', 2)
    p.eventually('rivet_runner_jobs_total{status="failed"}', 1)
    assert p.scalar('up{job="rivet-server"}') == 1  # scraped with the token
    assert p.scalar('up{job="rivet-runner"}') == 1
    assert p.scalar('rivet_jobs_finished_total{pipeline="obs-fail",status="failed"}') == 1
    assert p.scalar('rivet_job_duration_seconds_count{pipeline="obs-ok",status="succeeded"}') == 2
    # The first stage sleeps 3 s: both runs land at or above the 2.5 s bucket.
    assert (
        p.scalar(
            'rivet_stage_duration_seconds_bucket{pipeline="obs-ok",stage="work",'
            'status="succeeded",le="2.5"}'
        )
        == 0
    )
    assert p.scalar("rivet_job_claim_latency_seconds_count") == 3
    assert p.scalar("rivet_queue_depth") == 0
    assert p.scalar("rivet_queue_oldest_age_seconds") == 0
    assert p.scalar("rivet_sse_streams_active") == 0
    claims = p.query('rivet_http_requests_total{route="/api/runner/claim"}')
    assert claims and all(v > 0 for v in claims.values())
    assert not p.query('{__name__="rivet_http_requests_total",route=~".*[0-9a-f]{32}.*"}')
    assert p.scalar('rivet_db_pool_connections{state="size"}') == 10

    assert p.scalar('rivet_runner_jobs_total{status="succeeded"}') == 2
    assert p.scalar('rivet_runner_slots{state="free"}') == 1
    assert p.scalar('rivet_runner_slots{state="busy"}') == 0
    assert p.scalar("rivet_runner_containers") == 0
    # One container per job (the failing one never starts a command).
    assert (p.scalar("rivet_runner_container_start_seconds_count") or 0) >= 2
    assert (p.scalar("rivet_runner_exec_seconds_count") or 0) >= 4
    assert (p.scalar('process_resident_memory_bytes{job="rivet-runner"}') or 0) > 10e6
    # Seen while the first stage ran: CPU from hashing 30 MB, memory of the container.
    cpu = p.query("max_over_time(rivet_runner_container_cpu_seconds_total[10m])")
    memory = p.query("max_over_time(rivet_runner_container_memory_bytes[10m])")
    assert cpu and max(cpu.values()) > 0
    assert memory and max(memory.values()) > 0
    assert any(stack.jobs["first"] in labels for labels in memory)


def test_every_metric_the_dashboard_and_the_docs_name_exists(stack: Stack) -> None:
    stack.prometheus.eventually('rivet_runner_jobs_total{status="failed"}', 1)
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = {m for e in exprs for m in re.findall(r"\b((?:rivet|process)_[a-z_]+)", e)}
    documented = set(
        re.findall(
            r"^\| `((?:rivet|process)_[a-z_]+)`", (DOCS / "observability.md").read_text(), re.M
        )
    )
    assert len(queried) > 10 and len(documented) > 15
    stored = stack.prometheus.names()
    # A histogram is stored as NAME_bucket, NAME_count and NAME_sum.
    missing = {n for n in queried | documented if n not in stored and f"{n}_bucket" not in stored}
    assert not missing


def test_logs_are_json_lines_with_ids_and_no_secret(stack: Stack) -> None:
    assert any(SECRET_VALUE not in e and "***" in e for e in stack.stream_events)
    for proc in (stack.server, stack.runner):
        proc.stop()  # every line written
    server = [json.loads(line) for line in stack.server.lines]
    runner = [json.loads(line) for line in stack.runner.lines]
    for record in server + runner:
        assert {"timestamp", "level", "component", "message"} <= set(record), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
    claimed = [r for r in runner if r["message"].startswith("claimed job")]
    assert len(claimed) == 3 and all(r.get("runner_id") and r.get("job_id") for r in claimed)
    assert {r["job_id"] for r in claimed} == set(stack.jobs.values())
    finished = [r for r in runner if " finished: " in r["message"]]
    assert {r["job_id"] for r in finished} == set(stack.jobs.values())
    access = [r for r in server if r["component"] == "uvicorn.access"]
    assert access and all(re.fullmatch(r"[0-9a-f]{16}", r["request_id"]) for r in access)
    # RIVET_LOG_LEVEL=info,alembic=warning: the migrations' info lines are gone.
    assert not [r for r in server if r["component"].startswith("alembic")]
    assert any(r["component"] == "rivet.orchestrator.app" for r in server)
    everything = "\n".join(stack.server.lines + stack.runner.lines)
    saved = tomllib.loads((stack.home / "runner.toml").read_text())["token"]
    for value in (SECRET_VALUE, ADMIN_TOKEN, METRICS_TOKEN, stack.registration_token, saved):
        assert value not in everything
    assert "/api/jobs?token=***" in everything  # the query string, masked
