"""The Lua memory cap of a job, and why Rivet's own Python never trips it.

lupa enforces the cap in its allocator: an allocation that would pass it fails and
Lua raises "not enough memory". Inside Lua code that is an ordinary Lua error, caught
by the nearest protected call. But lupa also allocates Lua memory from *Python*, with
no protected call around it: converting a Python string or table into Lua
(``lua_pushlstring``, ``lua_newtable``, table stores), taking a registry reference
for every Lua table or function Python receives (``luaL_ref``, as arguments of a
Rivet function or while Rivet reads a table), even ``len()``. When one of those
fails, Lua's error handling ``longjmp``\\ s straight across the Python frames of the
callback to the pipeline's ``pcall``: the frames are never unwound and the thread's
hold on the GIL is never given back, so the next time the thread waits for the GIL
it waits forever, and every other thread of the process with it (measured on lupa
2.8: a pipeline that filled its memory to just under the cap and then called a
Rivet function returning a table froze the runner, every job on it included). With
no Lua call running at all, the same failure is a Lua panic, which aborts the process.

So the cap holds for Lua code only, and is lifted while Python has control:

- A Rivet call (``bootstrap.lua``'s ``bridge``) has it lifted before lupa converts
  the arguments (by the bridge when they include tables or functions, which take
  references; otherwise by Python, first thing) and put back once lupa has pushed
  the results (by Python before it returns when nothing in them allocates as it is
  pushed; otherwise by the bridge, after the push). A call from Python into Lua
  (``invoke``) puts it on before the Lua runs and lifts it again before the results
  go back, and a stop (CPU budget, cancel, kill) puts it on before the error is
  raised. Outside any call, while Rivet builds or reads tables, it is lifted too.
  Lua code, the pipeline's or Rivet's glue, only ever runs with the cap on.
- Lifted does not mean unbounded: Rivet measures what it is about to hand to Lua
  (:func:`lua_size`, a generous upper bound of what lupa will allocate) and refuses a
  result that would not fit under the cap (:meth:`MemoryCap.shortfall`, after a full
  collection, which often makes room); and once a Rivet call's results are in Lua the
  bridge checks the state is still under its cap (a module that built its result
  piece by piece). Either way the call fails with "memory limit of N MiB exceeded"
  and the state is killed, as when the pipeline's own code runs out.

Rivet's Python must therefore call Lua only through the sandbox (``Sandbox.call``,
``invoke``, ``eval_lua``, ``load``), never a lupa function object directly, and must
read pipeline tables raw (:mod:`rivet.lua.lua_values`): Lua run any other way from
Python would run with the cap lifted.

The alternatives were weaker: a headroom kept below lupa's limit only moves the
edge (pipeline code can fill the headroom too, between two checks of the hook), and
size guards alone cannot cover lupa's own allocations (argument references, ``len``),
which happen before Rivet's code runs. Patching lupa (protected conversions) would
be the real fix upstream; this design needs none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MemoryCap", "describe", "lua_size", "pushes_freely"]

MiB = 1024 * 1024

# What lupa allocates for one value, as its allocator counts it, bounded from above
# (Lua 5.4, 64-bit). A string: its TString header (24 bytes), the bytes and a NUL,
# plus, when it is short (up to 40 bytes) and so interned, its share of the string
# table (up to two 8-byte slots); a short string already met in the same value is
# the same Lua string and costs nothing again. A table: the Table struct (56). An
# entry: an array slot is 16 bytes, a hash node 24, and either part is sized to a
# power of two, up to twice what it holds. (While a part grows the old and the new
# one exist at once, and lupa holds a registry reference to the table being filled;
# that happens with the cap lifted, and is gone when the value is in Lua.)
STRING_BYTES = 48
SHORT_STRING = 40
TABLE_BYTES = 64
ENTRY_BYTES = 48


def _text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def lua_size(value: Any) -> int:
    """An upper bound of the Lua memory that handing ``value`` to Lua allocates:
    strings (as lupa encodes them, UTF-8), bytes, lists, tuples and mappings, nested
    in any way; scalars and values that are already Lua objects cost nothing."""
    total = 0
    short: set[str | bytes] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            size = _text_bytes(item) if isinstance(item, str) else len(item)
            if size <= SHORT_STRING:
                if item in short:
                    continue
                short.add(item)
            total += STRING_BYTES + size
        elif item is None or isinstance(item, bool | int | float):
            continue  # a scalar is a stack slot or a table entry, counted there
        elif isinstance(item, Mapping):
            total += TABLE_BYTES + ENTRY_BYTES * len(item)
            for key, entry in item.items():
                stack.append(key)
                stack.append(entry)
        elif isinstance(item, list | tuple):
            total += TABLE_BYTES + ENTRY_BYTES * len(item)
            stack.extend(item)
        # anything else is a Lua object already (or a type Sandbox refuses): nothing
    return total


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def pushes_freely(values: tuple[Any, ...]) -> bool:
    """Whether lupa pushes ``values`` onto the Lua stack without allocating: no
    strings, and integers Lua holds as they are (a bigger one takes lupa's overflow
    path, which allocates); nil, booleans, floats and Lua objects push as they are."""
    for value in values:
        kind = type(value)
        if kind is bool or value is None:
            continue
        if kind is str or kind is bytes or isinstance(value, str | bytes):
            return False
        if kind is int and not _INT64_MIN <= value <= _INT64_MAX:
            return False
    return True


def describe(size: int) -> str:
    """A byte count for a message: KiB below a MiB, MiB with one decimal above."""
    if size < MiB:
        return f"{max(size, 1) / 1024:.1f} KiB"
    return f"{size / MiB:.1f} MiB"


def _nothing(*_args: Any) -> None:
    return None


def _zero() -> int:
    return 0


class MemoryCap:
    """The allocator limit of one Lua state: on (Lua runs) or lifted (Python has
    control), and how much room is left under it.

    Holds bound methods of the runtime, so whoever keeps it keeps the runtime, until
    :meth:`detach` (the sandbox's ``close``)."""

    __slots__ = ("_collect", "_set", "_used", "lifted", "limit")

    def __init__(self, runtime: Any, limit: int) -> None:
        self.limit = limit
        self.lifted = False  # lupa starts with the limit on
        self._set = runtime.set_max_memory
        self._used = runtime.get_memory_used
        self._collect = runtime.gccollect

    def detach(self) -> None:
        """Let go of the runtime (the job has ended), with the cap on."""
        self.set_lifted(False)
        self._set = self._collect = _nothing
        self._used = _zero

    def set_lifted(self, lifted: bool) -> bool:
        """Lift the cap (``True``) or put it on; answers whether it was lifted."""
        was = self.lifted
        if lifted is not was:
            self._set(0 if lifted else self.limit)
            self.lifted = lifted
        return was

    def used(self) -> int:
        return int(self._used())

    def cap_if_under(self) -> bool:
        """Put the cap on if the state is under it (the common end of a Rivet call);
        False, changing nothing, if it is over."""
        if self._used() > self.limit:
            return False
        if self.lifted:
            self._set(self.limit)
            self.lifted = False
        return True

    def shortfall(self, need: int) -> int | None:
        """None when ``need`` more bytes fit under the cap, after a full collection
        when they do not fit at once; otherwise the bytes in use (after it). Call it
        with the cap lifted: the collection runs no pipeline code (no finalizers)."""
        if self._used() + need <= self.limit:
            return None
        self._collect()
        used = self.used()
        return None if used + need <= self.limit else used

    def exceeded(self, what: str, need: int, used: int) -> str:
        """The message of a refusal: what did not fit, by how much."""
        cap = f"memory limit of {self.limit // MiB} MiB exceeded"
        if need:
            return (
                f"{what}: {cap}: its result needs about {describe(need)} and the job's "
                f"Lua state already holds {describe(used)}"
            )
        return f"{what}: {cap}: the job's Lua state holds {describe(used)} with its result"
