"""Hostile: no job reads anything of the environment of the process that runs it.

A real runner, a real ``rivet run`` and a real ``rivet up`` are each started with a
canary in every variable of their environment (tests/support/canaries.py: every
variable the test process has, the credentials a CI host holds — admin token, secret
key, runner and registration tokens, database URL, cloud and GitHub tokens — and
host variables podman itself acts on, and names no job may give). Then a job tries
every name trick on ``process.run{ env, secrets }`` and ``container.with``, sets
podman's own variables, injects flags through values, and dumps ``env``,
``/proc/self/environ``, ``/proc/1/environ`` and every process's environment in the
container, to the log and to outputs. No canary — raw, base64 at any alignment, or
hex — may appear in any database row, API answer, output or CLI output. The
canaries are never secrets, so redaction cannot be what hides them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from canaries import canary_environment, database_rows, forms, leaks, new_canary
from live_rivet import ADMIN, Api, free_port, podman_containers
from rivet_processes import RIVET, Processes, Rivet, processes_mentioning, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

BUSYBOX = "localhost/rivet/busybox:latest"
LOG_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} \S+\s+\S+\s+(?P<message>.*)$")
TRICK_SECRET = "TRICK"
TRICK_VALUE = "trick-secret-value-0042"  # a real secret of the job, not a canary

# Names no job may give. Lua escapes: \0 NUL, \u{..} code points.
HOSTILE_NAMES = [
    "*", "**", "FOO*", "*TOKEN", "A*B", "AWS_*", "AWS_SECRET_ACCESS_KEY*", "RIVET*",
    "RIVET_ADMIN_TOKEN*", "?", "[A]", "=", "A=B", "=A", "RIVET_ADMIN_TOKEN=", "", " ", "A B",
    " A", "A ", "\\tA", "* ", " *", "1A", "9", "-e", "--env", "--env=*", "-", "--privileged",
    "A-B", "A.B", "A/B", "A:B", "$A", "${HOME}", "\\u{E9}", "\\u{C4}WS", "A\\u{A0}", "\\u{212A}",
    "\\u{FF21}WS", "A\\u{200B}", "A\\0B", "\\0", "*\\0", "A\\nB", "A\\r", "GITHUB_TOKEN ",
    "odd-name", "with space", "NEW\\nLINE",
]  # fmt: skip
# Valid names of variables podman and the host tools act on: the job may set them for
# its container (they go on podman's command line), never steer podman with them.
PODMAN_OWN = {
    "PATH": "/bin:/usr/bin", "HOME": "/tmp/job-home", "CONTAINERS_CONF": "/nonexistent.conf",
    "CONTAINER_HOST": "unix:///nonexistent", "DOCKER_HOST": "unix:///nonexistent",
    "TMPDIR": "/tmp/job-tmp", "XDG_RUNTIME_DIR": "/tmp/job-xdg", "LANG": "C",
    "HTTP_PROXY": "http://job-proxy.invalid:1", "https_proxy": "http://job-proxy.invalid:2",
    "NO_PROXY": "job-no-proxy", "LD_LIBRARY_PATH": "/nonexistent", "GODEBUG": "job=1",
    "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent", "NOTIFY_SOCKET": "/nonexistent",
    "STORAGE_DRIVER": "job-vfs", "REGISTRY_AUTH_FILE": "/nonexistent",
    "SSL_CERT_FILE": "/nonexistent", "CI": "job-ci", "LD_PRELOAD": "",
}  # fmt: skip
RESERVED_FOR_SECRETS = ["PATH", "HOME", "CONTAINERS_CONF", "LD_PRELOAD", "RIVET_X", "CI"]
# Values that look like flags or more variables: they stay values.
INJECTING_VALUES = [
    "--env=*",
    "-e AWS_SECRET_ACCESS_KEY",
    "x\n--env *",
    "*",
    "$AWS_SECRET_ACCESS_KEY",
]
DUMP = (
    "env; echo '--- self'; tr '\\0' '\\n' < /proc/self/environ; echo '--- pid1'; "
    "tr '\\0' '\\n' < /proc/1/environ; echo '--- all'; "
    "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\"; done; echo '--- files'; "
    "cat /workspace/../admin-token /workspace/../../admin-token 2>&1; "
    "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/mountinfo; echo '--- end'"
)


def lua_list(items: list[str]) -> str:
    return "{ " + ", ".join(f'"{item}"' for item in items) + " }"


def lua_str(text: str) -> str:
    return json.dumps(text)  # JSON escapes are Lua escapes for these ASCII strings


PIPELINE = f"""
local HOSTILE = {lua_list(HOSTILE_NAMES)}
local OWN = {{ {", ".join(f"{k} = {lua_str(v)}" for k, v in PODMAN_OWN.items())} }}
local RESERVED = {lua_list(RESERVED_FOR_SECRETS)}
local VALUES = {{ {", ".join(lua_str(v) for v in INJECTING_VALUES)} }}
local DUMP = {lua_str(DUMP)}

