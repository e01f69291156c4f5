"""Secrets for ``rivet run``: from ``RIVET_SECRET_<NAME>`` environment variables and
from a local file (``--secret-file``). Locally every secret given is granted.

File formats, by extension: ``*.toml`` is a TOML table of ``NAME = "value"`` (at the
top level or under ``[secrets]``); anything else is ``.env`` style, one
``NAME=value`` per line (``export`` prefix allowed, ``#`` comment lines, values in
single quotes taken literally, in double quotes with ``\\n``, ``\\"`` and ``\\\\``
escapes, unquoted values stripped of surrounding blanks). Values in the file win
over the environment. Errors name the file and line, never the value.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from rivet.domain.env_names import ENV_NAME_PATTERN
from rivet.domain.secret_rules import check_name, check_value
from rivet.errors import ConfigError, RivetError
from rivet.settings import GROUPS

__all__ = ["ENV_PREFIX", "NOT_SECRETS", "local_secrets", "read_secret_file", "secrets_from_env"]

ENV_PREFIX = "RIVET_SECRET_"
# Variables under the prefix that are settings, not secrets: the server's encryption
# key, RIVET_SECRET_KEY (a secret named KEY can still be given in a file).
NOT_SECRETS = frozenset(
    s.env for group in GROUPS for s in group.settings() if s.env and s.env.startswith(ENV_PREFIX)
)
_ENV_LINE = re.compile(rf"\s*(?:export\s+)?({ENV_NAME_PATTERN})\s*=\s*(.*?)\s*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _checked(name: str, value: str, where: str) -> tuple[str, str]:
    try:
        return check_name(name), check_value(name, value)
    except RivetError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def secrets_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for variable, value in environ.items():
        if variable.startswith(ENV_PREFIX) and variable not in NOT_SECRETS:
            name, checked = _checked(variable[len(ENV_PREFIX) :], value, variable)
            found[name] = checked
    return found


def _unquote_double(text: str, where: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in _ESCAPES:
                raise ConfigError(f"{where}: unknown escape '\\{escaped}' in a double-quoted value")
            out.append(_ESCAPES[escaped])
        else:
            out.append(char)
    return "".join(out)


def _parse_env_file(text: str, path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise ConfigError(f"{where}: expected NAME=value")
        name, raw = match.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            value = raw[1:-1]
        elif len(raw) >= 2 and raw[0] == raw[-1] == '"':
            value = _unquote_double(raw[1:-1], where)
        elif raw[:1] in ("'", '"'):
            raise ConfigError(f"{where}: the quoted value of {name} is not closed on its line")
        else:
            value = raw
        key, checked = _checked(name, value, where)
        found[key] = checked
    return found


def _parse_toml_file(text: str, path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message names a position, not the text: safe to show.
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("secrets", data) if isinstance(data.get("secrets"), dict) else data
    found: dict[str, str] = {}
    for name, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {name}: the value must be a string")
        key, checked = _checked(name, value, str(path))
        found[key] = checked
    return found


def read_secret_file(path: Path, warn: Callable[[str], None]) -> dict[str, str]:
    """The secrets in ``path``; ``warn`` is told when others may read the file."""
    try:
        with path.open("r", encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: secret file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{path}: cannot read the secret file: {reason}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(
            f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"protect it with: chmod 600 {path}"
        )
    if path.suffix == ".toml":
        return _parse_toml_file(text, path)
    return _parse_env_file(text, path)


def local_secrets(
    environ: Mapping[str, str], path: Path | None, warn: Callable[[str], None]
) -> dict[str, str]:
    """Every secret ``rivet run`` gives its job: the environment's, then the file's."""
    found = secrets_from_env(environ)
    if path is not None:
        found.update(read_secret_file(path, warn))
    return found
