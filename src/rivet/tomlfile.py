"""Reading optional TOML files (``$RIVET_HOME/config``, ``runner.toml``) with errors
that name the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rivet.errors import ConfigError

__all__ = ["read_optional_toml"]


def read_optional_toml(path: Path) -> dict[str, Any]:
    """The file's table, or ``{}`` when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
