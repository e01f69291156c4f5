"""LSP stub files for pipeline authors (``rivet init lua``) and their ``.luarc.json``.

The stubs live in ``rivet/lua/stubs/*.lua`` (package data): one ``---@meta`` file per
module of :mod:`rivet.lua.surface` plus ``sandbox.lua`` for the reduced standard
library. :func:`declared_functions` reads them back so tests can prove they declare
exactly the real module surface.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from rivet.lua.surface import DEFINITION_MODULES, RUNTIME_MODULES

__all__ = [
    "LIBRARY_DIR",
    "SANDBOX_STUB",
    "declared_functions",
    "declared_methods",
    "luarc_config",
    "luarc_text",
    "module_names",
    "stub_files",
]

# Where `rivet init lua` puts the stubs, relative to the project directory.
LIBRARY_DIR = ".rivet/lua"
SANDBOX_STUB = "sandbox.lua"
# Standard libraries the sandbox does not provide. `os` is replaced by the reduced
# `os` of sandbox.lua (time, clock, date); `basic` cannot be disabled piecewise, so
# sandbox.lua documents the removed globals (dofile, loadfile, require…) instead.
DISABLED_BUILTINS = ("debug", "io", "os", "package")

_FUNCTION = re.compile(r"^function\s+([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_METHOD = re.compile(r"^function\s+([A-Za-z_]\w*):([A-Za-z_]\w*)\s*\(", re.MULTILINE)


def stub_files() -> dict[str, str]:
    """File name → text of every shipped stub, sorted by name."""
    folder = resources.files("rivet.lua").joinpath("stubs")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".lua")
    }


def declared_functions(text: str) -> dict[str, set[str]]:
    """``function mod.name(`` declarations: module → function names."""
    found: dict[str, set[str]] = {}
    for module, name in _FUNCTION.findall(text):
        found.setdefault(module, set()).add(name)
    return found


def declared_methods(text: str) -> dict[str, set[str]]:
    """``function Class:name(`` declarations: class → method names."""
    found: dict[str, set[str]] = {}
    for cls, name in _METHOD.findall(text):
        found.setdefault(cls, set()).add(name)
    return found


def module_names() -> list[str]:
    return sorted({*RUNTIME_MODULES, *DEFINITION_MODULES})


def luarc_config(library_dir: str = LIBRARY_DIR) -> dict[str, Any]:
    """The ``.luarc.json`` for a directory of pipelines (LuaLS / lua-language-server)."""
    return {
        "$schema": "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
        "runtime": {
            "version": "Lua 5.4",
            "builtin": {name: "disable" for name in DISABLED_BUILTINS},
        },
        "workspace": {"library": [library_dir], "checkThirdParty": False},
        "diagnostics": {"globals": module_names()},
    }


def luarc_text(library_dir: str = LIBRARY_DIR) -> str:
    return json.dumps(luarc_config(library_dir), indent=2) + "\n"