local function attempt(fn)
  local ok, err = pcall(fn)
  return ok and "accepted" or tostring(err)
end

return pipeline.define({{
  name = "env-hostile",
  stages = {{
    {{ name = "names", script = function()
      local report = {{ env = {{}}, secrets = {{}}, reserved = {{}}, own = {{}}, values = {{}} }}
      for i, name in ipairs(HOSTILE) do
        report.env[i] = attempt(function()
          process.run({{ "env", env = {{ [name] = "x" }}, check = true }})
        end)
        report.secrets[i] = attempt(function()
          process.run({{ "env", secrets = {{ [name] = "{TRICK_SECRET}" }}, check = true }})
        end)
      end
      for i, name in ipairs(RESERVED) do
        report.reserved[i] = attempt(function()
          process.run({{ "true", secrets = {{ [name] = "{TRICK_SECRET}" }} }})
        end)
      end
      for name, value in pairs(OWN) do
        local r = process.run({{ "env", env = {{ [name] = value }}, capture_stdout = true, check = true }})
        report.own[name] = r.stdout
      end
      for i, value in ipairs(VALUES) do
        local r = process.run({{ "sh", "-c", 'printf "%s" "$V"', env = {{ V = value }}, capture_stdout = true }})
        report.values[i] = r.stdout
      end
      report.image = attempt(function() container.with("--env=*", function() end) end)
      report.getenv = tostring(os and os.getenv)
      report.fs_environ = attempt(function() return fs.read("/proc/self/environ") end)
      report.fs_admin = attempt(function() return fs.read("../../admin-token") end)
      output.set("report", json.encode(report))
      log.info("REPORT " .. json.encode(report))
    end }},
    {{ name = "dump", script = function()
      process.run({{ "sh", "-c", DUMP }})
      process.run({{ "sh", "-c", "(" .. DUMP .. ") | base64" }})
      process.run({{ "sh", "-c", "(" .. DUMP .. ") | od -An -tx1" }})
      local r = process.run({{ "sh", "-c", DUMP, capture_stdout = true, capture_stderr = true }})
      output.set("dump", r.stdout .. r.stderr)
      local s = process.run({{ "sh", "-c", DUMP, secrets = {{ TOKEN = "{TRICK_SECRET}" }}, capture_stdout = true }})
      output.set("dump_with_secret", s.stdout)
    end }},
  }},
}})
"""


def check_report(report: dict[str, Any], dump: str, secret_dump: str) -> None:
    """Every trick refused with the right words; podman's own names set in the container;
    the dumps did read the container's environments."""
    for i, name in enumerate(HOSTILE_NAMES):
        assert "invalid environment variable name" in report["env"][i], (name, report["env"][i])
        assert "invalid environment variable name" in report["secrets"][i], (name,)
    assert all("cannot hold a secret" in r for r in report["reserved"]), report["reserved"]
    for name, value in PODMAN_OWN.items():
        assert f"{name}={value}" in report["own"][name].splitlines(), (name, report["own"][name])
    assert report["values"] == INJECTING_VALUES
    assert "container.with" in report["image"] and report["getenv"] == "nil"
    assert report["fs_environ"] != "accepted" and report["fs_admin"] != "accepted"
    assert "RIVET_JOB_ID=" in dump and "--- pid1" in dump and "--- end" in dump
    assert "container=podman" in dump
    assert "TOKEN=***" in secret_dump and TRICK_VALUE not in secret_dump  # a secret is redacted


