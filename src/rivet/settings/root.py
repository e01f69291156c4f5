"""``load_settings``: the one precedence, implemented once.

Each setting's value is the first of:

1. **flag** — given on the command line (or by the caller, e.g. ``rivet up`` or a test);
2. **env** — its ``RIVET_*`` environment variable (an empty variable counts as unset);
3. **file** — the config files, in order: the runner's file first (for the runner and
   ``rivet up``), then ``$RIVET_HOME/config`` (layout: :mod:`rivet.settings.files`);
4. **default** — its declared default, which may depend on the home.

The home itself (``--home``, ``RIVET_HOME``, ``~/.rivet``) and the runner's file
(``--config``, ``RIVET_RUNNER_CONFIG``, ``$RIVET_HOME/runner.toml``) are resolved from
flag, env and default only, since they say which files there are.

Groups are resolved on first use, so a bad ``RIVET_PORT`` troubles the server and
``rivet config show``, not ``rivet job list``. Every value keeps its :class:`Source`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from rivet.home import RivetHome, default_home
from rivet.settings.files import ConfigFile, HomeConfig, RunnerFile
from rivet.settings.model import (
    GROUPS,
    ArtifactsGroup,
    ClientGroup,
    CoreGroup,
    JobsGroup,
    LuaGroup,
    RunnerGroup,
    ServerGroup,
    UpGroup,
)
from rivet.settings.spec import Computed, Group, Setting, SettingError, Source

__all__ = ["Entry", "Flags", "RivetSettings", "load_settings"]

G = TypeVar("G", bound=Group)

# What a command line (or a caller) gave, by setting; None or empty means "not given".
Flags = Mapping[Setting[Any], object]


def _given(value: object) -> bool:
    return value is not None and value != "" and value != [] and value != ()


class _Resolver:
    def __init__(self, flags: Flags, env: Mapping[str, str], runner: bool) -> None:
        self.given = flags
        self._flags = {s: v for s, v in flags.items() if _given(v)}
        self.env = env
        self.runner = runner
        self._files: list[ConfigFile] | None = None
        root, self.home_source = self._resolve(CoreGroup.home, RivetHome(default_home()), ())
        self.paths = RivetHome(root)

    def files(self) -> list[ConfigFile]:
        if self._files is None:
            files: list[ConfigFile] = []
            if self.runner:
                files.append(RunnerFile(self.resolve(RunnerGroup.config)[0]))
            files.append(HomeConfig(self.paths.config))
            self._files = files
        return self._files

    def resolve(self, setting: Setting[Any]) -> tuple[Any, Source]:
        if setting is CoreGroup.home:
            return self.paths.root, self.home_source
        return self._resolve(setting, self.paths, self.files() if setting.file else ())

    def _resolve(
        self, setting: Setting[Any], paths: RivetHome, files: list[ConfigFile] | tuple[()]
    ) -> tuple[Any, Source]:
        if setting in self._flags:
            where = setting.flags[0] if setting.flags else f"{setting.path} (set by the caller)"
            return _convert(setting, self._flags[setting], where), Source("flag", where)
        if setting.env and self.env.get(setting.env):
            value = _convert(setting, self.env[setting.env], setting.env)
            return value, Source("env", setting.env)
        for file in files:
            hit = file.lookup(setting)
            if hit is not None and _given(hit[0]):
                raw, where = hit
                return _convert(setting, raw, where, file.path.parent), Source("file", where)
        default = setting.default
        if isinstance(default, Computed):
            return default.compute(paths), Source("default", default.text)
        # "Not set" says what happens then (SQLite in the home, the built-in policy).
        where = setting.default_text or "" if default is None else ""
        return copy.copy(default), Source("default", where)

    def group(self, cls: type[G]) -> G:
        values: dict[str, Any] = {}
        sources: dict[str, Source] = {}
        for setting in cls.settings():
            values[setting.name], sources[setting.name] = self.resolve(setting)
        return cls(values, sources)


def _convert(setting: Setting[Any], raw: object, where: str, base: Path | None = None) -> Any:
    try:
        return setting.kind.convert(raw, base)
    except ValueError as exc:
        raise SettingError(where, str(exc)) from None


@dataclass(frozen=True)
class Entry:
    """One line of ``rivet config show``: the value as shown (secrets masked) and where
    it came from, or the error resolving it."""

    setting: Setting[Any]
    shown: str
    source: Source | None
    error: str | None = None


class RivetSettings:
    """The settings of one process, resolved with :func:`load_settings`."""

    def __init__(self, resolver: _Resolver) -> None:
        self._resolver = resolver

    @property
    def home(self) -> Path:
        return self._resolver.paths.root

    @property
    def paths(self) -> RivetHome:
        """Every path under the home (:class:`rivet.home.RivetHome`)."""
        return self._resolver.paths

    @cached_property
    def client(self) -> ClientGroup:
        return self._resolver.group(ClientGroup)

    @cached_property
    def server(self) -> ServerGroup:
        return self._resolver.group(ServerGroup)

    @cached_property
    def runner(self) -> RunnerGroup:
        return self._resolver.group(RunnerGroup)

    @cached_property
    def jobs(self) -> JobsGroup:
        return self._resolver.group(JobsGroup)

    @cached_property
    def lua(self) -> LuaGroup:
        return self._resolver.group(LuaGroup)

    @cached_property
    def up(self) -> UpGroup:
        return self._resolver.group(UpGroup)

    @cached_property
    def artifacts(self) -> ArtifactsGroup:
        return self._resolver.group(ArtifactsGroup)

    def replace(self, flags: Flags) -> RivetSettings:
        """The same settings with more ``flags`` (later ones win): e.g. a test's server
        with a different poll interval."""
        resolver = self._resolver
        return RivetSettings(_Resolver({**resolver.given, **flags}, resolver.env, resolver.runner))

    def source(self, setting: Setting[Any]) -> Source:
        """Where ``setting``'s value came from (resolving it if needed)."""
        return self._resolver.resolve(setting)[1]

    @property
    def files(self) -> list[Path]:
        """The config files this process reads, in order of precedence."""
        return [file.path for file in self._resolver.files()]

    def entries(self) -> list[Entry]:
        """Every setting with its value and source, a bad one with its error instead
        (``rivet config show`` lists them all rather than stopping at the first)."""
        entries: list[Entry] = []
        for group in GROUPS:
            for setting in group.settings():
                try:
                    value, source = self._resolver.resolve(setting)
                except SettingError as exc:
                    entries.append(Entry(setting, "", None, str(exc)))
                    continue
                entries.append(Entry(setting, setting.kind.show(value), source))
        return entries


def load_settings(
    flags: Flags | None = None, env: Mapping[str, str] | None = None, *, runner: bool = False
) -> RivetSettings:
    """The settings as this process sees them: ``flags`` over ``env`` (default: this
    process's environment) over the config files (the runner's file first when
    ``runner``) over the defaults. Raises :class:`~rivet.settings.spec.SettingError`
    for a bad home or runner-file setting here, for any other one on its group's
    first use."""
    return RivetSettings(_Resolver(flags or {}, os.environ if env is None else env, runner))
