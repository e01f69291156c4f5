"""Child processes get an environment built from scratch: nothing of the parent's,
whatever it holds, reaches podman or the children of ``rivet up`` unless named in an
explicit allow-list (and the runner's allow-list holds no server credential)."""

from __future__ import annotations

import os
import pwd
import uuid
from pathlib import Path

import pytest

from rivet.child_env import SAFE_PATH, child_env, resolve_program
from rivet.errors import RivetError
from rivet.settings import LuaGroup, ServerGroup
from rivet.supervisor.local import RUNNER_PASSED_ENV, runner_env, server_env

LUA_LIMIT_VARIABLES = [s.env for s in LuaGroup.settings()]

SERVER_CREDENTIALS = ["RIVET_ADMIN_TOKEN", "RIVET_SECRET_KEY", "RIVET_DATABASE_URL"]
RUNNER_CREDENTIALS = ["RIVET_RUNNER_TOKEN", "RIVET_REGISTRATION_TOKEN", "RIVET_SERVER"]
OTHERS = [
    "HOME", "PATH", "LANG", "LC_ALL", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "TMPDIR", "USER",
    "CONTAINERS_CONF", "CONTAINER_HOST", "HTTP_PROXY", "https_proxy", "LD_PRELOAD",
    "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "RIVET_SECRET_TOKEN", "RIVET_RUNNER_CONFIG",
    "PYTHONPATH", "SSH_AUTH_SOCK", "odd-name", "with space", "ÜNICODE", "*",
]  # fmt: skip


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A unique value in every variable of this process's environment, and more."""
    values: dict[str, str] = {}
    for name in {*os.environ, *SERVER_CREDENTIALS, *RUNNER_CREDENTIALS, *OTHERS}:
        values[name] = f"cnry{uuid.uuid4().hex}"
        monkeypatch.setenv(name, values[name])
    return values


def leaked(env: dict[str, str], canaries: dict[str, str]) -> list[str]:
    return [n for n, v in canaries.items() if any(v in x for x in (*env, *env.values()))]


def test_the_base_environment_holds_nothing_of_the_parents(canaries: dict[str, str]) -> None:
    env = child_env(where="test")
    assert leaked(env, canaries) == []
    assert env["PATH"] == SAFE_PATH
    assert env["HOME"] == pwd.getpwuid(os.getuid()).pw_dir  # the account's, not $HOME
    assert env["LANG"] == "C.UTF-8"
    assert set(env) <= {"PATH", "HOME", "LANG", "XDG_RUNTIME_DIR"}
    if os.getuid() == 0:
        assert "XDG_RUNTIME_DIR" not in env


def test_explicit_variables_are_added_and_checked() -> None:
    assert child_env({"A_1": "x y", "PATH": "/p"}, where="t")["A_1"] == "x y"
    assert child_env({"PATH": "/p"}, where="t")["PATH"] == "/p"
    with pytest.raises(RivetError, match=r"^rivet up \(runner\): invalid environment variable"):
        child_env({"A*": "x"}, where="rivet up (runner)")
    with pytest.raises(RivetError, match="the value of A contains a NUL"):
        child_env({"A": "x\0y"}, where="t")


def test_programs_are_found_with_the_callers_path_then_the_safe_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_program("mytool") == str(tool)
    assert resolve_program("sh").startswith("/")  # not on PATH: found in SAFE_PATH
    assert resolve_program("no-such-tool-here") == "no-such-tool-here"


def test_the_runner_of_rivet_up_gets_no_server_credential(
    canaries: dict[str, str], tmp_path: Path
) -> None:
    env = runner_env(tmp_path, "rivet_reg_fresh")
    assert env["RIVET_HOME"] == str(tmp_path)
    assert env["RIVET_REGISTRATION_TOKEN"] == "rivet_reg_fresh"  # made for it, not inherited
    for name in [*SERVER_CREDENTIALS, "RIVET_RUNNER_TOKEN", "RIVET_SERVER"]:
        assert canaries[name] not in env.values(), name
    passed = {n for n in canaries if canaries[n] in env.values()}
    assert passed == set(RUNNER_PASSED_ENV) & set(canaries)
    assert not any(n.startswith(("RIVET_ADMIN", "RIVET_SECRET", "RIVET_DATABASE")) for n in passed)
    assert "RIVET_REGISTRATION_TOKEN" not in runner_env(tmp_path, None)


def test_the_server_of_rivet_up_gets_its_settings_and_no_runner_credential(
    canaries: dict[str, str], tmp_path: Path
) -> None:
    env = server_env(tmp_path)
    assert env["RIVET_ADMIN_TOKEN"] == canaries["RIVET_ADMIN_TOKEN"]
    assert env["RIVET_SECRET_KEY"] == canaries["RIVET_SECRET_KEY"]
    for name in [*RUNNER_CREDENTIALS, "RIVET_DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "PATH"]:
        assert canaries[name] not in env.values(), name
    settings = {s.env for s in ServerGroup.settings()}
    passed = {n for n in canaries if canaries[n] in env.values()}
    assert passed <= settings | set(LUA_LIMIT_VARIABLES)


def test_the_lua_limit_names_are_the_ones_the_sandbox_reads(tmp_path: Path) -> None:
    from rivet.errors import ConfigError
    from rivet.lua.sandbox import Limits

    for name in LUA_LIMIT_VARIABLES:
        assert name is not None
        with pytest.raises(ConfigError, match=name):
            Limits.from_env({"RIVET_HOME": str(tmp_path), name: "not a number"})


def test_rivet_up_passes_the_opentelemetry_variables_to_both_children(tmp_path: Path) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-token=abc",
        "OTEL_UNRELATED_THING": "no",
    }
    for env in (server_env(tmp_path, environ), runner_env(tmp_path, None, environ)):
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
        assert env["OTEL_EXPORTER_OTLP_HEADERS"] == "x-token=abc"
        assert "OTEL_UNRELATED_THING" not in env