def check_outputs(outputs: dict[str, Any]) -> None:
    check_report(json.loads(outputs["report"]), outputs["dump"], outputs["dump_with_secret"])


def create_with_secret(url: str, admin: dict[str, str]) -> None:
    """A real secret granted to the pipeline, then the pipeline pushed by the admin
    (a grant applies to the versions the admin pushes after it)."""
    body = {"value": TRICK_VALUE, "grants": ["env-hostile"]}
    put = httpx.put(f"{url}/api/secrets/{TRICK_SECRET}", headers=admin, json=body, timeout=30)
    assert put.status_code == 201, put.text
    created = httpx.post(
        f"{url}/api/pipelines", headers=admin, json={"source": PIPELINE}, timeout=30
    )
    assert created.status_code == 201, created.text


def assert_no_leak(texts: list[str], canaries: dict[str, str]) -> None:
    assert texts and all(isinstance(t, str) for t in texts)
    found = leaks(texts, canaries)
    assert found == {}, "leaked:\n" + "\n".join(f"{k!r}: …{v}…" for k, v in found.items())


def test_the_canary_search_finds_every_encoding() -> None:
    canary = new_canary()
    wrapped = base64.b64encode(b"ab" + canary.encode() + b"c").decode()
    for text in (
        f"x{canary}y",
        canary.encode().hex().upper(),
        wrapped,
        wrapped[:20] + "\n" + wrapped[20:],  # `base64` wraps its lines
        base64.urlsafe_b64encode(b"a" + canary.encode()).decode(),
        " ".join(f"{b:02x}" for b in canary.encode()),  # `od -An -tx1`
    ):
        assert "X" in leaks([text], {"X": canary}), text
    assert leaks(["nothing here", canary[:-1]], {"X": canary}) == {}
    assert len(forms(canary)) >= 6  # raw, 2 hex, 3 base64 alignments (URL-safe may coincide)


def test_a_runner_with_canaries_everywhere_leaks_none_to_its_jobs(
    podman_available: str, rivet_server: Rivet, processes: Processes, tmp_path: Path
) -> None:
    api = rivet_server.api
    create_with_secret(rivet_server.url, ADMIN)
    registration = api.registration_token()
    runner_home = tmp_path / "runner-home"
    env, canaries = canary_environment(
        os.environ, tmp_path / "canary", {"RIVET_HOME": str(runner_home)}, extra=["LD_PRELOAD"]
    )
    runner = processes.start(
        [
            "runner", "--server", rivet_server.url, "--registration-token", registration,
            "--name", "hostile-runner", "--default-image", BUSYBOX,
            "--config", str(runner_home / "runner.toml"),  # not RIVET_RUNNER_CONFIG's canary
        ],
        env,
        "hostile-runner",
    )  # fmt: skip
    runner.wait_for_output("ready", timeout=90)
    job_id = api.launch("env-hostile", admin=True)
    job = api.wait_finished(job_id, timeout=600)
    assert job["status"] == "succeeded", (job, runner.output[-3000:])
    check_outputs(job["outputs"])

    logs = api.logs(job_id)
    assert any("RIVET_JOB_ID=" in line["message"] for line in logs)
    cli = run_cli(["job", "logs", job_id], rivet_server.env)
    assert cli.returncode == 0, cli.stderr
    texts = [
        json.dumps(job),
        json.dumps(logs),
        "".join(line["message"] for line in logs),  # encodings wrapped over lines
        cli.stdout + cli.stderr,
        *database_rows(rivet_server.home / "rivet.db"),
    ]
    assert_no_leak(texts, canaries)
    assert podman_containers(job_id) == []


