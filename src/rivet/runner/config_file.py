"""The runner's config file (default ``$RIVET_HOME/runner.toml``): the registration
saved in it, and saving the permanent token a registration returned.

Its settings (``server``, ``name``, ``concurrency``, ``default_image``,
``workspace_root``, ``policy``, ``[tags]``) are read through the settings chain (see
:mod:`rivet.settings.files`); this module handles what registration writes::

    server = "http://rivet.example:8420"
    token = "rivet_runner_..."
    runner_id = "..."
    name = "build-box-1"

The file holds a secret, so it is written with mode 0600, atomically (a crash leaves
the old file or the new one, never half of one), keeping every other key as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rivet.errors import ConfigError
from rivet.home import make_private_dir
from rivet.settings.kinds import ServerUrl
from rivet.tomlfile import read_optional_toml

__all__ = ["read_runner_file", "save_registration", "saved_registration"]

_SCALARS = (str, int, float, bool)


def read_runner_file(path: Path) -> dict[str, Any]:
    """The file's table, or ``{}`` when it does not exist."""
    return read_optional_toml(path)


def saved_registration(path: Path, server: str) -> tuple[str | None, str | None]:
    """The token and runner id saved in ``path``, when they were issued by ``server``
    (a saved server that does not even parse as a URL is another server); else
    ``(None, None)``."""
    saved = read_runner_file(path)
    token = saved.get("token")
    if not token or not isinstance(token, str):
        return None, None
    saved_server = saved.get("server")
    if saved_server is not None:
        try:
            same = ServerUrl().convert(saved_server) == server
        except ValueError:
            same = False
        if not same:
            return None, None
    runner_id = saved.get("runner_id")
    return token, str(runner_id) if runner_id is not None else None


def save_registration(path: Path, *, server: str, runner_id: str, token: str, name: str) -> None:
    """Record a registration in ``path`` (created with mode 0600 if missing)."""
    data = read_runner_file(path)
    data.update(server=server, runner_id=runner_id, token=token, name=name)
    _write_private(path, _dump(data))


def _write_private(path: Path, text: str) -> None:
    make_private_dir(path.parent)  # the token's directory: RIVET_HOME, or --config's
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created 0600 from the start: the token is never readable by others, not even
    # between open and chmod. The umask can only remove bits, so chmod to be exact.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _dump(data: Mapping[str, Any]) -> str:
    """TOML for the shapes this file uses: scalars, lists of scalars, tables of those."""
    head: list[str] = []
    tables: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append(f"\n[{_key(key)}]")
            tables.extend(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        else:
            head.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(head + tables) + "\n"


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _value(value: Any) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to the runner config file")
