"""``container.with(image, fn)``: push an image on the job's container stack for ``fn``.

The image is checked on entry (policy, then present or pullable: the backend's
``check_image``), so a missing image fails at the ``container.with`` line even when
``fn`` runs no command, as in the earlier Rivet; containers still start lazily."""

from __future__ import annotations

from typing import Any

from rivet.engine.context import JobContext
from rivet.engine.policy.violation import PolicyViolation
from rivet.errors import ContainerError
from rivet.lua.lua_values import is_function, type_name
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["install"]

# The pop must happen even when fn raises; pcall here is the sandbox's, which
# re-raises a kill (CPU/memory/cancel) at once, when the stack no longer matters.
_GLUE = """
local push, pop = ...
local pcall, error, pack, unpack = pcall, error, table.pack, table.unpack
local container = {}
function container.with(image, fn)
  local ok, err = push(image, fn)
  if not ok then error(err, 2) end
  local r = pack(pcall(fn))
  pop()
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end
return container
"""


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    def push(image: Any, fn: Any) -> None:
        ctx.require_run_phase("container.with")
        if not isinstance(image, str) or not image.strip():
            raise LuaCallError(
                f"container.with: image must be a non-empty string, got {type_name(image)}"
            )
        if not is_function(fn):
            raise LuaCallError(f"container.with: fn must be a function, got {type_name(fn)}")
        try:
            # Refused here, at the container.with line, rather than at the first command;
            # the container itself still starts with the first command that needs it.
            ctx.check_image(image.strip())
        except (PolicyViolation, ContainerError) as exc:
            raise LuaCallError(f"container.with: {exc}") from None
        ctx.stack.append(image.strip())

    def pop() -> None:
        if ctx.stack:
            ctx.stack.pop()

    sandbox.env["container"] = sandbox.eval_lua(
        _GLUE,
        sandbox.expose(push, "container.with", raw=True),
        sandbox.expose(pop, "container.with"),
    )
