"""The sandbox battery, part four: Lua that runs inside a Rivet call (Python calling
back into Lua, as a metamethod would) counts against the CPU budget, while the
Python work of a call that runs no Lua stays free.

Before, a callback's whole CPU time was refunded, Lua inside it included, and an
inner callback's time was refunded again by the outer one: each loop below then
completed, charged a fraction of its Lua time. These tests use two white-box
callbacks (``nest`` calls a Lua function from Python, ``busy`` burns Python CPU).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from rivet.errors import ResourceLimitError
from rivet.lua.sandbox import Limits, Sandbox


def sandbox_with_callbacks(budget: float) -> Sandbox:
    """A sandbox with two white-box callbacks: ``nest(f)`` calls the Lua function ``f``
    from Python (Lua inside a callback), ``busy(s)`` burns ``s`` s of Python CPU."""
    sandbox = Sandbox(Limits(stage_cpu_seconds=budget))

    def nest(fn: Any) -> Any:
        return sandbox.invoke(fn)  # how Rivet's Python runs Lua

    def busy(seconds: float) -> None:
        started = time.thread_time()
        while time.thread_time() - started < seconds:
            pass

    sandbox.env["nest"] = sandbox.expose(nest, "nest")
    sandbox.env["busy"] = sandbox.expose(busy, "busy")
    sandbox.env["noop"] = sandbox.expose(lambda: None, "noop")
    return sandbox


def call_with(sandbox: Sandbox, code: str, budget: float) -> Any:
    return sandbox.call(sandbox.load(code, "n.lua"), budget=budget, label="stage 's'")


# Each loop ends: with the refund of old (the whole callback's time given back) it
# completes, charged a fraction of its 2 s or more of Lua. Now it must be stopped.
NESTED = {
    # short runs of Lua inside callbacks, each below one hook period (10,000 instructions)
    "short nested runs": (
        "for i = 1, 5e4 do nest(function() local x = 0 for j = 1, 2000 do x = x + j end end) end"
    ),
    "long nested runs": "for i = 1, 2e3 do nest(function() for j = 1, 1e5 do end end) end",
    "endless nested loop": "nest(function() while true do end end)",
    # a refund for the inner callback must not be given again for the outer one
    "nested callbacks": "for i = 1, 2e3 do nest(function() busy(0.002) for j = 1, 1e5 do end end) end",
    # a bridge call resets the hook's count: the callbacks themselves check the budget
    "loop of callbacks": "while true do noop() end",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(NESTED))
def test_lua_inside_a_callback_counts_against_the_budget(case: str) -> None:
    sandbox = sandbox_with_callbacks(0.5)
    with pytest.raises(ResourceLimitError, match=r"Lua CPU budget of 0\.5 s exceeded"):
        call_with(sandbox, NESTED[case], 0.5)
    sandbox.close()


def test_python_cpu_of_a_callback_without_lua_is_not_charged() -> None:
    sandbox = sandbox_with_callbacks(0.5)
    # 1.5 s of Python CPU in callbacks, under a 0.5 s budget: Rivet's work is free.
    assert call_with(sandbox, "for i = 1, 50 do busy(0.03) end return 'done'", 0.5) == "done"
    # and so is the Python part of a callback whose nested Lua is tiny
    assert call_with(sandbox, "for i = 1, 50 do nest(function() busy(0.03) end) end return 1", 0.5)
    sandbox.close()
