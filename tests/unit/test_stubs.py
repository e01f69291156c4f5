"""The LSP stubs declare exactly the module surface, and the surface is exactly what the
runtime installs: so editor completion can never drift from what pipelines can call."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lupa import lua54
from recording import EventLog

from rivet.engine.backends.fake import FakeBackend
from rivet.engine.context import JobContext
from rivet.engine.events import CancelToken
from rivet.engine.modules import INSTALLERS, install_all
from rivet.lua.definition import install_definition_placeholders, load_pipeline
from rivet.lua.sandbox import Sandbox
from rivet.lua.stubs import (
    SANDBOX_STUB,
    declared_functions,
    declared_methods,
    luarc_config,
    stub_files,
)
from rivet.lua.surface import DEFINITION_MODULES, RUNTIME_MODULES, SANDBOX_GLOBALS

TINY = 'return pipeline.define({ name = "tiny", stages = { { name = "s", script = function() end } } })'
SURFACE = {name: set(fns) for name, fns in {**RUNTIME_MODULES, **DEFINITION_MODULES}.items()}


def lua_keys(table: Any) -> set[str]:
    return {str(k) for k in table}


def module_stubs() -> dict[str, str]:
    return {name: text for name, text in stub_files().items() if name != SANDBOX_STUB}


# --- stubs == surface -------------------------------------------------------------------


def test_one_stub_per_module_plus_the_sandbox() -> None:
    assert set(stub_files()) == {f"{m}.lua" for m in SURFACE} | {SANDBOX_STUB}


def test_stubs_declare_exactly_the_surface() -> None:
    declared: dict[str, set[str]] = {}
    for name, text in module_stubs().items():
        found = declared_functions(text)
        assert set(found) == {name.removesuffix(".lua")}, f"{name} declares other modules"
        declared.update(found)
    assert declared == SURFACE


def test_every_stub_is_meta_with_annotations() -> None:
    for name, text in stub_files().items():
        module = name.removesuffix(".lua")
        assert text.startswith(f"---@meta {module}\n"), name
        table = "os" if name == SANDBOX_STUB else module
        assert f"\n{table} = {{}}\n" in text, f"{name} does not declare the global table"
        assert "---@class " in text
    for name, text in stub_files().items():
        lines = text.splitlines()
        for number, line in enumerate(lines):
            if not line.startswith("function "):
                continue
            start = number
            while start > 0 and lines[start - 1].startswith("---"):
                start -= 1
            doc = lines[start:number]
            assert doc and not doc[0].startswith("---@"), f"{name}: {line} has no description"
            assert any(d.startswith("---@") for d in doc) or "()" in line, (name, line)


DOCUMENTED_PROCESS_OPTIONS = {
    "cmd",
    "args",
    "cwd",
    "env",
    "capture_stdout",
    "capture_stderr",
    "stdout_level",
    "stderr_level",
    "timeout",
    "check",
}


def test_process_options_match_the_reference() -> None:
    from rivet.engine.modules.process_module.options import OPTIONS

    # The runtime accepts every option of docs/lua-reference.md's process.run table, and
    # the stub declares exactly what the runtime accepts (those plus later ones such as secrets).
    assert set(OPTIONS) >= DOCUMENTED_PROCESS_OPTIONS
    text = stub_files()["process.lua"]
    fields = {
        "ProcessRunOptions": set(OPTIONS),
        "ProcessResult": {"exit_code", "stdout", "stderr", "timed_out"},  # what process.run returns
    }
    for cls, expected in fields.items():
        assert class_fields(text, cls) == expected


def test_definition_classes_match_the_validator() -> None:
    from rivet.lua.definition import INPUT_FIELDS, PIPELINE_FIELDS, STAGE_FIELDS

    text = stub_files()["pipeline.lua"]
    assert class_fields(text, "InputDefinition") == set(INPUT_FIELDS)
    assert class_fields(text, "StageDefinition") == set(STAGE_FIELDS)
    assert class_fields(text, "PipelineDefinition") == set(PIPELINE_FIELDS)


def class_fields(text: str, cls: str) -> set[str]:
    block = text.split(f"---@class {cls}\n", 1)[1].split("\n\n", 1)[0]
    return {
        line.split()[1].rstrip("?")
        for line in block.splitlines()
        if line.startswith("---@field ") and not line.startswith("---@field [")
    }


def test_builder_methods_are_exactly_the_real_builders() -> None:
    sandbox = Sandbox()
    load_pipeline(TINY, "tiny.lua", sandbox=sandbox)
    builder = sandbox.env["pipeline"]["builder"]()
    index = sandbox.eval_lua("return getmetatable")(builder)["__index"]
    real = {k for k in lua_keys(index) if not k.startswith("__")}
    assert declared_methods(stub_files()["pipeline.lua"]) == {"PipelineBuilder": real}
    assert real == {"name", "description", "input", "tag", "plugin", "stage", "build"}


def test_sandbox_stub_declares_exactly_the_reduced_os() -> None:
    sandbox = Sandbox()
    assert declared_functions(stub_files()[SANDBOX_STUB]) == {"os": lua_keys(sandbox.env["os"])}
    assert lua_keys(sandbox.env["os"]) == {"time", "clock", "date"}


def test_luarc_names_every_module_and_disables_missing_libraries() -> None:
    config = luarc_config()
    assert set(config["diagnostics"]["globals"]) == set(SURFACE)
    assert config["runtime"]["builtin"] == {
        "debug": "disable",
        "io": "disable",
        "os": "disable",
        "package": "disable",
    }
    assert not {"io", "debug", "package"} & set(SANDBOX_GLOBALS)


# --- surface == runtime --------------------------------------------------------------------


def test_definition_api_equals_the_surface() -> None:
    sandbox = Sandbox()
    load_pipeline(TINY, "tiny.lua", sandbox=sandbox)
    assert {"pipeline": lua_keys(sandbox.env["pipeline"])} == {
        k: set(v) for k, v in DEFINITION_MODULES.items()
    }


def test_definition_time_placeholders_equal_the_surface() -> None:
    sandbox = Sandbox()
    install_definition_placeholders(sandbox)
    assert {m: lua_keys(sandbox.env[m]) for m in RUNTIME_MODULES} == {
        m: set(f) for m, f in RUNTIME_MODULES.items()
    }


def test_executor_module_registry_equals_the_surface(tmp_path: Path) -> None:
    """What the executor installs into a job's sandbox (its INSTALLERS registry, via
    ``install_all``) is exactly ``RUNTIME_MODULES``."""
    assert set(INSTALLERS) == set(RUNTIME_MODULES)
    sandbox = Sandbox()
    ctx = JobContext(
        job_id="stub-test",
        events=EventLog(),
        backend=FakeBackend(),
        workspace=tmp_path,
        default_image="alpine:latest",
        inputs={},
        cancel=CancelToken(),
    )
    install_all(sandbox, ctx)
    installed = {m: lua_keys(sandbox.env[m]) for m in INSTALLERS}
    assert installed == {m: set(f) for m, f in RUNTIME_MODULES.items()}
    # and the definition API joins them in the same sandbox, as in a real job
    load_pipeline(TINY, "tiny.lua", sandbox=sandbox)
    assert lua_keys(sandbox.env["pipeline"]) == set(DEFINITION_MODULES["pipeline"])


def test_globals_besides_modules_are_the_sandbox_globals(tmp_path: Path) -> None:
    sandbox = Sandbox()
    ctx = JobContext(
        job_id="stub-test",
        events=EventLog(),
        backend=FakeBackend(),
        workspace=tmp_path,
        default_image="alpine:latest",
        inputs={},
        cancel=CancelToken(),
    )
    install_all(sandbox, ctx)
    load_pipeline(TINY, "tiny.lua", sandbox=sandbox)
    assert lua_keys(sandbox.env) - set(SURFACE) == set(SANDBOX_GLOBALS)


# --- the stub files are valid Lua --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(stub_files()))
def test_stub_compiles_as_lua_54(name: str) -> None:
    lua54.LuaRuntime().compile(stub_files()[name])  # raises LuaSyntaxError


def test_luacheck_is_clean(tmp_path: Path) -> None:
    luacheck = shutil.which("luacheck")
    if luacheck is None:
        pytest.skip("luacheck is not installed (Debian package lua-check)")
    for name, text in stub_files().items():
        (tmp_path / name).write_text(text)
    proc = subprocess.run(
        [
            luacheck,
            "--no-config",
            "--no-color",
            "--std",
            "lua54",
            "--globals",
            *SURFACE,
            "os",
            "--no-unused-args",
            "--no-max-line-length",
            *sorted(str(p) for p in tmp_path.glob("*.lua")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
