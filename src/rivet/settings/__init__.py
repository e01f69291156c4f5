"""Rivet's settings: one model, one precedence (flag > env > config file > default).

- :mod:`.model` declares every setting once, in groups (``client``, ``server``,
  ``runner``, ``jobs``, ``lua``, ``up``, and ``home`` at the root);
- :mod:`.root` resolves them (:func:`load_settings`) and remembers where each value
  came from;
- :mod:`.files` says where each setting sits in ``$RIVET_HOME/config`` and in the
  runner's ``runner.toml``;
- :mod:`.flags` builds command-line flags from the declarations (argparse here, typer
  in :mod:`rivet.cli.flags`), so each flag is declared once.

Used by the server, the runner, the CLI and ``rivet up`` alike; documented in
docs/cli.md ("Settings") and docs/development.md ("Adding a setting").
"""

from __future__ import annotations

from rivet.settings.kinds import SecretText, parse_tags
from rivet.settings.model import (
    DEFAULT_SERVER,
    GROUPS,
    JOB_TERMS,
    ClientGroup,
    CoreGroup,
    JobsGroup,
    LuaGroup,
    RunnerGroup,
    ServerGroup,
    UpGroup,
)
from rivet.settings.root import Entry, Flags, RivetSettings, load_settings
from rivet.settings.spec import Group, Setting, SettingError, Source

__all__ = [
    "DEFAULT_SERVER",
    "GROUPS",
    "JOB_TERMS",
    "ClientGroup",
    "CoreGroup",
    "Entry",
    "Flags",
    "Group",
    "JobsGroup",
    "LuaGroup",
    "RivetSettings",
    "RunnerGroup",
    "SecretText",
    "ServerGroup",
    "Setting",
    "SettingError",
    "Source",
    "UpGroup",
    "load_settings",
    "parse_tags",
]
