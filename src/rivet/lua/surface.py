"""The names pipeline code can use: the single source the runtime, the definition-time
placeholders and the LSP stubs are checked against."""

from __future__ import annotations

__all__ = ["DEFINITION_MODULES", "RUNTIME_MODULES", "SANDBOX_GLOBALS"]

# Runtime modules: usable inside stage scripts and conditions only.
RUNTIME_MODULES: dict[str, tuple[str, ...]] = {
    "log": ("debug", "info", "warning", "warn", "error"),
    "input": ("get", "require", "has", "all", "keys"),
    "output": ("set", "get", "require", "has", "all", "keys", "clear", "clear_all"),
    "process": ("run", "parallel"),
    "container": ("with",),
    "secret": ("get", "has"),
    "fs": (
        "read",
        "write",
        "append",
        "exists",
        "list",
        "mkdir",
        "remove",
        "copy",
        "move",
        "stat",
        "glob",
    ),
    # json.null is a constant, not a function: reached through the module's
    # metatable, so it is not a key of the table (see engine/modules/json_module.py).
    "json": ("encode", "decode", "array", "object"),
    "http": ("get", "post", "put", "patch", "delete", "request"),
    "artifact": ("upload", "download"),
}

DEFINITION_MODULES: dict[str, tuple[str, ...]] = {
    "pipeline": ("define", "builder", "input", "stage", "tag"),
}

# Global functions and libraries of the sandbox besides the modules
# (docs/lua-reference.md, '3. The sandbox').
SANDBOX_GLOBALS: tuple[str, ...] = (
    "assert",
    "collectgarbage",
    "coroutine",
    "error",
    "getmetatable",
    "ipairs",
    "load",
    "math",
    "next",
    "os",
    "pairs",
    "pcall",
    "print",
    "rawequal",
    "rawget",
    "rawlen",
    "rawset",
    "select",
    "setmetatable",
    "string",
    "table",
    "tonumber",
    "tostring",
    "type",
    "utf8",
    "xpcall",
    "_G",
    "_VERSION",
)
