"""The one settings chain (``rivet.settings``): flag > env > config file > default with
the source of every value, the config file layouts, the one server-URL rule, secrets
masked, and each setting and flag declared once (typer and argparse alike)."""

from __future__ import annotations

import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rivet.settings import (
    DEFAULT_SERVER,
    GROUPS,
    ClientGroup,
    CoreGroup,
    JobsGroup,
    LuaGroup,
    RunnerGroup,
    SecretText,
    ServerGroup,
    SettingError,
    Source,
    load_settings,
)
from rivet.settings.flags import (
    RUN_FLAGS,
    RUNNER_FLAGS,
    SERVER_FLAGS,
    UP_FLAGS,
    add_arguments,
    flags_from,
)


def home_env(home: Path, **more: str) -> dict[str, str]:
    return {"RIVET_HOME": str(home), **more}


def test_flag_beats_env_beats_runner_file_beats_config_beats_default(tmp_path: Path) -> None:
    (tmp_path / "config").write_text('server = "http://config:1"\n[runner]\nconcurrency = 5\n')
    runner_file = tmp_path / "runner.toml"
    runner_file.write_text('server = "http://runner-file:2"\n')
    env = home_env(tmp_path)

    def server(
        flags: dict[Any, object], environ: dict[str, str], runner: bool
    ) -> tuple[str, Source]:
        settings = load_settings(flags, environ, runner=runner)
        return settings.client.server, settings.source(ClientGroup.server)

    assert server({}, {**env, "RIVET_HOME": str(tmp_path / "none")}, False) == (
        DEFAULT_SERVER,
        Source("default"),
    )
    assert server({}, env, False) == (
        "http://config:1",
        Source("file", f"{tmp_path}/config: server"),
    )
    assert server({}, env, True) == (
        "http://runner-file:2",
        Source("file", f"{runner_file}: server"),
    )
    assert server({}, {**env, "RIVET_SERVER": "env:3"}, True) == (
        "http://env:3",
        Source("env", "RIVET_SERVER"),
    )
    flagged = {ClientGroup.server: "flag:4"}
    assert server(flagged, {**env, "RIVET_SERVER": "env:3"}, True) == (
        "http://flag:4",
        Source("flag", "--server"),
    )
    # The config file's [runner] table applies below runner.toml, for the runner only.
    settings = load_settings({}, env, runner=True)
    assert settings.runner.concurrency == 5
    assert settings.source(RunnerGroup.concurrency) == Source(
        "file", f"{tmp_path}/config: [runner] concurrency"
    )


def test_home_and_runner_file_choose_the_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config").write_text('[jobs]\ndefault_image = "from-a"\n')
    (tmp_path / "elsewhere.toml").write_text('default_image = "from-elsewhere"\n')
    env = home_env(tmp_path / "a", RIVET_RUNNER_CONFIG=str(tmp_path / "elsewhere.toml"))
    settings = load_settings({}, env, runner=True)
    assert settings.files == [tmp_path / "elsewhere.toml", tmp_path / "a" / "config"]
    assert settings.jobs.default_image == "from-elsewhere"
    assert load_settings({}, env).jobs.default_image == "from-a"  # not a runner: no runner file
    moved = load_settings({CoreGroup.home: tmp_path / "b"}, env)
    assert moved.home == tmp_path / "b" and moved.source(CoreGroup.home) == Source("flag", "--home")
    assert moved.jobs.workspace_root == tmp_path / "b" / "workspaces"
    assert moved.source(JobsGroup.workspace_root) == Source("default", "$RIVET_HOME/workspaces")


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    settings = load_settings({}, home_env(tmp_path, RIVET_PORT="", RIVET_SERVER=""))
    assert settings.server.port == 8420 and settings.client.server == DEFAULT_SERVER


