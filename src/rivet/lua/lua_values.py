"""Reading Lua values from Python: type names as Lua prints them, arrays vs maps,
conversion to plain Python values. Used by validation and the runtime modules."""

from __future__ import annotations

import math
from typing import Any

from lupa import lua54

__all__ = [
    "array_values",
    "has_type",
    "int_map",
    "is_array",
    "is_function",
    "is_table",
    "keys",
    "plain",
    "render",
    "same",
    "to_python",
    "type_name",
]


def is_table(value: Any) -> bool:
    return bool(lua54.lua_type(value) == "table")


def is_function(value: Any) -> bool:
    return bool(lua54.lua_type(value) == "function")


def type_name(value: Any) -> str:
    """The Lua type name (``nil``, ``boolean``, ``number``, ``string``, ``table``…)."""
    kind = lua54.lua_type(value)
    if kind is not None:
        return str(kind)
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | bytes):
        return "string"
    return "userdata"


def keys(table: Any) -> list[Any]:
    return list(table.keys())


def is_array(table: Any) -> bool:
    """True for a table whose keys are exactly 1..n (an empty table counts)."""
    if not is_table(table):
        return False
    found = keys(table)
    return all(isinstance(k, int) and not isinstance(k, bool) for k in found) and sorted(
        found
    ) == list(range(1, len(found) + 1))


def array_values(table: Any) -> list[Any]:
    if not is_table(table):
        return []
    return [table[i] for i in range(1, len(table) + 1)]


def int_map(table: Any) -> dict[int, int]:
    if not is_table(table):
        return {}
    return {int(k): int(v) for k, v in table.items() if isinstance(v, int)}


def has_type(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return False


def same(a: Any, b: Any) -> bool:
    return type_name(a) == type_name(b) and a == b


def render(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    if isinstance(value, int | float):
        return str(value)
    return type_name(value)


def plain(value: Any) -> Any:
    """A Lua scalar as a Python scalar (bytes decoded, whole floats kept as floats)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def to_python(value: Any, *, depth: int = 0) -> Any:
    """Convert a Lua value to JSON-like Python data: arrays → lists, tables → dicts."""
    if depth > 100:
        raise ValueError("table nested too deeply (or contains a cycle)")
    if is_table(value):
        if is_array(value) and len(value) > 0:
            return [to_python(v, depth=depth + 1) for v in array_values(value)]
        return {str(k): to_python(v, depth=depth + 1) for k, v in value.items()}
    if is_function(value):
        raise ValueError("functions cannot be converted to data")
    return plain(value)
