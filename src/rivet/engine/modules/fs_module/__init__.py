"""The Lua ``fs`` module: files in the job workspace, jailed there.

``api`` holds the functions pipelines call and ``install``; ``jail`` resolves every
path without letting the kernel follow a symlink; ``tree`` does the descriptor-relative
writes, copies and globs; ``glue`` is the Lua side (argument checks, byte strings).
"""

from __future__ import annotations

from rivet.engine.modules.fs_module.api import install

__all__ = ["install"]
