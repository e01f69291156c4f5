"""``rivet init lua``: .luarc.json and stubs written, kept, or overwritten with --force."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from rivet.lua.stubs import stub_files
from rivet.lua.surface import DEFINITION_MODULES, RUNTIME_MODULES

Invoke = Callable[..., Result]


def test_writes_luarc_and_one_stub_per_module(invoke: Invoke, tmp_path: Path) -> None:
    project = tmp_path / "project"
    result = invoke(["init", "lua", str(project)])
    assert result.exit_code == 0, result.output
    library = project / ".rivet" / "lua"
    assert sorted(p.name for p in library.glob("*.lua")) == sorted(stub_files())
    assert {"log.lua", "process.lua", "pipeline.lua", "sandbox.lua"} <= set(stub_files())
    for name, text in stub_files().items():
        assert (library / name).read_text() == text
        assert text.startswith("---@meta")
        assert f"written     {library / name}" in result.stdout
    config = json.loads((project / ".luarc.json").read_text())
    assert config["runtime"]["version"] == "Lua 5.4"
    assert config["workspace"]["library"] == [".rivet/lua"]
    assert set(config["diagnostics"]["globals"]) == {*RUNTIME_MODULES, *DEFINITION_MODULES}
    builtin = config["runtime"]["builtin"]
    assert {k for k, v in builtin.items() if v == "disable"} == {"io", "os", "debug", "package"}


def test_defaults_to_the_current_directory(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke(["init", "lua"]).exit_code == 0
    assert (tmp_path / ".luarc.json").is_file()
    assert (tmp_path / ".rivet" / "lua" / "process.lua").is_file()


def test_existing_files_are_kept_without_force(invoke: Invoke, tmp_path: Path) -> None:
    luarc = tmp_path / ".luarc.json"
    luarc.write_text('{"mine": true}\n')
    assert invoke(["init", "lua", str(tmp_path)]).exit_code == 0
    log_stub = tmp_path / ".rivet" / "lua" / "log.lua"
    log_stub.write_text("-- edited\n")

    result = invoke(["init", "lua", str(tmp_path)])
    assert result.exit_code == 0
    assert luarc.read_text() == '{"mine": true}\n'
    assert log_stub.read_text() == "-- edited\n"
    assert f"skipped     {luarc}" in result.stdout
    assert f"skipped     {log_stub}" in result.stdout
    assert f"unchanged   {tmp_path / '.rivet' / 'lua' / 'input.lua'}" in result.stdout
    assert "2 existing file(s) differ and were kept; use --force" in result.stdout

    result = invoke(["init", "lua", str(tmp_path), "--force"])
    assert result.exit_code == 0
    assert f"overwritten {luarc}" in result.stdout
    assert json.loads(luarc.read_text())["runtime"]["version"] == "Lua 5.4"
    assert log_stub.read_text() == stub_files()["log.lua"]


def test_a_file_in_place_of_the_directory_is_an_error(invoke: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = invoke(["init", "lua", str(target)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {target}: is not a directory\n"