def test_rivet_run_with_canaries_everywhere_leaks_none_to_the_job(
    podman_available: str, tmp_path: Path
) -> None:
    source = tmp_path / "env-hostile.lua"
    source.write_text(PIPELINE)
    secret_file = tmp_path / "secrets.env"
    secret_file.write_text(f"{TRICK_SECRET}={TRICK_VALUE}\n")
    secret_file.chmod(0o600)
    real = {
        "RIVET_HOME": str(tmp_path / "home"),
        "RIVET_DEFAULT_IMAGE": BUSYBOX,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    env, canaries = canary_environment(os.environ, tmp_path / "canary", real)
    proc = subprocess.run(
        [str(RIVET), "run", str(source), "--secret-file", str(secret_file)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RIVET_JOB_ID=" in proc.stdout and "--- pid1" in proc.stdout
    messages = [m["message"] for m in map(LOG_LINE.match, proc.stdout.splitlines()) if m]
    (report,) = [json.loads(m[len("REPORT ") :]) for m in messages if m.startswith("REPORT ")]
    check_report(report, proc.stdout, proc.stdout)
    assert_no_leak([proc.stdout, proc.stderr, "".join(messages)], canaries)
    job = re.search(r"as job (local-[0-9a-f]{8})", proc.stderr)
    assert job and podman_containers(job.group(1)) == []


def test_rivet_up_with_canaries_everywhere_keeps_the_admin_token_from_jobs(
    podman_available: str, processes: Processes, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    real = {"RIVET_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    env, canaries = canary_environment(os.environ, tmp_path / "canary", real, extra=["LD_PRELOAD"])
    env["RIVET_DEFAULT_IMAGE"] = BUSYBOX  # a runner setting `rivet up` passes on
    admin_token = env["RIVET_ADMIN_TOKEN"]
    up = processes.start(["up", "--port", str(port)], env, "up")
    up.wait_for_output("Press Ctrl-C to stop.", timeout=120)

    # The canary admin token is the server's real one…
    admin = {"Authorization": f"Bearer {admin_token}"}
    assert httpx.get(f"{url}/api/runner-tokens", headers=admin, timeout=10).status_code == 200
    create_with_secret(url, admin)
    # …and the runner child was never given it, nor any other server setting.
    (runner_pid,) = [
        pid for pid in processes_mentioning(str(home)) if "rivet.runner" in _cmdline(pid)
    ]
    runner_environ = Path(f"/proc/{runner_pid}/environ").read_bytes().decode(errors="replace")
    for name in (
        "RIVET_ADMIN_TOKEN",
        "RIVET_SECRET_KEY",
        "RIVET_DATABASE_URL",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert canaries[name] not in runner_environ, name
    assert "RIVET_ADMIN_TOKEN=" not in runner_environ

    api = Api(url)
    try:
        # Launched with this server's own admin token (the canary): the pipeline has a
        # secret granted to it.
        body = {"pipeline": "env-hostile", "inputs": {}}
        launched = httpx.post(f"{url}/api/jobs", json=body, headers=admin, timeout=30)
        assert launched.status_code == 201, launched.text
        job_id = str(launched.json()["id"])
        job = api.wait_finished(job_id, timeout=600)
        assert job["status"] == "succeeded", job
        check_outputs(job["outputs"])
        logs = api.logs(job_id)
    finally:
        api.close()
    cli = run_cli(
        ["job", "logs", job_id], {**real, "PATH": os.environ["PATH"], "RIVET_SERVER": url}
    )
    assert cli.returncode == 0, cli.stderr
    texts = [json.dumps(job), json.dumps(logs), "".join(line["message"] for line in logs)]
    texts.append(cli.stdout + cli.stderr)
    texts += database_rows(home / "rivet.db")
    assert_no_leak(texts, canaries)
    assert podman_containers(job_id) == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
