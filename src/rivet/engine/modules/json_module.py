"""``json.encode`` / ``json.decode`` and the ``json.null``, ``json.array``,
``json.object`` helpers (documented in docs/lua-reference.md, section json).

The mapping, chosen so that ``decode`` then ``encode`` gives the same JSON back:

- JSON ``null`` ↔ ``json.null``, one unique read-only table (a Lua ``nil`` cannot
  sit in an array without cutting it short); a top-level ``nil`` encodes as null.
- A table whose keys are exactly 1..n is an array; one with string keys only is an
  object; an empty table is an array (``[]``) unless marked with ``json.object(t)``;
  ``json.array(t)`` forces an array. Decoded arrays and objects carry the mark of
  their kind, so an empty ``{}`` stays an object when it is encoded again.
- Anything else is an error naming the key and where it is (``$.a[2]``): a table
  mixing items and keys, a sparse array, a non-string key (integer keys are written
  as strings only in a table marked ``json.object``), NaN or infinity, a cycle,
  nesting deeper than :data:`MAX_DEPTH`, a function, a string that is not UTF-8.
- Lua integers stay integers and floats stay floats (``3`` → ``3``, ``3.0`` →
  ``3.0``); decoded integers outside the 64-bit range become floats.
- Sizes are capped (:mod:`rivet.engine.limits`), because the runner holds a Python
  copy of the value: ``encode`` builds at most a quarter of the Lua memory limit of
  text (counted while the tables are read, so a table that refers to one big string
  a thousand times fails early instead of growing the runner), ``decode`` reads at
  most a sixteenth of it, and both handle at most MAX_JSON_ITEMS items.

Marks live in a weak-keyed table in the glue, not in metatables, so tables that
have their own metatable can be marked too. The Python side asks the glue for a
table's mark and its address (``%p``, for cycle detection) with one call per table.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rivet.engine.context import JobContext
from rivet.engine.limits import JSON_DECODE_SHARE, JSON_ENCODE_SHARE, MAX_JSON_ITEMS
from rivet.engine.policy.fs_policy import format_size
from rivet.lua.lua_values import is_table, raw, render, type_name
from rivet.lua.memory import lua_size
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["FUNCTIONS", "MAX_DEPTH", "install"]

FUNCTIONS = ("encode", "decode", "array", "object")
# Deep enough for any real document; shallow enough for Python's recursion limit.
MAX_DEPTH = 200
_INT64 = (-(2**63), 2**63 - 1)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_GLUE = """
local encode_impl, decode_impl, phase = ...
local type, error, setmetatable, rawset, format, utf8_len =
  type, error, setmetatable, rawset, string.format, utf8.len

local marks = setmetatable({}, { __mode = "k" })

local NULL = setmetatable({}, {
  __tostring = function() return "json.null" end,
  __newindex = function() error("json.null cannot be modified", 2) end,
  __metatable = "json.null",
})
marks[NULL] = "null"

local function inspect(t)
  return marks[t], format("%p", t)
end

local function set_marks(arrays, objects)
  for i = 1, #arrays do marks[arrays[i]] = "array" end
  for i = 1, #objects do marks[objects[i]] = "object" end
end

local json = {}

function json.encode(value, opts)
  -- Boxed, so that a string that is not UTF-8 is caught on the Python side.
  local ok, r = encode_impl({ value }, opts)
  if not ok then error(r, 2) end
  return r
end

function json.decode(text)
  local ok, r = phase("json.decode")
  if not ok then error(r, 2) end
  if type(text) ~= "string" then
    error("json.decode: expected a string, got " .. type(text), 2)
  end
  local valid, bad = utf8_len(text)
  if not valid then
    error("json.decode: the text is not valid UTF-8 (at byte " .. bad .. ")", 2)
  end
  ok, r = decode_impl(text)
  if not ok then error(r, 2) end
  return r[1]
end

local function marker(kind)
  return function(t)
    local ok, err = phase("json." .. kind)
    if not ok then error(err, 2) end
    if t == nil then t = {} end
    if type(t) ~= "table" or t == NULL then
      local got = t == NULL and "json.null" or type(t)
      error("json." .. kind .. ": expected a table (or nothing), got " .. got, 2)
    end
    marks[t] = kind
    return t
  end
end
json.array = marker("array")
json.object = marker("object")

-- json.null is a constant: kept out of the raw table (pairs(json) lists functions).
setmetatable(json, {
  __index = { null = NULL },
  __newindex = function(t, k, v)
    if k == "null" then error("json.null is a constant and cannot be replaced", 2) end
    rawset(t, k, v)
  end,
  __metatable = false,
})