def test_groups_resolve_on_first_use(tmp_path: Path) -> None:
    settings = load_settings({}, home_env(tmp_path, RIVET_PORT="eighty"))
    assert settings.client.server == DEFAULT_SERVER  # a bad server setting troubles no client
    with pytest.raises(SettingError, match=r"^RIVET_PORT: expected a whole number, got 'eighty'$"):
        _ = settings.server


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("ci.example.com", "http://ci.example.com"),
        (" https://ci.example.com:8420/ ", "https://ci.example.com:8420"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        # The API's prefix is the client's to add (issue 14): a trailing /api goes.
        ("http://ci:8420/api", "http://ci:8420"),
        ("ci:8420/api/", "http://ci:8420"),
        ("https://ci/rivet/API//", "https://ci/rivet"),
        ("http://api", "http://api"),  # a host named api stays
        ("http://ci/apidocs", "http://ci/apidocs"),
    ],
)
def test_the_server_url_rule(tmp_path: Path, given: str, url: str) -> None:
    assert load_settings({ClientGroup.server: given}, home_env(tmp_path)).client.server == url


def test_a_bad_server_url_names_where_it_came_from(tmp_path: Path) -> None:
    env = home_env(tmp_path)
    rule = "server URL must start with http:// or https://: ftp://x"
    with pytest.raises(SettingError, match=f"^--server: {rule}$"):
        _ = load_settings({ClientGroup.server: "ftp://x"}, env).client
    with pytest.raises(SettingError, match=f"^RIVET_SERVER: {rule}$"):
        _ = load_settings({}, {**env, "RIVET_SERVER": "ftp://x"}).client
    (tmp_path / "runner.toml").write_text('server = "ftp://x"\n')
    with pytest.raises(SettingError, match=f"^{tmp_path}/runner.toml: server: {rule}$"):
        _ = load_settings({}, env, runner=True).client


def test_the_home_config_layout(tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = home_env(tmp_path)
    config.write_text(
        'admin_token = "top"\n[server]\nport = 9000\nsecret_key = "k"\n[jobs]\npolicy = "p.toml"\n'
    )
    settings = load_settings({}, env)
    assert settings.client.admin_token == SecretText("top")
    assert settings.server.port == 9000
    assert settings.server.secret_key == SecretText("k")
    assert settings.server.admin_token is None  # the client's token is not the server's
    assert settings.jobs.policy == tmp_path / "p.toml"  # relative to the file
    config.write_text('[client]\nserver = "https://c"\n[server]\nhost = "0.0.0.0"\n')
    settings = load_settings({}, env)
    assert (settings.client.server, settings.server.host) == ("https://c", "0.0.0.0")
    for text, group, problem in [
        ("[server]\nprot = 1\n", "client", "[server] prot: unknown setting (known: "),
        ("[jobs]\nworkspace_root = 3\n", "jobs", "[jobs] workspace_root: expected a path, got 3"),
        ("[lua]\nmemory_mib = true\n", "lua", "[lua] memory_mib: expected a number, got true"),
        ('runner = "x"\n', "lua", "runner: expected a table of settings ([runner])"),
        ('admin_token = "a"\n[client]\nadmin_token = "b"\n', "jobs", "admin_token: given both"),
    ]:
        config.write_text(text)
        with pytest.raises(SettingError) as info:
            getattr(load_settings({}, env), group)
        assert str(info.value).startswith(f"{config}: {problem}"), str(info.value)


def test_unknown_top_level_keys_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "config").write_text('server = "http://s"\nsomething_else = 1\n')
    (tmp_path / "runner.toml").write_text('token = "t"\nrunner_id = "r"\nmystery = 2\n')
    settings = load_settings({}, home_env(tmp_path), runner=True)
    assert settings.client.server == "http://s" and settings.runner.token is None


def test_secrets_are_masked_wherever_they_are_shown(tmp_path: Path) -> None:
    env = home_env(
        tmp_path,
        RIVET_ADMIN_TOKEN="tok-123-secret",
        RIVET_DATABASE_URL="postgresql+psycopg://rivet:pw-456-secret@db:5432/rivet",
    )
    settings = load_settings({RunnerGroup.registration_token: " reg-789-secret\n"}, env)
    shown = " ".join(f"{e.shown} {e.source}" for e in settings.entries())
    shown += repr(settings.server) + str(settings.client.admin_token) + repr(settings.runner)
    for secret in ("tok-123-secret", "pw-456-secret", "reg-789-secret"):
        assert secret not in shown
    assert "postgresql+psycopg://rivet:****@db:5432/rivet" in shown
    token = settings.runner.registration_token
    assert token is not None and token.get_secret_value() == "reg-789-secret"  # stripped


