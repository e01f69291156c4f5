"""docs/settings.md lists every setting — its variable, flags, config-file keys,
default and meaning — and this test holds that table to the declarations in
``rivet.settings.model``: a setting added, renamed or given a new default without the
page changing fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rivet.settings import GROUPS, ClientGroup, Setting
from rivet.settings.files import RunnerFile

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
HEADER = "| setting | variable | flags | config file key | default | what it is |"


def file_keys(setting: Setting[Any]) -> str:
    if not setting.file:
        return "—"
    if setting.group == ClientGroup.section:
        keys = [f"`{setting.name}` or `[client] {setting.name}`"]
    else:
        keys = [f"`[{setting.group}] {setting.name}`"]
    keys += [f"runner.toml `{key}`" for key, s in RunnerFile.KEYS.items() if s is setting]
    return "; ".join(keys)


def expected_rows() -> list[str]:
    rows = []
    for group in GROUPS:
        for s in group.settings():
            flags = ", ".join(f"`{f}`" for f in s.flags) or "—"
            default = s.default_text or "not set"
            cells = [f"`{s.path}`", f"`{s.env}`", flags, file_keys(s), default, s.help]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return rows


def documented_rows() -> list[str]:
    lines = DOC.read_text("utf-8").splitlines()
    start = lines.index(HEADER) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_settings_page_lists_every_setting_as_declared() -> None:
    assert documented_rows() == expected_rows()


def test_the_page_names_every_group_and_the_precedence() -> None:
    text = DOC.read_text("utf-8")
    assert "flag > environment variable > config file > default" in text
    for group in GROUPS:
        if group.section:
            assert re.search(rf"`\[{group.section}\]`", text), group.section


def test_the_page_says_which_command_takes_which_flag() -> None:
    from rivet.settings.flags import RUN_FLAGS, RUNNER_FLAGS, SERVER_FLAGS, UP_FLAGS

    text = DOC.read_text("utf-8")
    for command, settings in [
        ("`rivet server`, `python -m rivet.cli.server`", SERVER_FLAGS),
        ("`rivet runner`, `python -m rivet.runner`", RUNNER_FLAGS),
        ("`rivet up`", UP_FLAGS),
        ("`rivet run`", RUN_FLAGS),
    ]:
        flags = ", ".join(f"`{s.flags[0]}`" for s in settings)
        assert f"| {command} | {flags} |" in text, command
