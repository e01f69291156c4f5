"""``rivet check``: ok lines, warnings, every error line, JSON, missing files, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

GOOD = """
return pipeline.builder()
  :name("good")
  :description("a good pipeline")
  :input("who", { type = "string", default = "world", description = "greetee" })
  :input("jobs", { type = "number", default = 2, options = { 1, 2, 4 } })
  :input("image", { type = "string" })
  :tag("os", "linux")
  :stage({ name = "build", container = "alpine:latest", script = function() end })
  :stage({ name = "test", condition = function() return true end, script = function() end })
  :build()
"""

BAD = """return pipeline.define({
  name = "",
  stages = {
    { name = "a", script = function() end },
    { name = "a", condition = "yes", script = function() end },
  },
})
"""

WITH_PLUGIN = """return pipeline.define({
  name = "plugged", plugins = { "git" },
  stages = { { name = "s", script = function() end } },
})
"""

LuaFile = Callable[[str, str], Path]
Invoke = Callable[..., Result]


def test_valid_file_prints_ok(invoke: Invoke, lua_file: LuaFile) -> None:
    path = lua_file("good.lua", GOOD)
    result = invoke(["check", str(path)])
    assert result.exit_code == 0
    assert result.stdout == f"{path}: ok\n"


def test_every_error_line_is_printed_and_exit_is_1(invoke: Invoke, lua_file: LuaFile) -> None:
    path = lua_file("bad.lua", BAD)
    result = invoke(["check", str(path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"{path}:1: name: must not be empty" in lines
    assert f"{path}:5: stages[2].name: duplicate stage name 'a'" in lines
    assert f"{path}:5: stages[2].condition: expected a function, got string" in lines
    assert "Traceback" not in result.output


def test_warnings_for_unknown_plugins(invoke: Invoke, lua_file: LuaFile) -> None:
    path = lua_file("plugged.lua", WITH_PLUGIN)
    result = invoke(["check", str(path)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: ok"
    assert lines[1].startswith(f"{path}: warning: plugins: plugin 'git' is not known")


def test_several_files_any_error_fails(invoke: Invoke, lua_file: LuaFile, tmp_path: Path) -> None:
    good = lua_file("good.lua", GOOD)
    bad = lua_file("bad.lua", BAD)
    missing = tmp_path / "missing.lua"
    result = invoke(["check", str(good), str(missing), str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{good}: ok"
    assert lines[1] == f"{missing}: no such file"
    assert any(line.startswith(f"{bad}:") for line in lines[2:])


def test_only_good_files_exit_0(invoke: Invoke, lua_file: LuaFile) -> None:
    result = invoke(["check", str(lua_file("a.lua", GOOD)), str(lua_file("b.lua", GOOD))])
    assert result.exit_code == 0
    assert result.stdout.count(": ok\n") == 2


def test_missing_file_and_directory_are_named(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(["check", str(tmp_path / "nope.lua")])
    assert result.exit_code == 1
    assert result.stdout == f"{tmp_path / 'nope.lua'}: no such file\n"
    result = invoke(["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "is a directory" in result.stdout


def test_no_file_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke(["check"])
    assert result.exit_code == 2


def test_json_prints_the_definition(invoke: Invoke, lua_file: LuaFile) -> None:
    path = lua_file("good.lua", GOOD)
    result = invoke(["check", "--json", str(path)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["name"] == "good"
    assert data["description"] == "a good pipeline"
    inputs = {i["name"]: i for i in data["inputs"]}
    assert inputs["who"] == {
        "name": "who",
        "type": "string",
        "description": "greetee",
        "default": "world",
        "options": None,
        "required": False,
    }
    assert inputs["jobs"]["options"] == [1, 2, 4]
    assert inputs["image"]["required"] is True
    assert data["tags"] == [{"key": "os", "value": "linux"}]
    assert data["plugins"] == []
    stages = [(s["name"], s["container"], s["has_condition"]) for s in data["stages"]]
    assert stages == [("build", "alpine:latest", False), ("test", None, True)]


def test_json_for_several_files_is_a_list_with_errors(
    invoke: Invoke, lua_file: LuaFile, tmp_path: Path
) -> None:
    good = lua_file("good.lua", GOOD)
    bad = lua_file("bad.lua", BAD)
    missing = tmp_path / "missing.lua"
    result = invoke(["check", "--json", str(good), str(bad), str(missing)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [d.get("name") for d in data] == ["good", None, None]
    assert data[1]["file"] == str(bad)
    assert f"{bad}:1: name: must not be empty" in data[1]["errors"]
    assert {"path": "name", "message": "must not be empty", "line": 1} in data[1]["problems"]
    assert data[2] == {"file": str(missing), "errors": [f"{missing}: no such file"], "problems": []}


def test_json_error_for_one_file(invoke: Invoke, lua_file: LuaFile) -> None:
    bad = lua_file("bad.lua", BAD)
    result = invoke(["check", "--json", str(bad)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["file"] == str(bad)
    assert len(data["errors"]) == 3


def test_json_warnings_go_to_stderr(invoke: Invoke, lua_file: LuaFile) -> None:
    path = lua_file("plugged.lua", WITH_PLUGIN)
    result = invoke(["check", "--json", str(path)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["plugins"] == ["git"]
    assert "warning: plugins: plugin 'git'" in result.stderr


def test_json_flag_from_environment(
    invoke: Invoke, lua_file: LuaFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVET_JSON", "1")
    result = invoke(["check", str(lua_file("good.lua", GOOD))])
    assert json.loads(result.stdout)["name"] == "good"


# --- line ends: the file's own text, lines as Lua counts them ------------------------------

# Each is one line break to Lua (which takes "\r\n" and "\n\r" as one); Python's
# universal newlines would turn "\n\r" into two and every lone "\r" into "\n".
LINE_ENDS = ["\r\n", "\r", "\n\r", "\n", "\r\n", "\n\r", "\r", "\n\r", "\r"]


def mixed(*lines: str) -> str:
    """``lines`` joined by the line ends above, in turn."""
    out = lines[0]
    for number, line in enumerate(lines[1:]):
        out += LINE_ENDS[number % len(LINE_ENDS)] + line
    return out


def lua_error_line(source: str) -> int:
    """The line that Lua itself (a bare lupa runtime, no Rivet) gives ``source``'s error."""
    import lupa

    runtime = lupa.LuaRuntime()
    run = runtime.eval(
        "function(s) local f = assert(load(s, '=f.lua')); local ok, e = pcall(f); return e end"
    )
    message = str(run(source))
    assert message.startswith("f.lua:"), message
    return int(message.split(":")[1])


