"""Which settings each process takes as flags, and argparse built from them.

A command's flags are listed here once, as settings; their names, help, variable and
default come from the declarations in :mod:`rivet.settings.model`. The typer commands
(:mod:`rivet.cli.flags`) and the argparse entry points that ``rivet up`` starts
(``python -m rivet.runner``, ``python -m rivet.cli.server``, without the typer CLI)
are both built from these tuples, so the two never drift apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rivet.settings.model import ClientGroup, CoreGroup, JobsGroup, RunnerGroup, ServerGroup
from rivet.settings.spec import Setting

__all__ = [
    "RUNNER_FLAGS",
    "RUN_FLAGS",
    "SERVER_FLAGS",
    "UP_FLAGS",
    "add_arguments",
    "dest",
    "flags_from",
]

SERVER_FLAGS: tuple[Setting[Any], ...] = (
    ServerGroup.host,
    ServerGroup.port,
    ServerGroup.database_url,
    CoreGroup.home,
)
RUNNER_FLAGS: tuple[Setting[Any], ...] = (
    ClientGroup.server,
    RunnerGroup.token,
    RunnerGroup.registration_token,
    RunnerGroup.name,
    RunnerGroup.tags,
    RunnerGroup.pool,
    RunnerGroup.concurrency,
    JobsGroup.default_image,
    JobsGroup.workspace_root,
    RunnerGroup.config,
    JobsGroup.policy,
)
UP_FLAGS: tuple[Setting[Any], ...] = (
    ServerGroup.port,
    ServerGroup.host,
    CoreGroup.home,
    RunnerGroup.concurrency,
    RunnerGroup.tags,
    JobsGroup.policy,
)
RUN_FLAGS: tuple[Setting[Any], ...] = (
    JobsGroup.workspace_root,
    JobsGroup.default_image,
    JobsGroup.policy,
)


def dest(setting: Setting[Any]) -> str:
    """The parameter name a parser stores the flag under (unique across groups)."""
    return "setting_" + setting.path.replace(".", "__")


def add_arguments(parser: argparse.ArgumentParser, settings: Sequence[Setting[Any]]) -> None:
    """One argparse option per setting (repeatable ones append)."""
    for setting in settings:
        options: dict[str, Any] = {
            "dest": dest(setting),
            "metavar": setting.name.upper(),
            "default": None,
            "help": setting.help_text().replace("%", "%%"),
        }
        if setting.kind.repeatable:
            options["action"] = "append"
        else:
            options["type"] = setting.kind.cli_type
        parser.add_argument(*setting.flags, **options)


def flags_from(
    args: argparse.Namespace, settings: Sequence[Setting[Any]]
) -> dict[Setting[Any], object]:
    """The flags given, by setting (absent ones left out)."""
    given = {setting: getattr(args, dest(setting)) for setting in settings}
    return {setting: value for setting, value in given.items() if value is not None}
