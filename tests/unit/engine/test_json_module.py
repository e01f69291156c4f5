"""json.encode / json.decode: the documented mapping and every refusal, with its place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recording import EventLog

from rivet.engine.backends.fake import FakeBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken
from rivet.engine.modules import json_module, output_module
from rivet.errors import LuaError
from rivet.lua.sandbox import Sandbox


class Lua:
    def __init__(self, tmp_path: Path) -> None:
        self.sandbox = Sandbox()
        self.ctx = JobContext(
            job_id="json-test",
            events=EventLog(),
            backend=FakeBackend(),
            workspace=tmp_path,
            default_image="alpine:latest",
            inputs={},
            cancel=CancelToken(),
        )
        json_module.install(self.sandbox, self.ctx)
        output_module.install(self.sandbox, self.ctx)
        self.ctx.phase = Phase.RUN

    def run(self, code: str) -> Any:
        fn = self.sandbox.load(code, "t.lua")
        return self.sandbox.call(fn, budget=10, label="stage 's'")

    def error(self, code: str) -> str:
        with pytest.raises(LuaError) as caught:
            self.run(code)
        return str(caught.value)


@pytest.fixture
def lua(tmp_path: Path) -> Lua:
    return Lua(tmp_path)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("{ 1, 2, 3 }", "[1,2,3]"),
        ("{ b = 1, a = { true, false } }", '{"a":[true,false],"b":1}'),  # sorted keys
        ("{}", "[]"),  # documented: an unmarked empty table is an array
        ("json.object()", "{}"),
        ("json.object({})", "{}"),
        ("json.array()", "[]"),
        ("json.object({ [1] = 'a', [2] = 'b', x = 1 })", '{"1":"a","2":"b","x":1}'),
        ("{ 1, json.null, 3 }", "[1,null,3]"),
        ("{ a = json.null }", '{"a":null}'),
        ("json.null", "null"),
        ("nil", "null"),
        ("3", "3"),
        ("3.0", "3.0"),
        ("3.5", "3.5"),
        ("-0.0", "-0.0"),
        ("0.1", "0.1"),
        ("1e300", "1e+300"),
        ("math.maxinteger", "9223372036854775807"),
        ("math.mininteger", "-9223372036854775808"),
        ("'a\"b\\\\c\\n\\0é'", '"a\\"b\\\\c\\n\\u0000é"'),
        ("{ ['with space'] = 1 }", '{"with space":1}'),
    ],
)
def test_encode(lua: Lua, expr: str, expected: str) -> None:
    assert lua.run(f"return json.encode({expr})") == expected


def test_encode_indent(lua: Lua) -> None:
    assert lua.run("return json.encode({ a = { 1 } }, { indent = 2 })") == (
        '{\n  "a": [\n    1\n  ]\n}'
    )
    assert "unknown option 'pretty'" in lua.error("json.encode({}, { pretty = true })")
    assert "option 'indent' must be an integer from 0 to 16" in lua.error(
        "json.encode({}, { indent = 'x' })"
    )


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            "{ 1, 2, x = 3 }",
            "json.encode: $ mixes array items with the key 'x'; use json.object(t)",
        ),
        ("{ [1] = 1, [3] = 3 }", "json.encode: $ has the integer key 3 outside the sequence 1..n"),
        ("{ a = { [2] = 1 } }", "json.encode: $.a has the integer key 2 outside the sequence"),
        ("{ [1.5] = 1 }", "json.encode: $ has the key 1.5; JSON object keys are strings"),
        ("{ [true] = 1 }", "json.encode: $ has the key true; JSON object keys are strings"),
        (
            "{ x = { [{}] = 1 } }",
            "json.encode: $.x has the key table; JSON object keys are strings",
        ),
        ("{ a = { 1, 0/0 } }", "json.encode: $.a[2] is NaN, which JSON cannot represent"),
        ("{ v = math.huge }", "json.encode: $.v is infinite, which JSON cannot represent"),
        ("{ v = -math.huge }", "json.encode: $.v is infinite"),
        ("{ f = function() end }", "json.encode: $.f is a function, which JSON cannot encode"),
        ("{ ['a b'] = { function() end } }", 'json.encode: $["a b"][1] is a function'),
        ("'\\255'", "json.encode: the string is not valid UTF-8 (JSON text must be)"),
        ("{ a = { 'ok', '\\255' } }", "json.encode: a string in $.a is not valid UTF-8"),
        ("json.array({ x = 1 })", "json.encode: $ is marked json.array but has the key 'x'"),
        ("json.array({ [2] = 1 })", "json.encode: $ is marked json.array but is not a sequence"),
        ("json.object({ [1.5] = 1 })", "json.encode: $ has the key 1.5"),
    ],
)
def test_encode_refusals_name_the_place(lua: Lua, expr: str, expected: str) -> None:
    message = lua.error(f"json.encode({expr})")
    assert message.startswith("t.lua:1: "), message
    assert expected in message


def test_cycles_and_depth_are_errors_but_shared_tables_are_fine(lua: Lua) -> None:
    assert "json.encode: $.a.b refers back to a table that contains it (a cycle)" in lua.error(
        "local t = { a = { } }; t.a.b = t; json.encode(t)"
    )
    assert "json.encode: $[1] refers back" in lua.error("local t = {}; t[1] = t; json.encode(t)")
    assert lua.run("local s = { 1 }; return json.encode({ s, s, { s } })") == "[[1],[1],[[1]]]"
    deep = "local t = {}; local c = t; for i = 1, 300 do c[1] = {}; c = c[1] end; json.encode(t)"
    assert "is nested more than 200 levels deep" in lua.error(deep)
    ok = "local t = {}; local c = t; for i = 1, 150 do c[1] = {}; c = c[1] end; return json.encode(t)"
    assert lua.run(ok) == "[" * 151 + "]" * 151


def test_decode_values_and_types(lua: Lua) -> None:
    lua.run(
        r"""
        local d = json.decode([[{"i": 3, "f": 3.0, "e": 1e2, "big": 123456789012345678901234,
          "s": "\u00e9\u0000x", "t": true, "n": null, "a": [1, null, 3], "o": {}, "l": []}]])
        assert(math.type(d.i) == "integer" and d.i == 3)
        assert(math.type(d.f) == "float" and d.f == 3.0)
        assert(math.type(d.e) == "float" and d.e == 100)
        assert(math.type(d.big) == "float")
        assert(d.s == "é\0x" and #d.s == 4)
        assert(d.t == true)
        assert(d.n == json.null and d.n ~= nil)
        assert(#d.a == 3 and d.a[2] == json.null)
        assert(next(d.o) == nil and next(d.l) == nil)
        assert(json.decode("null") == json.null)
        assert(json.decode(" 42 ") == 42)
        assert(json.decode('"x"') == "x")
        assert(tostring(json.null) == "json.null")
        """
    )


def test_decode_then_encode_gives_the_same_json(lua: Lua) -> None:
    text = '{"a":[1,null,{}],"b":{},"c":[],"d":3.0,"e":"\\u0000é","f":{"g":[[],[{}]]}}'
    assert lua.run(f"return json.encode(json.decode([==[{text}]==]))") == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'[1,'", "json.decode: Expecting value at line 1, column 4"),
        ("'{\"a\" 1}'", "json.decode: Expecting ':' delimiter at line 1, column 6"),
        ("'[1]\\n  x'", "json.decode: Extra data at line 2, column 3"),
        ("''", "json.decode: Expecting value at line 1, column 1"),
        ("'[NaN]'", "json.decode: NaN is not valid JSON (JSON has no NaN or infinity)"),
        ("'-Infinity'", "json.decode: -Infinity is not valid JSON"),
        ("'[1e400]'", "json.decode: the number at $[1] is out of range"),
        ('\'{"k": "\\\\ud800"}\'', "json.decode: the string at $.k contains a lone surrogate"),
        ("'\"\\255\"'", "json.decode: the text is not valid UTF-8 (at byte 2)"),
        ("42", "json.decode: expected a string, got number"),
        ("string.rep('[', 300) .. string.rep(']', 300)", "json.decode: $"),
        ("string.rep('[', 100000)", "json.decode: nested more than 200 levels deep"),
    ],
)
def test_decode_errors(lua: Lua, text: str, expected: str) -> None:
    message = lua.error(f"json.decode({text})")
    assert message.startswith("t.lua:1: "), message
    assert expected in message


def test_json_null_is_a_read_only_constant_outside_the_function_table(lua: Lua) -> None:
    assert "json.null is a constant and cannot be replaced" in lua.error("json.null = 1")
    assert "json.null cannot be modified" in lua.error("json.null.x = 1")
    assert lua.run("return getmetatable(json.null)") == "json.null"
    assert lua.run("local n = 0; for _ in pairs(json) do n = n + 1 end; return n") == 4
    assert "json.array: expected a table (or nothing), got json.null" in lua.error(
        "json.array(json.null)"
    )
    assert "json.object: expected a table (or nothing), got string" in lua.error("json.object('x')")


def test_marks_work_on_tables_with_their_own_metatable(lua: Lua) -> None:
    code = "local t = setmetatable({}, { __index = function() return 1 end }); "
    assert lua.run(code + "return json.encode(json.object(t))") == "{}"


def test_json_refuses_to_run_while_the_pipeline_is_defined(lua: Lua) -> None:
    lua.ctx.phase = Phase.DEFINITION
    for call in ("json.encode({})", "json.decode('1')", "json.array()", "json.object()"):
        name = call.split("(")[0]
        assert f"{name} can only be called inside a stage script" in lua.error(call)


def test_large_documents_round_trip(lua: Lua) -> None:
    code = """
    local items = {}
    for i = 1, 20000 do items[i] = { id = i, name = "item " .. i, ok = i % 2 == 0 } end
    local text = json.encode(items)
    local back = json.decode(text)
    assert(#back == 20000 and back[20000].name == "item 20000" and back[3].ok == false)
    return #text
    """
    assert lua.run(code) > 500_000
