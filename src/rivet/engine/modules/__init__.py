"""Runtime modules bound into a job's sandbox.

The Lua module ``name`` is implemented by ``name_module``: one file, or a package
when it has several parts (``fs_module``, ``http_module``, ``process_module``). The
suffix keeps every Lua module name (``json``, ``http``, …) clear of the Python
standard library's. Each has ``install(sandbox, ctx)``; :data:`INSTALLERS` is the
registry the executor uses and the stub tests compare with ``rivet.lua.surface``.
"""

from __future__ import annotations

from collections.abc import Callable

from rivet.engine.context import JobContext
from rivet.engine.modules import (
    artifact_module,
    container_module,
    fs_module,
    http_module,
    input_module,
    json_module,
    log_module,
    output_module,
    process_module,
    secret_module,
)
from rivet.lua.sandbox import Sandbox

__all__ = ["INSTALLERS", "install_all"]

INSTALLERS: dict[str, Callable[[Sandbox, JobContext], None]] = {
    "log": log_module.install,
    "input": input_module.install,
    "output": output_module.install,
    "process": process_module.install,
    "container": container_module.install,
    "secret": secret_module.install,
    "fs": fs_module.install,
    "json": json_module.install,
    "http": http_module.install,
    "artifact": artifact_module.install,
}


def install_all(sandbox: Sandbox, ctx: JobContext) -> None:
    for name, installer in INSTALLERS.items():
        installer(sandbox, ctx)
        sandbox.refuse_extra_arguments(name)
