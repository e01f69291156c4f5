"""Runtime modules bound into a job's sandbox, one file per module.

Each module has ``install(sandbox, ctx)``; :data:`INSTALLERS` is the registry the
executor uses and the stub tests compare with ``rivet.lua.surface``.
"""

from __future__ import annotations

from collections.abc import Callable

from rivet.engine.context import JobContext
from rivet.engine.modules import container, fs, http, input, json, log, output, process, secret
from rivet.lua.sandbox import Sandbox

__all__ = ["INSTALLERS", "install_all"]

INSTALLERS: dict[str, Callable[[Sandbox, JobContext], None]] = {
    "log": log.install,
    "input": input.install,
    "output": output.install,
    "process": process.install,
    "container": container.install,
    "secret": secret.install,
    "fs": fs.install,
    "json": json.install,
    "http": http.install,
}


def install_all(sandbox: Sandbox, ctx: JobContext) -> None:
    for installer in INSTALLERS.values():
        installer(sandbox, ctx)
