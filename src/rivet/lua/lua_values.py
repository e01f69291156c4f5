"""Reading Lua values from Python: type names as Lua prints them, arrays vs maps,
conversion to plain Python values. Used by validation and the runtime modules.

Every table that comes from pipeline code is read **raw**, with no metamethod: lupa's
``table[key]`` honours ``__index`` (and ``str(table)`` ``__tostring``), which would
run pipeline code inside Rivet's Python — where it is not counted against the CPU
budget at definition time, and where it could make a table read as something other
than what it holds. :class:`RawTable` reads a table once with ``lua_next`` (which
knows no ``__index``, ``__pairs`` or ``__len``); every helper here works from it,
and :func:`render` / :func:`key_text` name a value without ever calling
``__tostring``. So a proxy table (an empty table whose ``__index`` makes up fields)
reads as empty: options and definitions are what their tables really contain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from lupa import lua54

__all__ = [
    "RawTable",
    "array_values",
    "has_type",
    "int_map",
    "is_array",
    "is_function",
    "is_table",
    "key_text",
    "keys",
    "plain",
    "raw",
    "render",
    "same",
    "to_python",
    "type_name",
]


def _slot(key: Any) -> Any:
    # Lua keeps true and 1 apart; a Python dict would not (True == 1).
    return (bool, key) if isinstance(key, bool) else key


class RawTable:
    """A Lua table as it is, read once without metamethods.

    ``t[key]`` and ``t.get(key)`` give the value or None (like Lua's ``rawget``),
    ``keys()``/``items()`` every pair, ``len(t)`` and :meth:`array` the sequence
    ``1..n`` where ``n`` is the first border (the length of a proper sequence;
    a table with holes ends at its first nil).
    """

    __slots__ = ("_index", "_length", "_pairs")

    def __init__(self, table: Any) -> None:
        if isinstance(table, RawTable):
            self._pairs: list[tuple[Any, Any]] = table._pairs
            self._index: dict[Any, Any] = table._index
            self._length: int = table._length
            return
        pairs = list(table.items())  # lua_next: raw, no __pairs / __index
        self._pairs = pairs
        self._index = {_slot(k): v for k, v in pairs}
        length = 0
        while length + 1 in self._index:
            length += 1
        self._length = length

    def __getitem__(self, key: Any) -> Any:
        return self._index.get(_slot(key))

    def get(self, key: Any, default: Any = None) -> Any:
        value = self._index.get(_slot(key))
        return default if value is None else value

    def __contains__(self, key: Any) -> bool:
        return _slot(key) in self._index

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Any]:
        return (k for k, _ in self._pairs)

    def keys(self) -> list[Any]:
        return [k for k, _ in self._pairs]

    def items(self) -> list[tuple[Any, Any]]:
        return list(self._pairs)

    def array(self) -> list[Any]:
        index = self._index
        return [index[i] for i in range(1, self._length + 1)]


def raw(table: Any) -> RawTable:
    """``table`` (a Lua table, or an already read :class:`RawTable`) read raw."""
    return table if isinstance(table, RawTable) else RawTable(table)


def is_table(value: Any) -> bool:
    return isinstance(value, RawTable) or bool(lua54.lua_type(value) == "table")


def is_function(value: Any) -> bool:
    return bool(lua54.lua_type(value) == "function")


def type_name(value: Any) -> str:
    """The Lua type name (``nil``, ``boolean``, ``number``, ``string``, ``table``…)."""
    if isinstance(value, RawTable):
        return "table"
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
    return raw(table).keys()


def is_array(table: Any) -> bool:
    """True for a table whose keys are exactly 1..n (an empty table counts)."""
    if not is_table(table):
        return False
    t = raw(table)
    return len(t) == len(t.keys())


def array_values(table: Any) -> list[Any]:
    """The values at 1..n (see :class:`RawTable`); [] for anything but a table."""
    if not is_table(table):
        return []
    return raw(table).array()


def int_map(table: Any) -> dict[int, int]:
    if not is_table(table):
        return {}
    return {
        int(k): int(v)
        for k, v in raw(table).items()
        if isinstance(k, int | float) and isinstance(v, int) and not isinstance(v, bool)
    }


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
    """A value for a message: strings quoted, tables and functions by their type name
    (never through ``__tostring``)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    if isinstance(value, int | float):
        return str(value)
    return type_name(value)


def key_text(key: Any) -> str:
    """A table key for a message or a field path: a string as it is, anything else
    as :func:`render` shows it (``1``, ``true``, ``table``)."""
    return key if isinstance(key, str) else render(key)


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
        t = raw(value)
        if len(t) > 0 and len(t) == len(t.keys()):
            return [to_python(v, depth=depth + 1) for v in t.array()]
        return {key_text(k): to_python(v, depth=depth + 1) for k, v in t.items()}
    if is_function(value):
        raise ValueError("functions cannot be converted to data")
    return plain(value)
