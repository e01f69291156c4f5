"""``rivet plugin list`` and the plugin stubs of ``rivet init lua``: built-ins and the
plugins of RIVET_PLUGIN_PATH, with versions; refused plugins listed with the reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Invoke = Callable[..., Result]
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "plugins"


def test_list_shows_built_ins_and_plugin_path_with_versions(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad" / "fs"
    bad.mkdir(parents=True)
    (bad / "plugin.toml").write_text('name = "fs"\nversion = "1"\n')
    (bad / "init.lua").write_text("return {}")
    monkeypatch.setenv("RIVET_PLUGIN_PATH", f"{EXAMPLE}:{tmp_path / 'bad'}")
    result = invoke(["plugin", "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    versions = {p["name"]: (p["version"], p["builtin"]) for p in data["plugins"]}
    assert versions == {"archive": ("1.0.0", True), "greet": ("1.0.0", False)}
    assert "a plugin can never replace one" in data["problems"]["fs"]
    text = invoke(["plugin", "list"]).stdout
    assert "greet" in text and "1.0.0" in text and "not loaded: fs:" in text


def test_init_lua_writes_plugin_stubs(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVET_PLUGIN_PATH", str(EXAMPLE))
    result = invoke(["init", "lua", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    stubs = tmp_path / "p" / ".rivet" / "lua" / "plugins"
    assert sorted(p.name for p in stubs.iterdir()) == ["archive.lua", "greet.lua"]
    assert "function greet.hello(name) end" in (stubs / "greet.lua").read_text()
