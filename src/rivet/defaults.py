"""Defaults shared by the CLI and the server, kept free of heavy imports so that
commands like ``rivet check`` start fast."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_PORT", "default_home"]

DEFAULT_PORT = 8420


def default_home() -> Path:
    """``~/.rivet``: where the embedded database, admin token and config live."""
    return Path("~/.rivet").expanduser()
