"""Defaults shared by the CLI, the server and the engine, kept free of heavy imports so
that commands like ``rivet check`` start fast. The settings that use them are
declared in :mod:`rivet.settings.model`; the home directory is :mod:`rivet.home`."""

from __future__ import annotations

__all__ = ["DEFAULT_IMAGE", "DEFAULT_PORT"]

DEFAULT_PORT = 8420
# The image for commands run outside any container.with / stage container.
DEFAULT_IMAGE = "alpine:latest"