@pytest.fixture
def short_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative file names: Lua cuts chunk names of 60 characters or more (LUA_IDSIZE)."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("short_paths")
def test_error_lines_are_luas_whatever_the_line_ends(invoke: Invoke) -> None:
    lines = [f"-- comment {n}" for n in range(1, 10)]
    raising = mixed(*lines, 'error("boom here")', "return 1")
    expected = lua_error_line(raising)
    assert expected == 10  # one break per line end, as listed
    path = Path("raising.lua")
    path.write_bytes(raising.encode())
    checked = invoke(["check", str(path)])
    assert checked.exit_code == 1
    assert checked.stdout == f"{path}:{expected}: boom here\n"
    ran = invoke(["run", str(path)])  # fails at definition time: no container is started
    assert ran.exit_code == 1
    assert f"{path}:{expected}: boom here" in ran.stderr

    # A validation problem on the line of the call: Lua's line for a call it keeps
    # (a local), and the line Rivet finds itself for a tail call (return pipeline.define).
    body = "{ name = '', stages = { { name = 's', script = function() end } } }"
    for last in (f"local p = pipeline.define({body}) return p", f"return pipeline.define({body})"):
        path.write_bytes(mixed(*lines, last).encode())
        assert lua_error_line(mixed(*lines, "error('x')")) == 10
        checked = invoke(["check", str(path)])
        assert checked.stdout == f"{path}:10: name: must not be empty\n", last
        as_json = json.loads(invoke(["check", "--json", str(path)]).stdout)
        assert as_json["problems"][0]["line"] == 10


@pytest.mark.usefixtures("short_paths")
def test_a_line_end_inside_a_long_string_counts_once(invoke: Invoke) -> None:
    """Line ends inside a long string or comment count too, the same way."""
    source = mixed("local s = [[one", "two", "three]]", "--[[ a", "b ]]", "error('late')")
    path = Path("long.lua")
    path.write_bytes(source.encode())
    expected = lua_error_line(source)
    assert expected == 6
    assert invoke(["check", str(path)]).stdout == f"{path}:{expected}: late\n"
