"""``rivet config show``: every setting with its value and where it came from (flag,
env, file and key, default), secrets masked, bad values listed with their error."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from rivet.runner.config_file import save_registration
from rivet.settings import GROUPS

Invoke = Callable[..., Result]

ADMIN = "rivet_admin_from-the-config-file-0001"
KEY = "c2VjcmV0LWtleS1mcm9tLXRoZS1lbnZpcm9ubWVudC0x"
RUNNER_TOKEN = "rivet_runner_saved-at-registration-0002"


def shown(invoke: Invoke, *args: str) -> dict[str, dict[str, Any]]:
    result = invoke(["config", "show", "--json", *args])
    assert result.exit_code == 0, result.output
    return {entry["name"]: entry for entry in json.loads(result.stdout)["settings"]}


def table(stdout: str) -> dict[str, tuple[str, str]]:
    """``SETTING  VALUE  FROM`` lines of the text output (columns two spaces apart)."""
    lines = stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["setting", "value", "from"]
    rows = {}
    for line in lines[1:]:
        name, value, source = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        rows[name] = (value, source)
    return rows


def test_every_setting_is_listed_with_its_source(
    invoke: Invoke, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "config").write_text(
        f'[client]\nserver = "ci.example.com:8420/"\nadmin_token = "{ADMIN}"\n'
        '[server]\nlog_level = "DEBUG"\n[lua]\nstage_seconds = 7\n'
    )
    monkeypatch.setenv("RIVET_PORT", "9001")
    monkeypatch.setenv("RIVET_SECRET_KEY", KEY)
    monkeypatch.setenv("RIVET_DATABASE_URL", "postgresql+psycopg://rivet:pa55w0rd@db/rivet")
    result = invoke(["config", "show"])
    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    assert set(rows) == {s.path for group in GROUPS for s in group.settings()}
    config = isolated_env / "config"
    assert rows["home"] == (str(isolated_env), "env RIVET_HOME")
    assert rows["client.server"] == (
        "http://ci.example.com:8420",
        f"file {config}: [client] server",
    )
    assert rows["client.admin_token"] == ("****", f"file {config}: [client] admin_token")
    assert rows["server.port"] == ("9001", "env RIVET_PORT")
    assert rows["server.log_level"] == ("debug", f"file {config}: [server] log_level")
    assert rows["server.secret_key"] == ("****", "env RIVET_SECRET_KEY")
    assert rows["server.database_url"] == (
        "postgresql+psycopg://rivet:****@db/rivet",
        "env RIVET_DATABASE_URL",
    )
    assert rows["server.host"] == ("127.0.0.1", "default")
    assert rows["lua.stage_seconds"] == ("7.0", f"file {config}: [lua] stage_seconds")
    assert rows["jobs.workspace_root"] == (
        str(isolated_env / "workspaces"),
        "default ($RIVET_HOME/workspaces)",
    )
    for secret in (ADMIN, KEY, "pa55w0rd"):
        assert secret not in result.output
    assert f"config files, first wins: {config}" in result.stderr


def test_a_flag_wins_and_the_home_flag_moves_the_files(
    invoke: Invoke, isolated_env: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-home"
    other.mkdir()
    (other / "config").write_text('server = "https://other.example"\n')
    settings = shown(invoke, "--home", str(other))
    assert (settings["home"]["value"], settings["home"]["source"]) == (str(other), "flag")
    assert settings["home"]["where"] == "--home"
    assert settings["client.server"]["value"] == "https://other.example"
    assert settings["client.server"]["where"] == f"{other / 'config'}: server"
    assert settings["client.server"]["env"] == "RIVET_SERVER"
    assert settings["client.server"]["flags"] == ["--server", "-s"]


def test_the_runner_view_reads_its_file_first(invoke: Invoke, isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "config").write_text('server = "http://from-config:1"\n[runner]\nname = "c"\n')
    runner_file = isolated_env / "runner.toml"
    runner_file.write_text('concurrency = 4\npolicy = "policy.toml"\n[tags]\nos = "linux"\n')
    save_registration(
        runner_file, server="http://saved:2", runner_id="r1", token=RUNNER_TOKEN, name="r"
    )
    cli = shown(invoke)
    assert cli["client.server"]["value"] == "http://from-config:1"  # the CLI never reads it
    assert cli["runner.concurrency"]["source"] == "default"
    result = invoke(["config", "show", "--runner", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["files"] == [str(runner_file), str(isolated_env / "config")]
    runner = {entry["name"]: entry for entry in document["settings"]}
    assert runner["client.server"]["value"] == "http://saved:2"
    assert runner["client.server"]["where"] == f"{runner_file}: server"
    assert runner["runner.name"]["value"] == "r"  # runner.toml's, saved at registration
    assert runner["runner.concurrency"]["value"] == "4"
    assert runner["runner.tags"]["value"] == "os=linux"
    assert runner["jobs.policy"]["value"] == str(isolated_env / "policy.toml")
    assert runner["runner.token"]["value"] == "****"
    assert runner["runner.token"]["where"] == f"{runner_file}: token (saved at registration)"
    assert RUNNER_TOKEN not in result.output


def test_bad_values_are_listed_with_their_error_and_exit_2(
    invoke: Invoke, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "config").write_text("[server]\nsse_keepalive = 0\n")
    monkeypatch.setenv("RIVET_RUNNER_CONCURRENCY", "many")
    result = invoke(["config", "show"])
    assert result.exit_code == 2
    rows = table(result.stdout)
    assert rows["runner.concurrency"] == (
        "(invalid)",
        "RIVET_RUNNER_CONCURRENCY: expected a whole number, got 'many'",
    )
    assert rows["server.port"] == ("8420", "default")  # the others still show
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {isolated_env / 'config'}: [server] sse_keepalive: must be greater than 0, got 0",
        "error: RIVET_RUNNER_CONCURRENCY: expected a whole number, got 'many'",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1\n", r"\[server\] prot: unknown setting \(known: .*port"),
        ("[runner]\ntoken = 'x'\n", r"\[runner\] token: unknown setting"),
        ("lua = 3\n", r"config: lua: expected a table of settings \(\[lua\]\)"),
        ("server = 'a'\n[client]\nserver = 'b'\n", "server: given both at the top and in"),
        ("server = [\n", "is not valid TOML"),
    ],
)
def test_a_broken_config_file_is_one_clear_error(
    invoke: Invoke, isolated_env: Path, text: str, message: str
) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "config").write_text(text)
    result = invoke(["config", "show"])
    assert result.exit_code in (1, 2)
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.output
