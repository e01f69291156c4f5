"""Rivet: CI/CD where pipelines are Lua scripts and every command runs in a container."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
