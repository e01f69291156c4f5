"""The one environment-name rule, ``[A-Za-z_][A-Za-z0-9_]*``, and every place a name
enters Rivet refusing the same hostile names with an error that names it and where
it came from: ``process.run{ env, secrets }``, secret names (API/CLI rules,
``RIVET_SECRET_<NAME>``, ``--secret-file`` in both formats), the Podman backend's own
check and the child-environment helper."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rivet.child_env import child_env
from rivet.domain.env_names import EnvNameError, check_env_name, is_env_name
from rivet.domain.secret_rules import check_name
from rivet.engine.backends.podman import _check_env
from rivet.engine.modules.process_module.options import parse_options
from rivet.errors import ContainerError, RivetError
from rivet.local_secrets import read_secret_file, secrets_from_env
from rivet.lua.sandbox import Limits, LuaCallError, Sandbox

GOOD = ["A", "_", "_A", "a1", "PATH", "GITHUB_TOKEN", "x" * 128, "CamelCase_9"]
# Globs (podman copies every matching variable of its own environment), splits,
# truncation, flags, blanks, digits first, non-ASCII look-alikes, control characters.
HOSTILE = [
    "", "*", "FOO*", "*TOKEN", "AWS_*", "?", "[A]", "=", "A=B", "=A", "A B", " A", "A ", "\tA",
    "1A", "9", "-e", "--env", "--env=*", "-", "A-B", "A.B", "A/B", "A:B", "A;B", "$A", "A$",
    "é", "ÄWS", "A\u00a0", "\u212a", "ＡＷＳ", "A\u200b", "A\0B", "\0", "A\nB", "A\r", "\x1b[0m",
    "A\n", "PATH\n", "PATH\r", "PATH\0", "PATH\r\n", "\nPATH",  # whole names only
]  # fmt: skip


@pytest.mark.parametrize("name", GOOD)
def test_names_of_letters_digits_and_underscores_pass(name: str) -> None:
    assert is_env_name(name)
    assert check_env_name(name, "here") == name


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_naming_the_name_and_the_place(name: str) -> None:
    assert not is_env_name(name)
    with pytest.raises(EnvNameError) as caught:
        check_env_name(name, "process.run: env")
    message = str(caught.value)
    assert message.startswith("process.run: env: invalid environment variable name ")
    assert repr(name) in message
    assert "\0" not in message and "\n" not in message


@pytest.mark.parametrize("name", [None, 1, 2.5, True, b"A"])
def test_non_strings_are_refused(name: object) -> None:
    assert not is_env_name(name)
    with pytest.raises(EnvNameError, match="invalid environment variable name"):
        check_env_name(name, "here")


def test_a_long_name_is_shown_bounded() -> None:
    with pytest.raises(EnvNameError) as caught:
        check_env_name("-" * 10_000, "here")
    assert len(str(caught.value)) < 300


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(Limits())


def _process_env(sandbox: Sandbox, tmp_path: Path, name: str) -> None:
    parse_options(sandbox.table({1: "true", "env": sandbox.table({name: "v"})}), tmp_path)


def _process_secret(sandbox: Sandbox, tmp_path: Path, name: str) -> None:
    parse_options(sandbox.table({1: "true", "secrets": sandbox.table({name: "s"})}), tmp_path)


def _read_env_file(tmp_path: Path, name: str) -> dict[str, str]:
    path = tmp_path / "s.env"
    path.write_text(f"{name}=value-1\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return read_secret_file(path, print)


def _env_file(tmp_path: Path, name: str) -> None:
    _read_env_file(tmp_path, name)


def _toml_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f"{_toml_key(name)} = 'value-1'\n", encoding="utf-8")
    os.chmod(path, 0o600)
    read_secret_file(path, print)


def _toml_key(name: str) -> str:
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in name)
    return f'"{escaped}"'


ENTRY_POINTS: dict[str, Callable[[Sandbox, Path, str], None]] = {
    "process.run env": _process_env,
    "process.run secrets": _process_secret,
    "secret name (API, CLI)": lambda _s, _p, name: check_name(name) and None,
    "RIVET_SECRET_<NAME>": lambda _s, _p, name: (
        secrets_from_env({f"RIVET_SECRET_{name}": "value-1"}) and None
    ),
    "--secret-file .env": lambda _s, path, name: _env_file(path, name),
    "--secret-file .toml": lambda _s, path, name: _toml_file(path, name),
    "podman backend": lambda _s, _p, name: _check_env(name, "v", "environment"),
    "child environment": lambda _s, _p, name: child_env({name: "v"}, where="test") and None,
}


def _possible(entry: str, name: str) -> bool:
    """Whether ``name`` can be written to that entry point at all: a .env line cannot
    hold a line break or NUL, an environment cannot hold a NUL."""
    if entry == "--secret-file .env":
        return not any(c in name for c in "\n\r\0")
    return not (entry == "RIVET_SECRET_<NAME>" and "\0" in name)


@pytest.mark.parametrize(
    ("entry", "name"),
    [(e, n) for e in ENTRY_POINTS for n in HOSTILE if _possible(e, n)],
)
def test_every_entry_point_refuses_every_hostile_name(
    sandbox: Sandbox, tmp_path: Path, entry: str, name: str
) -> None:
    if entry == "--secret-file .env" and (name.strip() == "A" or name == "A=B"):
        # The line's own syntax: blanks around the name are dropped and the first '='
        # ends it, so these lines set the valid name A.
        assert list(_read_env_file(tmp_path, name)) == ["A"]
        return
    with pytest.raises((RivetError, LuaCallError, ContainerError)):
        ENTRY_POINTS[entry](sandbox, tmp_path, name)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_accepts_an_ordinary_name(
    sandbox: Sandbox, tmp_path: Path, entry: str
) -> None:
    ENTRY_POINTS[entry](sandbox, tmp_path, "DEPLOY_TOKEN_2")


def test_process_run_errors_name_the_option_and_the_variable(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with pytest.raises(
        LuaCallError, match=r"^process.run: env: invalid environment variable name 'A\*'"
    ):
        _process_env(sandbox, tmp_path, "A*")
    with pytest.raises(
        LuaCallError, match=r"^process.run: secrets: invalid environment variable name '-e'"
    ):
        _process_secret(sandbox, tmp_path, "-e")