return json, inspect, set_marks, NULL
"""


def _fail(fn: str, message: str) -> LuaCallError:
    return LuaCallError(f"json.{fn}: {message}")


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENT.fullmatch(key) else f"{path}[{json.dumps(key)}]"


class _Budget:
    """What one encode or decode may still build: characters of text and items."""

    def __init__(self, fn: str, chars: int) -> None:
        self.fn = fn
        self.limit = chars
        self.chars = chars
        self.items = MAX_JSON_ITEMS

    def text(self, value: Any) -> None:
        """Count a value about to be written: a string with its quotes, anything else
        as a few characters (a number, a literal, a key's integer, brackets)."""
        self.chars -= len(value) + 3 if isinstance(value, str) else 4
        if self.chars < 0:
            raise self.too_long()

    def item(self) -> None:
        self.items -= 1
        if self.items < 0:
            raise _fail(self.fn, f"the value has more than {MAX_JSON_ITEMS} items")

    def too_long(self) -> LuaCallError:
        return _fail(
            self.fn,
            f"the JSON text would be longer than {format_size(self.limit)} "
            f"(1/{JSON_ENCODE_SHARE} of the Lua memory limit)",
        )


class _Json:
    def __init__(self, sandbox: Sandbox, ctx: JobContext) -> None:
        self.sandbox = sandbox
        self.ctx = ctx
        self.inspect: Any = None
        self.set_marks: Any = None
        self.null: Any = None
        memory = sandbox.limits.memory_bytes
        self.max_encoded = memory // JSON_ENCODE_SHARE
        self.max_decoded = memory // JSON_DECODE_SHARE

    def phase(self, what: Any) -> None:
        self.ctx.require_run_phase(str(what))

    # --- encode ---------------------------------------------------------------------

    def encode(self, boxed: Any, opts: Any) -> str:
        self.ctx.require_run_phase("json.encode")
        indent = _indent(opts)
        try:
            value = raw(boxed)[1]
        except UnicodeDecodeError:
            raise _fail("encode", "the string is not valid UTF-8 (JSON text must be)") from None
        budget = _Budget("encode", self.max_encoded)
        budget.text(value)
        data = self._plain(value, "$", 0, set(), budget)
        separators = (",", ":") if indent is None else (",", ": ")
        text = json.dumps(
            data,
            ensure_ascii=False,
            allow_nan=False,
            sort_keys=True,
            indent=indent,
            separators=separators,
        )
        if len(text) > self.max_encoded:  # escapes and indentation were not counted
            raise budget.too_long()
        return text

    def _plain(self, value: Any, path: str, depth: int, active: set[str], budget: _Budget) -> Any:
        # Strings were counted when they were read (by the caller).
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                what = "NaN" if math.isnan(value) else "infinite"
                raise _fail("encode", f"{path} is {what}, which JSON cannot represent")
            return value
        if not is_table(value):
            kind = type_name(value)
            raise _fail("encode", f"{path} is a {kind}, which JSON cannot encode")
        mark, address = self.sandbox.invoke(self.inspect, value)
        if mark == "null":
            return None
        if depth >= MAX_DEPTH:
            raise _fail("encode", f"{path} is nested more than {MAX_DEPTH} levels deep")
        if address in active:
            raise _fail("encode", f"{path} refers back to a table that contains it (a cycle)")
        try:
            items = []
            # One by one, counted as they are read: lupa makes a new Python copy of a
            # string each time a table refers to it.
            for key, item in value.items():
                budget.item()
                budget.text(key)
                budget.text(item)
                items.append((key, item))
        except UnicodeDecodeError:
            raise _fail(
                "encode", f"a string in {path} is not valid UTF-8 (JSON text must be)"
            ) from None
        active.add(address)
        try:
            if _is_array(items, mark, path):
                ordered = sorted(items, key=lambda kv: int(kv[0]))
                return [
                    self._plain(v, f"{path}[{k}]", depth + 1, active, budget) for k, v in ordered
                ]
            plain: dict[str, Any] = {}
            for k, v in items:
                key = _object_key(k, mark, path)
                plain[key] = self._plain(v, _key_path(path, key), depth + 1, active, budget)
            return plain
        finally:
            active.discard(address)

    # --- decode ---------------------------------------------------------------------

    def decode(self, text: Any) -> Any:
        source = str(text)
        if len(source) > self.max_decoded:
            raise _fail(
                "decode",
                f"the text is {len(source)} characters long, over the limit of "
                f"{format_size(self.max_decoded)} (1/{JSON_DECODE_SHARE} of the Lua memory "
                "limit: decoded tables take several times the text's size)",
            )
        if _items_at_most(source) > MAX_JSON_ITEMS:
            # Refused before parsing: Python's objects for a million tiny items take
            # far more memory than their text ("[],"), and the parser cannot be stopped.
            raise _fail("decode", f"the text has more than {MAX_JSON_ITEMS} items")
        try:
            data = json.loads(source, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise _fail("decode", f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except RecursionError:
            raise _fail("decode", f"nested more than {MAX_DEPTH} levels deep") from None
        except ValueError as exc:
            raise _fail("decode", str(exc)) from None
        # Measured before a table is built: the tables go into Lua one store at a time.
        self.sandbox.reserve(lua_size(data), "json.decode")
        arrays: list[Any] = []
        objects: list[Any] = []
        budget = _Budget("decode", self.max_decoded)
        try:
            result = self._lua(data, "$", 0, arrays, objects, budget)
        except MemoryError:
            raise _fail(
                "decode", "the decoded value does not fit in the Lua memory limit"
            ) from None
        self.sandbox.invoke(self.set_marks, self.sandbox.table(arrays), self.sandbox.table(objects))
        # Boxed: strings are handed over as bytes, which only a table slot takes verbatim.
        box = self.sandbox.table()
        box[1] = result
        return box

    def _lua(
        self,
        value: Any,
        path: str,
        depth: int,
        arrays: list[Any],
        objects: list[Any],
        budget: _Budget,
    ) -> Any:
        if value is None:
            return self.null
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if _INT64[0] <= value <= _INT64[1]:
                return value
            try:
                return float(value)
            except OverflowError:
                raise _fail("decode", f"the number at {path} is too large") from None
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _fail("decode", f"the number at {path} is out of range")
            return value
        if isinstance(value, str):
            return _utf8(value, path)
        if depth >= MAX_DEPTH:
            raise _fail("decode", f"{path} is nested more than {MAX_DEPTH} levels deep")
        table = self.sandbox.table()
        if isinstance(value, list):
            for index, item in enumerate(value, start=1):
                budget.item()
                table[index] = self._lua(
                    item, f"{path}[{index}]", depth + 1, arrays, objects, budget
                )
            arrays.append(table)
        else:
            for key, item in value.items():
                budget.item()
                child = _key_path(path, key)
                table[_utf8(key, child)] = self._lua(
                    item, child, depth + 1, arrays, objects, budget
                )
            objects.append(table)
        return table


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def _items_at_most(text: str) -> int:
    """An upper bound on the items (array elements, object members) of a JSON text:
    every item follows a '[', '{' or ',' outside strings. Strings are only cut out
    when the quick count (which includes their commas) is over the cap."""

    def count(t: str) -> int:
        return t.count(",") + t.count("[") + t.count("{")

    quick = count(text)
    return quick if quick <= MAX_JSON_ITEMS else count(_STRING.sub("", text))


def _is_array(items: list[tuple[Any, Any]], mark: str | None, path: str) -> bool:
    """Whether a table's items form an array, or an error naming the offending key."""
    if mark == "object":
        return False
    ints = [k for k, _ in items if isinstance(k, int) and not isinstance(k, bool)]
    others = [k for k, _ in items if not (isinstance(k, int) and not isinstance(k, bool))]
    sequence = sorted(ints) == list(range(1, len(ints) + 1))
    if mark == "array":
        if others:
            raise _fail(
                "encode",
                f"{path} is marked json.array but has the key {render(others[0])}",
            )
        if not sequence:
            raise _fail(
                "encode",
                f"{path} is marked json.array but is not a sequence 1..n "
                f"(key {_first_gap(ints)}); use json.null for missing items",
            )
        return True
    if not items:
        return True  # documented: an unmarked empty table is []
    if not others:
        if sequence:
            return True
        raise _fail(
            "encode",
            f"{path} has the integer key {_first_gap(ints)} outside the sequence 1..n "
            "(a sparse array?); use json.null for missing items, or json.object(t) "
            "to write integer keys as strings",
        )
    if ints:
        raise _fail(
            "encode",
            f"{path} mixes array items with the key {render(others[0])}; use "
            "json.object(t) to encode it as an object (integer keys become strings)",
        )
    return False


def _first_gap(ints: list[int]) -> int:
    for expected, key in enumerate(sorted(ints), start=1):
        if key != expected:
            return key
    return len(ints) + 1


def _object_key(key: Any, mark: str | None, path: str) -> str:
    if isinstance(key, str):
        return key
    if mark == "object" and isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise _fail("encode", f"{path} has the key {render(key)}; JSON object keys are strings")


def _utf8(text: str, path: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(
            "decode", f"the string at {path} contains a lone surrogate escape (\\ud800-\\udfff)"
        ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (JSON has no NaN or infinity)")


def _indent(opts: Any) -> int | None:
    if opts is None:
        return None
    if not is_table(opts):
        raise _fail(
            "encode", f"options must be a table like {{ indent = 2 }}, got {type_name(opts)}"
        )
    indent = None
    for key, value in opts.items():
        if key != "indent":
            raise _fail("encode", f"unknown option {render(key)} (known: indent)")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 16:
            raise _fail(
                "encode", f"option 'indent' must be an integer from 0 to 16, got {render(value)}"
            )
        indent = value
    return indent


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    impl = _Json(sandbox, ctx)
    module, impl.inspect, impl.set_marks, impl.null = sandbox.eval_lua(
        _GLUE,
        sandbox.expose(impl.encode, "json.encode", raw=True),
        sandbox.expose(impl.decode, "json.decode", raw=True),
        sandbox.expose(impl.phase, "json", raw=True),
    )
    sandbox.env["json"] = module
