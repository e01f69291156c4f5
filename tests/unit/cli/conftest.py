"""Fixtures for CLI unit tests: an in-process runner of the real typer app with an
isolated ``RIVET_HOME``, and pipeline files in a temp directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from rivet.cli.main import app

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private RIVET_HOME and no RIVET_* settings or colour from the outer shell."""
    import os

    for name in list(os.environ):
        if name.startswith("RIVET_") or name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
            monkeypatch.delenv(name)
    home = tmp_path / "rivet-home"
    monkeypatch.setenv("RIVET_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    return home


@pytest.fixture
def invoke() -> Invoke:
    def run(args: Sequence[str], input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def lua_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