def test_replace_keeps_the_rest(tmp_path: Path) -> None:
    settings = load_settings({ServerGroup.port: 1234}, home_env(tmp_path, RIVET_HOST="::1"))
    other = settings.replace({ServerGroup.poll_interval: 0.25})
    assert (other.server.port, other.server.host, other.server.poll_interval) == (1234, "::1", 0.25)


def test_each_setting_is_declared_once_with_its_variable_and_help() -> None:
    settings = [s for group in GROUPS for s in group.settings()]
    paths = [s.path for s in settings]
    assert len(paths) == len(set(paths))
    variables = Counter(s.env for s in settings)
    # The one variable two settings share: the server's admin token is also the one
    # the CLI presents (each side has its own default: generated, or read from it).
    assert {v: n for v, n in variables.items() if n > 1} == {"RIVET_ADMIN_TOKEN": 2}
    for setting in settings:
        assert setting.env and setting.env.startswith("RIVET_"), setting
        assert setting.help and f"[env var: {setting.env}]" in setting.help_text()
    for command in (RUN_FLAGS, RUNNER_FLAGS, SERVER_FLAGS, UP_FLAGS):
        names = [name for s in command for name in s.flags]
        assert names and len(names) == len(set(names)), command
        assert all(s.flags for s in command)
    assert [s.path for s in LuaGroup.settings()] == [
        "lua.memory_mib",
        "lua.definition_seconds",
        "lua.stage_seconds",
    ]


RUNNER_ARGV = [
    "--server", "ci:8420", "-t", "tok", "--registration-token", "reg", "--name", "n1",
    "--tag", "os=linux", "--tag", "arch=x", "--pool", "prod", "--concurrency", "3", "--default-image", "img",
    "--workspace-root", "/ws", "--config", "/etc/rivet/runner.toml", "--policy", "p.toml",
]  # fmt: skip


def test_the_runner_flags_are_the_same_for_typer_and_argparse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rivet.cli.main import app
    from rivet.runner.__main__ import parse_flags

    monkeypatch.setenv("RIVET_HOME", str(tmp_path))
    calls: list[dict[Any, object]] = []
    agent = types.ModuleType("rivet.runner.agent")
    agent.run_runner = lambda flags: calls.append(dict(flags)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rivet.runner.agent", agent)
    result = CliRunner().invoke(app, ["runner", *RUNNER_ARGV], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from_argparse = dict(parse_flags(RUNNER_ARGV))
    assert calls == [from_argparse]
    assert set(from_argparse) == set(RUNNER_FLAGS)  # every flag, nothing else
    resolved = load_settings(from_argparse, {"RIVET_HOME": str(tmp_path)}, runner=True)
    assert resolved.runner.tags == {"os": "linux", "arch": "x"}
    assert resolved.jobs.policy == Path("p.toml") and resolved.runner.concurrency == 3
    assert resolved.runner.pool == "prod"


def test_the_server_flags_are_the_same_for_typer_and_argparse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import argparse

    from rivet.cli import server as server_module
    from rivet.cli.main import app

    argv = ["--host", "::", "--port", "0", "--database-url", "sqlite://", "--home", str(tmp_path)]
    calls: list[dict[Any, object]] = []
    monkeypatch.setattr(server_module, "serve", lambda flags: calls.append(dict(flags)))
    result = CliRunner().invoke(app, ["server", *argv], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert server_module.main(argv) == 0
    assert calls[0] == calls[1]
    parser = argparse.ArgumentParser()
    add_arguments(parser, SERVER_FLAGS)
    assert flags_from(parser.parse_args(argv), SERVER_FLAGS) == calls[0]
    assert calls[0][CoreGroup.home] == tmp_path and calls[0][ServerGroup.port] == 0


def test_python_m_rivet_cli_server_reports_a_bad_setting_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rivet.cli import server as server_module

    monkeypatch.setenv("RIVET_LOG_LEVEL", "loud")
    assert server_module.main(["--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: RIVET_LOG_LEVEL: expected one of critical, error, warning")
    assert err.count("\n") == 1
