"""The environment of every process Rivet starts, built from scratch.

Rivet never hands its own environment to a child. The runner's environment holds its
own token, and often cloud credentials or an admin token; a child that inherited it
could pass any of it on (podman copies variables of its own environment into a
container for ``--env NAME``, ``--env 'NAME*'`` and proxy variables). So each child —
podman for every control call and command, the server and the runner that ``rivet
up`` starts — gets :func:`child_env`: the few variables below, plus the ones its
caller names explicitly. Nothing is ever taken from ``os.environ`` here.

``PATH``
    Fixed: :data:`SAFE_PATH`. podman needs the ``sbin`` directories (netavark runs
    ``iptables``; without ``/usr/sbin`` every container start fails with
    ``netavark: No such file or directory``). Programs are located by the caller
    with its own ``PATH`` first (:func:`resolve_program`), then run by absolute path.
``HOME``
    The account's home directory from the password database (never ``$HOME``):
    podman looks for per-user ``containers.conf`` and, rootless, for its storage
    there — where it would look without ``HOME`` too.
``XDG_RUNTIME_DIR``
    Only for a non-root account, and only when ``/run/user/<uid>`` is a directory
    it owns: rootless podman's runtime state (the same fallback podman uses itself).
``LANG``
    ``C.UTF-8``, so that Python children read and write UTF-8.

Operators who configure podman do it in its files (``containers.conf``,
``storage.conf``, ``registries.conf``), not in the runner's environment: a proxy for
image pulls, for instance, goes in ``[engine] env`` of ``containers.conf``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Mapping

from rivet.domain.env_names import check_env_name
from rivet.errors import RivetError

__all__ = ["SAFE_PATH", "child_env", "resolve_program"]

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _home() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir or "/"
    except KeyError:  # a uid without an account (some containers): nowhere to look
        return "/"


def _runtime_dir() -> str | None:
    uid = os.getuid()
    if uid == 0:
        return None
    path = f"/run/user/{uid}"
    try:
        info = os.stat(path)
    except OSError:
        return None
    return path if stat.S_ISDIR(info.st_mode) and info.st_uid == uid else None


def child_env(explicit: Mapping[str, str] | None = None, *, where: str) -> dict[str, str]:
    """The complete environment for a child process: the fixed base (module docstring)
    and then ``explicit``, whose names must follow the environment-name rule and whose
    values may hold no NUL; ``where`` names the caller in the error otherwise."""
    env = {"PATH": SAFE_PATH, "HOME": _home(), "LANG": "C.UTF-8"}
    runtime_dir = _runtime_dir()
    if runtime_dir is not None:
        env["XDG_RUNTIME_DIR"] = runtime_dir
    for name, value in (explicit or {}).items():
        check_env_name(name, where)
        if "\0" in value:
            raise RivetError(f"{where}: the value of {name} contains a NUL character")
        env[name] = value
    return env


def resolve_program(name: str) -> str:
    """``name`` as an absolute path, found with this process's own ``PATH`` (the
    operator's choice of program), else in :data:`SAFE_PATH`; ``name`` unchanged
    when it is in neither, so that running it fails with "not found"."""
    found = shutil.which(name) or shutil.which(name, path=SAFE_PATH)
    return os.path.abspath(found) if found else name
