"""Log levels per component: ``info`` or ``info,rivet.jobqueue=debug,httpx=warning``.

The first bare level is the root's; each ``logger=level`` sets that logger (and its
children, Python's logging hierarchy). ``trace`` is below ``debug`` (uvicorn's name for
its most verbose level)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["LEVEL_NAMES", "TRACE", "LogLevels", "parse_levels"]

TRACE = 5
LEVEL_NAMES: dict[str, int] = {
    "critical": 50,
    "error": 40,
    "warning": 30,
    "info": 20,
    "debug": 10,
    "trace": TRACE,
}
_LOGGER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class LogLevels:
    """The root level and the levels of named loggers (names as Python's logging)."""

    root: str = "info"
    loggers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.root, *(f"{name}={level}" for name, level in sorted(self.loggers.items()))]
        return ",".join(parts)


def _level(text: str) -> str:
    level = text.strip().lower()
    if level not in LEVEL_NAMES:
        raise ValueError(
            f"expected one of {', '.join(LEVEL_NAMES)} (optionally followed by "
            f",logger=level,...), got {text.strip()!r}"
        )
    return level


def parse_levels(spec: str) -> LogLevels:
    """``spec`` as a :class:`LogLevels`; ``ValueError`` naming the bad part."""
    root: str | None = None
    loggers: dict[str, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            if root is not None:
                raise ValueError(
                    f"two root levels ({root!r} and {part!r}); name a logger: NAME=LEVEL"
                )
            root = _level(part)
            continue
        name, _, level = part.partition("=")
        name = name.strip()
        if not _LOGGER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a logger name (like rivet.jobqueue)")
        loggers[name] = _level(level)
    if root is None and not loggers:
        raise ValueError("expected a level, e.g. info or info,rivet.jobqueue=debug")
    return LogLevels(root or "info", loggers)
