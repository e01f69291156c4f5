"""Plugins: Lua modules with a manifest, loaded into a job's sandbox under their
names when the pipeline lists them (``plugins = { "archive" }``); see docs/plugins.md.

:mod:`~rivet.engine.plugins.catalog` finds them; this module loads them into a job:

- :func:`prepare` runs at install time, before any pipeline code, and captures the
  safe globals and core modules a plugin may see (``loader.lua``);
- :func:`load_plugins` runs after the definition is known: each plugin the pipeline
  lists is refused when the runner policy denies it (``plugins.denied``) or the
  runner does not have it, else its ``init.lua`` is compiled as untrusted text in a
  private environment (the safe standard library and the core modules its manifest
  names, nothing of the pipeline or of other plugins), run under the definition CPU
  budget, and the table it returns becomes the global ``name``. A plugin's code is
  pipeline code: the same memory cap, CPU budgets, policy and jail apply to it.

Built-in plugins may also get a ``native`` table of Python functions (the archive
plugin's safe unpacking); third-party plugins never do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from rivet.engine.context import JobContext
from rivet.engine.plugins.catalog import Catalog, Plugin, discover
from rivet.errors import LuaError
from rivet.lua.lua_values import is_table
from rivet.lua.sandbox import Sandbox
from rivet.lua.surface import RUNTIME_MODULES, SANDBOX_GLOBALS

__all__ = ["NATIVE", "Catalog", "PluginError", "discover", "load_plugins", "prepare"]

Native = Callable[[Sandbox, JobContext], Any]


def _archive_native(sandbox: Sandbox, ctx: JobContext) -> Any:
    from rivet.engine.plugins.archive_native import install

    return install(sandbox, ctx)


NATIVE: dict[str, Native] = {"archive": _archive_native}


class PluginError(LuaError):
    """A plugin the pipeline lists cannot be loaded (denied, missing, broken)."""


def prepare(sandbox: Sandbox) -> Any:
    """Capture what plugins may see; call after the core modules are installed."""
    glue = resources.files("rivet.engine.plugins").joinpath("loader.lua").read_text("utf-8")
    compile_fn = sandbox.eval_lua(
        glue,
        sandbox.table(list(SANDBOX_GLOBALS)),
        sandbox.table(list(RUNTIME_MODULES)),
        chunkname="=rivet/plugins/loader.lua",
    )
    return compile_fn


def load_plugins(
    sandbox: Sandbox,
    ctx: JobContext,
    compiler: Any,
    names: Sequence[str],
    catalog: Catalog,
    filename: str,
) -> None:
    """Load the plugins ``names`` (the definition's ``plugins``) as globals; raises
    :class:`PluginError` naming the plugin and why."""
    denied = ctx.policy.plugins.denied
    for name in names:
        if name in denied:
            raise PluginError(f"{filename}: plugins: policy plugins.denied forbids plugin '{name}'")
        plugin = catalog.plugins.get(name)
        if plugin is None:
            why = catalog.problems.get(name)
            raise PluginError(
                f"{filename}: plugins: plugin '{name}' is not available on this runner"
                + (f" ({why})" if why else "")
            )
        _load(sandbox, ctx, compiler, plugin)


def _load(sandbox: Sandbox, ctx: JobContext, compiler: Any, plugin: Plugin) -> None:
    label = f"plugin '{plugin.name}'"
    try:
        source = plugin.source()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PluginError(f"{label}: cannot read its init.lua: {exc}") from None
    native = None
    if plugin.builtin and plugin.name in NATIVE:
        native = NATIVE[plugin.name](sandbox, ctx)
    wanted = sandbox.table(list(plugin.manifest.modules))
    budget = sandbox.limits.definition_cpu_seconds
    chunk = f"=plugin/{plugin.name}/init.lua"
    try:
        with sandbox.budget(budget, label):
            fn = sandbox.invoke(compiler, source, chunk, wanted, native)
            table = sandbox.invoke(fn)
    except LuaError as exc:
        raise PluginError(f"{label}: {exc}") from None
    if isinstance(table, tuple):
        table = table[0] if table else None
    if not is_table(table):
        raise PluginError(f"{label}: its init.lua must return a table (the module)")
    sandbox.env[plugin.name] = table
