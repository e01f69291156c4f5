"""The config files and where each setting sits in them.

``$RIVET_HOME/config`` (TOML; read by every Rivet process)::

    server = "https://ci.example.com"   # client.server       (or [client] server)
    admin_token = "rivet_admin_…"       # client.admin_token  (or [client] admin_token)

    [server]                            # rivet server: one key per server.* setting
    log_level = "debug"
    [runner]                            # runner.*  (name, tags, concurrency)
    [jobs]                              # jobs.*    (workspace_root, default_image, policy)
    [lua]                               # lua.*     (memory_mib, definition_seconds, …)

The top-level ``server`` and ``admin_token`` are the CLI's, as they always were; a
string ``server`` and a ``[server]`` table cannot both be in one TOML file, so a file
with server settings spells the URL ``[client] server``. An unknown key inside a
table is an error naming it; unknown top-level keys are left alone (older files).

The runner's file (``runner.config``, default ``$RIVET_HOME/runner.toml``; read by
the runner and ``rivet up`` only, before ``config``) keeps its flat layout::

    server = "http://ci:8420"           # client.server
    name = "build-box-1"                # runner.name
    concurrency = 2                     # runner.concurrency
    default_image = "alpine:latest"     # jobs.default_image
    workspace_root = "/var/lib/rivet"   # jobs.workspace_root
    policy = "policy.toml"              # jobs.policy, relative to this file
    plugin_dirs = ["plugins"]           # jobs.plugin_dirs, relative to this file
    [tags]                              # runner.tags
    os = "linux"

plus the ``token`` and ``runner_id`` registration saves (:mod:`rivet.runner.config_file`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rivet.home import tighten
from rivet.settings.model import GROUPS, ClientGroup, CoreGroup, JobsGroup, RunnerGroup
from rivet.settings.spec import Setting, SettingError
from rivet.tomlfile import read_optional_toml

__all__ = ["ConfigFile", "HomeConfig", "RunnerFile"]

Hit = tuple[object, str]  # the raw value, and where it sits ("/x/config: [server] port")


class ConfigFile:
    """One TOML file, read on first use; :meth:`lookup` finds a setting in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self.read()
        return self._data

    def read(self) -> dict[str, Any]:
        return read_optional_toml(self.path)

    def lookup(self, setting: Setting[Any]) -> Hit | None:
        raise NotImplementedError


class HomeConfig(ConfigFile):
    """``$RIVET_HOME/config``: the client's keys at the top, one table per group."""

    # Top-level keys of the client group, as the CLI has always read them.
    TOP_LEVEL = frozenset(s.name for s in ClientGroup.settings())

    def read(self) -> dict[str, Any]:
        tighten(self.path)  # it may hold the admin token: never for other users' eyes
        data = super().read()
        for group in GROUPS:
            if group is CoreGroup or group.section not in data:
                continue
            table = data[group.section]
            if not isinstance(table, Mapping):
                if group.section in self.TOP_LEVEL:
                    continue  # `server = "…"`: the client's URL, checked as such
                raise SettingError(
                    f"{self.path}: {group.section}",
                    f"expected a table of settings ([{group.section}])",
                )
            known = {s.name for s in group.settings() if s.file}
            for key in table:
                if key not in known:
                    raise SettingError(
                        f"{self.path}: [{group.section}] {key}",
                        f"unknown setting (known: {', '.join(sorted(known))})",
                    )
        for key in self.TOP_LEVEL:
            client = data.get("client")
            top = data.get(key)
            if (
                top is not None
                and not isinstance(top, Mapping)
                and isinstance(client, Mapping)
                and key in client
            ):
                raise SettingError(
                    f"{self.path}: {key}", "given both at the top and in [client]; keep one"
                )
        return data

    def lookup(self, setting: Setting[Any]) -> Hit | None:
        data = self.data
        if setting.group == ClientGroup.section and setting.name in data:
            value = data[setting.name]
            if not isinstance(value, Mapping):
                return value, f"{self.path}: {setting.name}"
        table = data.get(setting.group)
        if isinstance(table, Mapping) and setting.name in table:
            return table[setting.name], f"{self.path}: [{setting.group}] {setting.name}"
        return None


class RunnerFile(ConfigFile):
    """The runner's own file: flat keys, each naming one setting."""

    KEYS: Mapping[str, Setting[Any]] = {
        "server": ClientGroup.server,
        "name": RunnerGroup.name,
        "tags": RunnerGroup.tags,
        "concurrency": RunnerGroup.concurrency,
        "default_image": JobsGroup.default_image,
        "workspace_root": JobsGroup.workspace_root,
        "policy": JobsGroup.policy,
        "plugin_dirs": JobsGroup.plugin_dirs,
    }

    def lookup(self, setting: Setting[Any]) -> Hit | None:
        for key, known in self.KEYS.items():
            if known is setting and key in self.data:
                return self.data[key], f"{self.path}: {key}"
        return None
