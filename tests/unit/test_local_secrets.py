"""``rivet run``'s local secrets: RIVET_SECRET_<NAME> and --secret-file (.env / TOML),
with errors that name the file and line but never a value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rivet.errors import ConfigError
from rivet.local_secrets import local_secrets, read_secret_file, secrets_from_env


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def test_environment_variables_minus_the_server_key() -> None:
    env = {"RIVET_SECRET_TOKEN": "value-1", "RIVET_SECRET_KEY": "server-key", "PATH": "/bin"}
    assert secrets_from_env(env) == {"TOKEN": "value-1"}
    with pytest.raises(ConfigError, match="RIVET_SECRET_bad-name: invalid secret name"):
        secrets_from_env({"RIVET_SECRET_bad-name": "value-1"})


def test_env_style_file(tmp_path: Path) -> None:
    path = private(
        tmp_path / ".env",
        "# comment\n\nA=plain value  \nexport B='single $quoted #x'\n"
        'C="line\\nbreak \\"q\\" back\\\\"\n  D = spaced-value\n',
    )
    warnings: list[str] = []
    assert read_secret_file(path, warnings.append) == {
        "A": "plain value",
        "B": "single $quoted #x",
        "C": 'line\nbreak "q" back\\',
        "D": "spaced-value",
    }
    assert warnings == []


def test_toml_file_top_level_or_secrets_table(tmp_path: Path) -> None:
    top = private(tmp_path / "a.toml", 'TOKEN = "value-1"\n')
    table = private(tmp_path / "b.toml", '[secrets]\nTOKEN = "value-2"\n')
    assert read_secret_file(top, print) == {"TOKEN": "value-1"}
    assert read_secret_file(table, print) == {"TOKEN": "value-2"}
    bad = private(tmp_path / "c.toml", "TOKEN = 12345\n")
    with pytest.raises(ConfigError, match="TOKEN: the value must be a string"):
        read_secret_file(bad, print)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no equals sign hunter2-value\n", ":1: expected NAME=value"),
        ("A='unterminated hunter2-value\n", ":1: the quoted value of A is not closed"),
        ('A="bad \\q hunter2-value"\n', ":1: unknown escape '\\q'"),
        ("A=ab\n", ":1: secret 'A': the value must have at least 4"),
        ("1BAD=hunter2-value\n", ":1: expected NAME=value"),
    ],
)
def test_file_errors_name_file_and_line_not_value(tmp_path: Path, text: str, message: str) -> None:
    path = private(tmp_path / "s.env", text)
    with pytest.raises(ConfigError) as caught:
        read_secret_file(path, print)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_mode_warning_and_file_over_environment(tmp_path: Path) -> None:
    path = tmp_path / "s.env"
    path.write_text("TOKEN=from-file\n")
    os.chmod(path, 0o644)
    warnings: list[str] = []
    found = local_secrets(
        {"RIVET_SECRET_TOKEN": "from-env", "RIVET_SECRET_X": "x-value"}, path, warnings.append
    )
    assert found == {"TOKEN": "from-file", "X": "x-value"}
    assert warnings == [
        f"{path} is readable by group or others (mode 0644); protect it with: chmod 600 {path}"
    ]
    with pytest.raises(ConfigError, match="secret file not found"):
        local_secrets({}, tmp_path / "missing.env", print)
