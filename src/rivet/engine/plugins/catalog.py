"""Finding plugins: the built-in ones shipped in the package and third-party ones in
the runner's plugin directories (``jobs.plugin_dirs`` / ``RIVET_PLUGIN_PATH``).

A plugin is a directory holding ``plugin.toml`` (its manifest) and ``init.lua`` (the
module; the chunk returns the plugin's table). The manifest::

    name = "hello"               # the global the pipeline uses; [a-z][a-z0-9_]*
    version = "1.0.0"
    description = "greets"
    images = []                  # images its commands use (documentation, `plugin list`)
    modules = ["log", "process"] # the core modules it may use (nothing else is visible)

Rules, because a plugin directory is not trusted more than pipeline code:

- a name that is a core module, a definition module or a sandbox global (``fs``,
  ``pipeline``, ``string``…) is refused: a plugin can never replace one;
- a built-in's name cannot be taken by a third-party plugin, and of two third-party
  plugins with one name the first directory wins; the other is reported (never
  loaded), so a plugin can never replace another;
- ``modules`` may name core modules only.

Problems in a directory are collected as messages (``Catalog.problems``) so that one
bad plugin does not stop a runner; asking for it fails the job naming the problem.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rivet.lua.surface import DEFINITION_MODULES, RUNTIME_MODULES, SANDBOX_GLOBALS

__all__ = ["BUILTIN_DIR", "STUB", "Catalog", "Manifest", "Plugin", "discover"]

BUILTIN_DIR = Path(str(resources.files("rivet.engine.plugins").joinpath("builtin")))
MANIFEST = "plugin.toml"
MODULE = "init.lua"
# Optional: LuaLS annotations for the plugin, written by `rivet init lua`.
STUB = "stub.lua"
# Plugin sources are read into the Lua state: a generous cap keeps a hostile one small.
MAX_SOURCE_BYTES = 1 << 20
RESERVED = frozenset(RUNTIME_MODULES) | frozenset(DEFINITION_MODULES) | frozenset(SANDBOX_GLOBALS)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME.pattern)
    version: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)
    images: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plugin:
    manifest: Manifest
    directory: Path
    builtin: bool

    @property
    def name(self) -> str:
        return self.manifest.name

    def source(self) -> str:
        path = self.directory / MODULE
        data = path.read_bytes()
        if len(data) > MAX_SOURCE_BYTES:
            raise ValueError(f"{path} is over {MAX_SOURCE_BYTES} bytes")
        return data.decode("utf-8")


@dataclass
class Catalog:
    """Plugins by name, and what was wrong with the ones that were not taken."""

    plugins: dict[str, Plugin] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def versions(self) -> dict[str, str]:
        return {name: p.manifest.version for name, p in sorted(self.plugins.items())}


def _read(directory: Path, builtin: bool) -> Plugin:
    path = directory / MANIFEST
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the manifest: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise ValueError(f"{path}: {where}: {first['msg']}") from None
    if manifest.name in RESERVED:
        raise ValueError(
            f"{path}: name '{manifest.name}' is a core module or sandbox global; "
            "a plugin can never replace one"
        )
    unknown = [m for m in manifest.modules if m not in RUNTIME_MODULES]
    if unknown:
        raise ValueError(
            f"{path}: modules: {', '.join(unknown)} not core modules "
            f"(known: {', '.join(RUNTIME_MODULES)})"
        )
    if not (directory / MODULE).is_file():
        raise ValueError(f"{directory}: no {MODULE}")
    return Plugin(manifest, directory, builtin)


def _candidates(root: Path) -> list[Path]:
    """``root`` itself when it is one plugin, else its subdirectories with a manifest."""
    if (root / MANIFEST).is_file():
        return [root]
    try:
        return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())
    except OSError:
        return []


def discover(dirs: Iterable[Path] = ()) -> Catalog:
    """The built-in plugins, then those in ``dirs`` (in order; first one wins)."""
    catalog = Catalog()
    roots = [(BUILTIN_DIR, True)] + [(Path(d), False) for d in dirs]
    for root, builtin in roots:
        for directory in _candidates(root):
            try:
                plugin = _read(directory, builtin)
            except ValueError as exc:
                catalog.problems.setdefault(directory.name, str(exc))
                continue
            taken = catalog.plugins.get(plugin.name)
            if taken is not None:
                kind = "a built-in" if taken.builtin else "another"
                catalog.problems[f"{plugin.name}@{directory}"] = (
                    f"{directory}: plugin '{plugin.name}' is {kind} plugin's name "
                    f"(from {taken.directory}); not loaded: a plugin never replaces another"
                )
                continue
            catalog.plugins[plugin.name] = plugin
    return catalog
