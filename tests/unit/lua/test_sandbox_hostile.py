"""The sandbox battery: one hostile script per removed capability (docs/lua-reference.md, '3. The sandbox').

Each attack runs twice where it makes sense: at definition time (``rivet check``
path, placeholder runtime modules) and inside a stage (the real executor). Each
must fail with a clear error — or find the capability absent — and leave nothing
on the host.

The battery goes on in ``test_sandbox_lifetime.py`` (finalizers, ``__close``, weak
tables, the end of a job, other threads), ``test_sandbox_metatables.py`` (tables read
raw everywhere) and ``test_sandbox_budget.py`` (Lua inside Rivet calls is charged).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from recording import EventLog

from rivet.engine.backends.fake import FakeBackend
from rivet.engine.events import JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.errors import DefinitionError
from rivet.lua.definition import load_definition
from rivet.lua.sandbox import Limits, Sandbox
from rivet.lua.surface import RUNTIME_MODULES

MiB = 1024 * 1024
# A test of one limit must never race another: on a slow or loaded machine a memory
# bomb can take longer than a short CPU budget to fill its cap. So each limit test
# gets its own limit tight and the other one out of reach, and tests of anything else
# run with the (generous) defaults.
CPU_LIMITED = Limits(definition_cpu_seconds=0.5, stage_cpu_seconds=0.5)
MEMORY_LIMITED = Limits(memory_bytes=64 * MiB, definition_cpu_seconds=120, stage_cpu_seconds=120)
ROOMY = Limits()


def at_definition(body: str) -> str:
    return (
        body
        + "\nreturn pipeline.define({ name = 'x', stages = { { name = 's', script = function() end } } })"
    )


def in_stage(body: str) -> str:
    return (
        "return pipeline.define({ name = 'x', stages = { { name = 's', script = function()\n"
        + body
        + "\nend } } })"
    )


def run_stage(tmp_path: Path, body: str, limits: Limits = ROOMY) -> tuple[JobResult, EventLog]:
    executor = Executor(FakeBackend(), ExecutorSettings(workspace_root=tmp_path, limits=limits))
    events = EventLog()
    job = JobSpec(f"hostile-{uuid.uuid4().hex[:8]}", in_stage(body), "evil.lua", {})
    return executor.run(job, events), events


def check_fails(source: str, expected: str, limits: Limits = ROOMY) -> str:
    with pytest.raises(DefinitionError) as info:
        load_definition(source, "evil.lua", limits=limits)
    message = str(info.value)
    assert expected in message, message
    assert "Traceback" not in message
    return message


# Each capability: a script that reports whether it could reach it. The sandbox
# must make every one of these values nil.
ABSENT = {
    "io": "io",
    "os.execute": "os.execute",
    "os.exit": "os.exit",
    "os.remove": "os.remove",
    "os.getenv": "os.getenv",
    "debug": "debug",
    "package": "package",
    "package.loadlib": "(package and package.loadlib)",
    "require": "require",
    "dofile": "dofile",
    "loadfile": "loadfile",
    "string.dump": "string.dump",
    "string.dump via metatable": "getmetatable('').__index.dump",
    "python": "python",
    "_G.python": "_G.python",
    "_ENV.io": "_ENV.io",
}


@pytest.mark.parametrize("name", sorted(ABSENT))
def test_capability_absent_at_definition_time(name: str) -> None:
    check_fails(
        at_definition(f"assert({ABSENT[name]} == nil, 'reached {name}')\nerror('absent')"),
        "evil.lua:2: absent",
    )


@pytest.mark.parametrize("name", sorted(ABSENT))
def test_capability_absent_in_stage(tmp_path: Path, name: str) -> None:
    result, _events = run_stage(tmp_path, f"assert({ABSENT[name]} == nil, 'reached {name}')")
    assert result.status == "succeeded", result.error


def test_calling_io_open_fails_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    result, _ = run_stage(tmp_path, f"io.open({str(target)!r}, 'w'):write('x')")
    assert result.status == "failed"
    assert "attempt to index a nil value (global 'io')" in (result.error or "")
    assert "evil.lua:2:" in (result.error or "")
    assert not target.exists()


def test_os_execute_fails_and_runs_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    message = check_fails(
        at_definition(f"os.execute('touch {target}')"),
        "attempt to call a nil value (field 'execute')",
    )
    assert "evil.lua:1:" in message
    assert not target.exists()


def test_os_exit_does_not_exit(tmp_path: Path) -> None:
    result, _ = run_stage(tmp_path, "os.exit(3)")
    assert result.status == "failed"
    assert "field 'exit'" in (result.error or "")


def test_debug_sethook_unavailable_so_the_budget_hook_stays() -> None:
    check_fails(at_definition("debug.sethook()"), "global 'debug'")


def test_package_loadlib_unavailable() -> None:
    check_fails(at_definition("package.loadlib('libc.so.6', 'system')"), "global 'package'")


def test_require_unavailable() -> None:
    check_fails(at_definition("require('os')"), "global 'require'")


@pytest.mark.parametrize("fn", ["dofile", "loadfile"])
def test_file_loading_unavailable(tmp_path: Path, fn: str) -> None:
    script = tmp_path / "evil2.lua"
    script.write_text("error('ran')")
    check_fails(at_definition(f"{fn}({str(script)!r})"), f"global '{fn}'")


def test_string_dump_and_binary_chunks_refused() -> None:
    # Even a binary chunk made elsewhere is refused by load.
    source = at_definition(
        "local fn, err = load(string.char(27) .. 'LuaT\\0\\25\\147\\r\\n\\26\\n')\n"
        "assert(fn == nil)\n"
        "error('load said: ' .. err)"
    )
    check_fails(source, "attempt to load a binary chunk")
    check_fails(at_definition("string.dump(function() end)"), "field 'dump'")
    check_fails(at_definition("('').dump(print)"), "field 'dump'")


def test_load_with_binary_mode_refused_and_env_defaults_to_sandbox() -> None:
    check_fails(
        at_definition("local f, e = load('return 1', 'x', 'b')\nerror(tostring(e))"),
        "only text chunks are allowed",
    )
    check_fails(at_definition("error(tostring(load('return io')()))"), "evil.lua:1: nil")


def test_collectgarbage_only_count() -> None:
    check_fails(at_definition("collectgarbage('stop')"), "only 'count' is allowed")
    # count works
    load_definition(at_definition("assert(type(collectgarbage('count')) == 'number')"), "ok.lua")


PYTHON_ATTRIBUTES = ["__class__", "__globals__", "__dict__", "__init__", "__call__", "func_globals"]
# Every function of every runtime module, from the single list the stubs are tested against.
MODULE_FUNCTIONS = ["print"] + [
    f"{module}.{name}" for module, names in sorted(RUNTIME_MODULES.items()) for name in names
]


@pytest.mark.parametrize("fn", MODULE_FUNCTIONS)
def test_no_python_attributes_through_module_functions(tmp_path: Path, fn: str) -> None:
    module = fn.split(".")[0]
    attrs = ", ".join(repr(a) for a in PYTHON_ATTRIBUTES)
    result, _ = run_stage(
        tmp_path,
        f"assert(type({fn}) == 'function', 'not a Lua function: ' .. type({fn}))\n"
        + (f"assert(type({module}) == 'table')\n" if module != "print" else "")
        + f"for _, attr in ipairs({{ {attrs} }}) do\n"
        f"  local ok, err = pcall(function() return {fn}[attr] end)\n"
        f"  assert(not ok, 'reached ' .. attr)\n"
        f"  assert(err:find('attempt to index a function value'), err)\n"
        f"end",
    )
    assert result.status == "succeeded", result.error


@pytest.mark.parametrize(
    "fn", ["pipeline.define", "pipeline.builder", "pipeline.input", "pipeline.tag"]
)
def test_no_python_attributes_through_definition_api(fn: str) -> None:
    check_fails(at_definition(f"local _ = {fn}.__globals__"), "attempt to index a function value")


def test_values_handed_to_lua_are_plain_tables(tmp_path: Path) -> None:
    result, events = run_stage(
        tmp_path,
        "local all = input.all()\n"
        "assert(type(all) == 'table')\n"
        "assert(getmetatable(all) == nil)\n"
        "local ok, err = pcall(output.set, 'x', function() end)\n"
        "assert(not ok)\n"
        "log.info(err)",
    )
    assert result.status == "succeeded", result.error
    assert any("must be a string, number or boolean" in m for m in events.messages())


def test_error_object_from_python_is_a_string(tmp_path: Path) -> None:
    result, _ = run_stage(
        tmp_path,
        "local ok, err = pcall(function() local v = input.require('nope'); return v end)\n"
        "assert(type(err) == 'string', type(err))\n"
        "error(err, 0)",
    )
    assert result.status == "failed"
    assert "evil.lua:2: input.require: input 'nope' has no value" in (result.error or "")


# --- CPU and memory ---------------------------------------------------------------------

LOOPS = {
    "plain": "while true do end",
    "pcall": "local function f() while true do end end\nwhile true do pcall(f) end",
    "xpcall": "while true do xpcall(function() while true do end end, function(e) return e end) end",
    "coroutine": "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
    "coroutine.wrap": "coroutine.wrap(function() while true do end end)()",
    "load": "load('while true do end')()",
    "recursion in pcall": "local function f() pcall(f) while true do end end\nf()",
}


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_endless_loop_at_definition_time(name: str) -> None:
    check_fails(at_definition(LOOPS[name]), "Lua CPU budget of 0.5 s exceeded", CPU_LIMITED)


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_endless_loop_in_stage(tmp_path: Path, name: str) -> None:
    result, _events = run_stage(tmp_path, LOOPS[name], CPU_LIMITED)
    assert result.status == "failed"
    assert "stage 's': Lua CPU budget of 0.5 s exceeded" in (result.error or "")
    assert result.stages[0].status == "failed"


BOMBS = {
    "table": "local t = {} while true do t[#t + 1] = string.rep('x', 1024) .. #t end",
    "string": "local s = 'x' while true do s = s .. s end",
    "rep": "local s = string.rep('x', 2^27)",
    "pcall": "local t = {} while true do pcall(function() t[#t + 1] = string.rep('y', 4096) .. #t end) end",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_memory_bomb_at_definition_time(name: str) -> None:
    check_fails(at_definition(BOMBS[name]), "memory limit of 64 MiB exceeded", MEMORY_LIMITED)


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_memory_bomb_in_stage(tmp_path: Path, name: str) -> None:
    result, _ = run_stage(tmp_path, BOMBS[name], MEMORY_LIMITED)
    assert result.status == "failed"
    assert "memory limit of 64 MiB exceeded" in (result.error or "")


def test_budget_counts_lua_not_waiting(tmp_path: Path) -> None:
    # A callback that blocks (here: a Python sleep standing in for process waiting)
    # does not use the Lua CPU budget.
    import time

    sandbox = Sandbox(Limits(stage_cpu_seconds=0.2))
    sandbox.env["wait"] = sandbox.expose(lambda: time.sleep(0.1), "wait")
    fn = sandbox.load("for i = 1, 5 do wait() end return 'done'", "w.lua")
    assert sandbox.call(fn, budget=0.2, label="stage 'w'") == "done"


def test_workspace_removed_after_failing_job(tmp_path: Path) -> None:
    run_stage(tmp_path, "error('x')")
    assert list(tmp_path.iterdir()) == []


def test_module_functions_follow_lua_argument_rules(tmp_path: Path) -> None:
    # Missing arguments are nil and an extra number is ignored, as for Lua functions:
    # gsub returns two values, which must not break output.set (an extra table or
    # string is refused: tests/unit/engine/test_extra_arguments.py).
    result, _ = run_stage(
        tmp_path,
        "output.set('trimmed', ('x  '):gsub('%s+$', ''))\n"
        "assert(output.get('missing') == nil)\n"
        "log.info()",
    )
    assert result.status == "succeeded", result.error
    assert result.outputs == {"trimmed": "x"}


def test_limits_are_configurable_from_the_environment_and_the_config_file(
    tmp_path: Path,
) -> None:
    from rivet.errors import ConfigError

    home = {"RIVET_HOME": str(tmp_path)}
    limits = Limits.from_env(
        {
            **home,
            "RIVET_LUA_MEMORY_MIB": "32",
            "RIVET_LUA_DEFINITION_SECONDS": "1.5",
            "RIVET_LUA_STAGE_SECONDS": "7",
        }
    )
    assert limits == Limits(memory_bytes=32 * MiB, definition_cpu_seconds=1.5, stage_cpu_seconds=7)
    assert Limits.from_env(home) == Limits()
    with pytest.raises(ConfigError, match="RIVET_LUA_STAGE_SECONDS: expected a number, got 'lots'"):
        Limits.from_env({**home, "RIVET_LUA_STAGE_SECONDS": "lots"})
    with pytest.raises(ConfigError, match="must be greater than 0"):
        Limits.from_env({**home, "RIVET_LUA_MEMORY_MIB": "0"})
    # The same settings through $RIVET_HOME/config, below the variables.
    (tmp_path / "config").write_text("[lua]\nmemory_mib = 64\nstage_seconds = 2\n")
    from_file = Limits.from_env(home)
    assert from_file == Limits(memory_bytes=64 * MiB, stage_cpu_seconds=2)
    assert Limits.from_env({**home, "RIVET_LUA_MEMORY_MIB": "32"}).memory_bytes == 32 * MiB
    (tmp_path / "config").write_text("[lua]\nstage_seconds = -1\n")
    with pytest.raises(ConfigError, match=r"config: \[lua\] stage_seconds: must be greater than 0"):
        Limits.from_env(home)


def test_binary_strings_never_escape_as_python_errors(tmp_path: Path) -> None:
    result, events = run_stage(
        tmp_path,
        'log.info("bin\\255ary")\n'
        'print("a\\255", "b")\n'
        'local ok, err = pcall(function() local v = output.set("k", "\\255"); return v end)\n'
        "assert(not ok and type(err) == 'string', tostring(err))\n"
        "log.warning(err)\n"
        'local ok2, err2 = pcall(function() local v = process.run({ "echo", "\\255" }); return v end)\n'
        "assert(not ok2 and type(err2) == 'string', tostring(err2))\n"
        "log.warning(err2)\n",
    )
    assert result.status == "succeeded", result.error
    messages = events.messages()
    assert "bin\ufffdary" in messages
    assert "a\ufffd\tb" in messages
    assert "evil.lua:4: output.set: argument 2 is not valid UTF-8 text" in messages
    assert "evil.lua:7: process.run: text is not valid UTF-8" in messages
