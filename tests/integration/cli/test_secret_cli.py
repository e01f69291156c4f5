"""``rivet secret`` against a real server process, and ``rivet run`` with local secrets:
values only from stdin or a hidden prompt (never argv), never printed, never stored in
plaintext; the key file is private."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from rivet.cli import common

Cli = Callable[..., Result]
VALUE = "cli-Secret/Value+42=="


def name() -> str:
    return f"S_{uuid.uuid4().hex[:8].upper()}"


def names_listed(cli: Cli) -> str:
    listed = cli(["secret", "list"])
    assert listed.exit_code == 0, listed.output
    return listed.stdout


def claimed_secrets(server: Any, pipeline: str) -> dict[str, str]:
    """Launch a job of ``pipeline`` and claim it as a runner: the secrets it carries."""
    source = (
        f'return pipeline.define({{ name = "{pipeline}", runner = {{ {{ key = "only", '
        f'value = "{pipeline}" }} }}, stages = {{ {{ name = "s", script = function() end }} }} }})'
    )
    runner = server.runner({"only": pipeline})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        # the pipeline already has grants, so only the admin may create it
        created = http.post("/api/pipelines", json={"source": source}, headers=server.admin)
        assert created.status_code == 201
        launched = http.post("/api/jobs", json={"pipeline": pipeline}, headers=server.admin)
        assert launched.status_code == 201
        claim = http.post("/api/runner/claim", headers=runner, json={"wait_seconds": 5})
    assert claim.status_code == 200, claim.text
    secrets: dict[str, str] = claim.json()["secrets"]
    return secrets


def test_set_from_stdin_list_grant_revoke_delete(cli: Cli, rivet_server: Any) -> None:
    secret, pipeline = name(), f"p-{uuid.uuid4().hex[:6]}"
    created = cli(["secret", "set", secret, "--grant", pipeline], input=VALUE + "\n")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == f"secret {secret} created (granted to {pipeline})"
    listed = names_listed(cli)
    row = next(line for line in listed.splitlines() if line.startswith(secret))
    assert pipeline in row
    # the trailing newline from `echo` is not part of the value
    assert claimed_secrets(rivet_server, pipeline) == {secret: VALUE}

    updated = cli(["secret", "set", secret], input="replaced-value-1")
    assert updated.stdout.strip() == f"secret {secret} updated (granted to {pipeline})"
    other = f"{pipeline}-b"
    granted = cli(["secret", "grant", secret, other])
    assert granted.stdout.strip() == f"secret {secret} is granted to {pipeline}, {other}"
    revoked = cli(["secret", "revoke", secret, pipeline])
    assert revoked.stdout.strip() == f"secret {secret} is granted to {other}"
    again = cli(["secret", "revoke", secret, pipeline])
    assert again.exit_code == 1
    assert f"secret '{secret}' is not granted to pipeline '{pipeline}'" in again.stderr
    deleted = cli(["secret", "delete", secret])
    assert deleted.stdout.strip() == f"deleted secret {secret}"
    assert secret not in names_listed(cli)
    for result in (created, updated, granted, revoked, again, deleted):
        assert VALUE not in result.output and "replaced-value-1" not in result.output


@pytest.mark.parametrize(
    "extra",
    [[VALUE], ["--", VALUE], [f"--value={VALUE}"], ["--value", VALUE], [VALUE, "--grant", "p"]],
)
def test_a_value_on_the_command_line_is_refused_and_not_echoed(cli: Cli, extra: list[str]) -> None:
    secret = name()
    result = cli(["secret", "set", secret, *extra], input="should-not-be-read")
    assert result.exit_code == 2, result.output
    assert "takes no value argument" in result.stderr
    assert VALUE not in result.output
    assert secret not in names_listed(cli)  # nothing stored


def test_the_console_script_refuses_argv_values_too(rivet_server: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env.update({"RIVET_SERVER": rivet_server.url, "RIVET_HOME": str(rivet_server.home)})
    rivet = Path(sys.executable).with_name("rivet")
    proc = subprocess.run(
        [str(rivet), "secret", "set", "ARGV_TOKEN", VALUE],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "takes no value argument" in proc.stderr
    assert VALUE not in proc.stdout + proc.stderr
    piped = subprocess.run(
        [str(rivet), "secret", "set", "PIPED_TOKEN"],
        input=VALUE + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert VALUE not in piped.stdout + piped.stderr


def test_a_value_typed_as_the_name_is_not_echoed(cli: Cli) -> None:
    result = cli(["secret", "set", "oops/" + VALUE], input="x")
    assert result.exit_code == 2
    assert "invalid secret name (not shown" in result.stderr and VALUE not in result.output


def test_bad_values_from_stdin(cli: Cli) -> None:
    empty = cli(["secret", "set", name()], input="")
    assert empty.exit_code == 2 and "no value for" in empty.stderr
    short = cli(["secret", "set", name()], input="ab\n")
    assert short.exit_code == 1 and "at least 4 non-blank characters" in short.stderr
    assert "ab\n" not in short.output


def test_hidden_prompt_is_asked_twice(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "is_interactive", lambda: True)
    answers = iter([VALUE, VALUE])
    prompts: list[str] = []

    def fake_getpass(prompt: str, stream: object = None) -> str:  # a terminal cannot run here
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    secret = name()
    ok = cli(["secret", "set", secret])
    assert ok.exit_code == 0, ok.output
    assert prompts == [f"value of {secret} (input hidden): ", f"value of {secret} again: "]
    assert VALUE not in ok.output

    answers = iter([VALUE, VALUE + "x"])
    other = name()
    mismatch = cli(["secret", "set", other])
    assert mismatch.exit_code == 2 and "the two values differ" in mismatch.stderr
    assert other not in names_listed(cli)


def test_store_and_key_file_on_the_server(cli: Cli, rivet_server: Any) -> None:
    secret = name()
    assert cli(["secret", "set", secret], input=VALUE).exit_code == 0
    key_file = rivet_server.home / "secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for path in rivet_server.home.glob("rivet.db*"):
        assert VALUE.encode() not in path.read_bytes(), path
    assert VALUE not in rivet_server.log.read_text()


def test_commands_need_the_admin_token(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = cli(["secret", "list", "--admin-token", "nope"])
    assert wrong.exit_code == 1 and "invalid admin token" in wrong.stderr
    refused = cli(["secret", "set", name(), "--admin-token", "nope"], input=VALUE)
    assert refused.exit_code == 1 and VALUE not in refused.output


# --- rivet run ------------------------------------------------------------------------------

BUSYBOX = "localhost/rivet/busybox:latest"
PIPELINE = """return pipeline.define({ name = "local-secrets", stages = {
  { name = "s", script = function()
      log.info("from env: " .. secret.get("ENV_TOKEN"))
      log.info("from file: " .. secret.get("FILE_TOKEN"))
      process.run({ "sh", "-c", "echo injected $T", secrets = { T = "FILE_TOKEN" } })
      if secret.has("MISSING") then error("unexpected") end
      secret.get("MISSING")
  end } } })
