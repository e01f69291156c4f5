"""The Lua ``process`` module: ``process.run`` and ``process.parallel``.

``api`` runs commands through the container backend and schedules parallel ones;
``options`` parses and checks what ``process.run`` is given.
"""

from __future__ import annotations

from rivet.engine.modules.process_module.api import install

__all__ = ["install"]
