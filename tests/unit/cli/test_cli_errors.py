"""The command tree and its error handling: help with examples, RIVET_* env vars for
every flag, one ``error:`` line (never a traceback) and the exit codes."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import Result

from rivet import __version__
from rivet.cli import check as check_module
from rivet.cli.main import app
from rivet.client import RivetClient
from rivet.settings import GROUPS

Invoke = Callable[..., Result]

NO_ENV = {"help", "version", "install_completion", "show_completion"}
# Flags that are settings: their variable is read by the settings chain, not by typer.
SETTINGS = {s.flags[0]: s for group in GROUPS for s in group.settings() if s.flags}


def walk(command: object, path: str = "rivet") -> Iterator[tuple[str, object]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, f"{path} {name}")


def commands() -> list[tuple[str, object]]:
    return list(walk(typer.main.get_command(app)))


def test_version(invoke: Invoke) -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"rivet {__version__}\n"


def test_help_explains_rivet_and_lists_groups(invoke: Invoke) -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert (
        "Rivet: CI/CD where pipelines are Lua scripts and every command runs in a container."
        in text
    )
    assert "Check and run pipeline files locally, or drive a Rivet server and its runners." in text
    for name in ("check", "run", "init", "pipeline", "job", "runner", "server"):
        assert f" {name} " in text


def test_every_command_has_help_with_an_example() -> None:
    for path, command in commands():
        if getattr(command, "commands", None):
            if path != "rivet runner":  # groups describe themselves; runner also runs
                assert getattr(command, "help", None), path
            continue
        help_text = getattr(command, "help", "") or ""
        assert "Example: rivet " in help_text, f"{path} has no example in its help"


def test_every_flag_has_a_rivet_env_var() -> None:
    for path, command in commands():
        for param in getattr(command, "params", []):
            if param.param_type_name != "option" or param.name in NO_ENV:
                continue
            if param.envvar is None and param.opts[0] in SETTINGS:
                setting = SETTINGS[param.opts[0]]
                assert setting.env and setting.env.startswith("RIVET_"), (path, setting)
                assert f"[env var: {setting.env}]" in param.help, (path, param.help)
                continue
            envvar = param.envvar
            assert isinstance(envvar, str) and envvar.startswith("RIVET_"), (
                f"`{path}` option {param.opts[0]} has no RIVET_* environment variable "
                "(typer.Option(envvar=...)); every flag needs one"
            )


def test_every_command_answers_help(invoke: Invoke) -> None:
    for path, _command in commands():
        result = invoke([*path.split()[1:], "--help"])
        assert result.exit_code == 0, path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_server_is_one_clear_line(invoke: Invoke) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke(["job", "list", "--server", url])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot reach the Rivet server at {url} (is it running? start one with "
        "'rivet up' or 'rivet server'): connection refused\n"
    )


def test_server_from_config_file(invoke: Invoke, isolated_env: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config").write_text(f'server = "{url}"\n')
    result = invoke(["pipeline", "list"])
    assert f"cannot reach the Rivet server at {url} " in result.stderr


def test_invalid_config_file_is_named(invoke: Invoke, isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config").write_text("server = \n")
    result = invoke(["pipeline", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {isolated_env / 'config'} is not valid TOML")


def serve_with(
    monkeypatch: pytest.MonkeyPatch, handler: Callable[[httpx.Request], httpx.Response]
) -> None:
    monkeypatch.setattr(
        "rivet.client.RivetClient",
        functools.partial(RivetClient, transport=httpx.MockTransport(handler)),
    )


def error(status: int, code: str, message: str, details: object = None) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return httpx.Response(status, json=body)


def test_server_errors_show_the_servers_message(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_with(monkeypatch, lambda request: error(404, "not_found", "no job with id 'abcd'"))
    result = invoke(["job", "show", "abcd"])
    assert result.exit_code == 1
    assert result.stderr == "error: no job with id 'abcd'\n"


def test_rejected_inputs_exit_2(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    definition = {"name": "p", "inputs": [], "stages": [{"name": "s"}]}
    pipeline = {
        "id": "ab" * 16,
        "name": "p",
        "version": 1,
        "description": None,
        "definition": definition,
        "source": "",
        "created_at": "2024-01-01T00:00:00Z",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=pipeline)
        sent = json.loads(request.content)
        assert sent["inputs"] == {"a": "1", "b": "x"} and sent["version"] == 1
        return error(422, "invalid_inputs", "invalid inputs: a: unknown input; b: unknown input")

    serve_with(monkeypatch, handler)
    result = invoke(["job", "launch", "p", "-i", "a=1", "-i", "b=x"])
    assert result.exit_code == 2
    assert result.stderr == "error: invalid inputs: a: unknown input; b: unknown input\n"


def test_non_json_error_answers(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_with(monkeypatch, lambda request: httpx.Response(502, text="Bad gateway\n"))
    result = invoke(["runner", "list"])
    assert result.exit_code == 1
    assert result.stderr == "error: the server answered HTTP 502: Bad gateway\n"


def test_value_error_from_user_input_exits_2(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(path: Path) -> str:
        raise ValueError("not a valid thing")

    monkeypatch.setattr(check_module, "read_pipeline_file", boom)
    result = invoke(["check", str(tmp_path / "x.lua")])
    assert result.exit_code == 2
    assert result.stderr == "error: not a valid thing\n"


def test_debug_mode_re_raises(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(path: Path) -> str:
        raise ValueError("not a valid thing")

    monkeypatch.setattr(check_module, "read_pipeline_file", boom)
    monkeypatch.setenv("RIVET_DEBUG", "1")
    with pytest.raises(ValueError, match="not a valid thing"):
        invoke(["check", str(tmp_path / "x.lua")])


def test_ctrl_c_in_a_command_exits_130(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def interrupted(path: Path) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(check_module, "read_pipeline_file", interrupted)
    result = invoke(["check", str(tmp_path / "x.lua")])
    assert result.exit_code == 130


def test_bugs_are_not_hidden(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def bug(path: Path) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(check_module, "read_pipeline_file", bug)
    with pytest.raises(RuntimeError):
        invoke(["check", str(tmp_path / "x.lua")])


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    rivet = Path(sys.executable).with_name("rivet")
    assert rivet.exists(), "the rivet console script is not installed in this venv"
    env = {"PATH": "/usr/bin:/bin", "RIVET_HOME": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(rivet), "job", "list", "--server", f"http://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot reach the Rivet server")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_runner_without_subcommand_starts_the_runner(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from rivet.settings import ClientGroup, RunnerGroup, load_settings

    calls: list[dict[object, object]] = []
    agent = types.ModuleType("rivet.runner.agent")
    agent.run_runner = lambda flags: calls.append(dict(flags)) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rivet.runner.agent", agent)
    monkeypatch.setenv("RIVET_RUNNER_CONCURRENCY", "4")

    args = ["runner", "--server", "http://ci:8420", "--registration-token", "rivet_reg_x"]
    result = invoke([*args, "--tag", "os=linux", "--tag", "arch=arm64", "--name", "r1"])
    assert result.exit_code == 3
    # The flags given, by setting; the variable is the settings chain's to read.
    assert calls == [
        {
            ClientGroup.server: "http://ci:8420",
            RunnerGroup.registration_token: "rivet_reg_x",
            RunnerGroup.name: "r1",
            RunnerGroup.tags: ["os=linux", "arch=arm64"],
        }
    ]
    settings = load_settings(calls[0], runner=True)  # type: ignore[arg-type]
    assert settings.runner.concurrency == 4
    assert settings.runner.tags == {"os": "linux", "arch": "arm64"}
    assert settings.client.server == "http://ci:8420"
    # subcommands do not start it
    monkeypatch.setattr("rivet.client.RivetClient", _empty_client)
    assert invoke(["runner", "list"]).exit_code == 0
    assert len(calls) == 1


def _empty_client(url: str, **kwargs: object) -> RivetClient:
    return RivetClient(url, transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[])))


def test_rivet_up_refuses_a_bad_policy_or_port_before_starting_anything(
    invoke: Invoke, isolated_env: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[container]\ndefault_pids = 'many'\n")
    result = invoke(["up", "--policy", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {bad}: container.default_pids: must be a valid")
    assert result.stderr.count("\n") == 1
    zero = invoke(["up", "--port", "0"])
    assert zero.exit_code == 2
    assert zero.stderr == "error: --port: rivet up needs a port between 1 and 65535, got 0\n"
    assert not isolated_env.exists()  # no home, no log, no child