"""


def rivet_run(
    home: Path, args: list[str], extra_env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env |= {"RIVET_HOME": str(home), "RIVET_DEFAULT_IMAGE": BUSYBOX, "NO_COLOR": "1", **extra_env}
    rivet = Path(sys.executable).with_name("rivet")
    return subprocess.run(
        [str(rivet), "run", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )


@pytest.mark.podman
@pytest.mark.parametrize("kind", ["env", "toml"])
def test_rivet_run_reads_local_secrets_and_redacts_them(
    podman_available: str, tmp_path: Path, kind: str
) -> None:
    env_value, file_value = "env-Secret-0001", 'file "Secret" #2'
    if kind == "env":
        secret_file = tmp_path / "secrets.env"
        secret_file.write_text(f"# local secrets\nexport FILE_TOKEN='{file_value}'\n")
    else:
        secret_file = tmp_path / "secrets.toml"
        secret_file.write_text(f"[secrets]\nFILE_TOKEN = {json.dumps(file_value)}\n")
    os.chmod(secret_file, 0o644)  # hostile: others may read it -> a warning
    pipeline = tmp_path / "p.lua"
    pipeline.write_text(PIPELINE)
    proc = rivet_run(
        tmp_path / "home",
        [str(pipeline), "--secret-file", str(secret_file)],
        {"RIVET_SECRET_ENV_TOKEN": env_value, "RIVET_SECRET_KEY": "not-a-secret-for-jobs"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output  # the last secret.get fails
    assert "from env: ***" in output and "from file: ***" in output and "injected ***" in output
    assert (
        "secret.get: secret 'MISSING' is not available (rivet run: set RIVET_SECRET_MISSING"
        in output
    )
    assert f"{secret_file} is readable by group or others (mode 0644)" in proc.stderr
    for value in (env_value, file_value, "Secret"):
        assert value not in output


def test_rivet_run_refuses_a_bad_secret_file_without_echoing(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.lua"
    pipeline.write_text(PIPELINE)
    bad = tmp_path / "bad.env"
    bad.write_text("GOOD=fine-value\nnot a line with hunter2-value\n")
    os.chmod(bad, 0o600)
    proc = rivet_run(tmp_path / "home", [str(pipeline), "--secret-file", str(bad)], {})
    assert proc.returncode != 0
    assert f"{bad}:2: expected NAME=value" in proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr and "fine-value" not in proc.stderr
    short = rivet_run(tmp_path / "home", [str(pipeline)], {"RIVET_SECRET_X": "ab"})
    assert "RIVET_SECRET_X: secret 'X': the value must have at least 4" in short.stderr


def test_launching_a_version_older_than_the_grant_warns(
    cli: Cli, rivet_server: Any, tmp_path: Path
) -> None:
    secret, pipeline = name(), f"old-{uuid.uuid4().hex[:6]}"
    source = f'return pipeline.define({{ name = "{pipeline}", runner = {{ {{ key = "only", value = "{pipeline}" }} }}, stages = {{ {{ name = "s", script = function() end }} }} }})'
    anonymous = httpx.post(f"{rivet_server.url}/api/pipelines", json={"source": source}, timeout=30)
    assert anonymous.status_code == 201 and anonymous.json()["created_by"] == "anonymous"
    assert cli(["secret", "set", secret, "--grant", pipeline], input=VALUE).exit_code == 0
    file = tmp_path / "p.lua"
    file.write_text(source)
    pushed = cli(["pipeline", "create", str(file)])  # with this machine's admin token
    assert pushed.exit_code == 0, pushed.output

    old = cli(["job", "launch", pipeline, "--version", "1", "--quiet"])
    assert old.exit_code == 0, old.output
    assert old.stderr == (
        f"warning: secret '{secret}' will not reach this job: version 1 of pipeline "
        f"'{pipeline}' predates its grant of secret '{secret}' (the grant covers version 2 "
        "and later); the job runs without it\n"
    )
    latest = cli(["job", "launch", pipeline, "--quiet"])
    assert latest.exit_code == 0 and latest.stderr == ""
    row = next(ln for ln in names_listed(cli).splitlines() if ln.startswith(secret))
    assert f"{pipeline} (v2+)" in row
    assert VALUE not in old.output + latest.output
