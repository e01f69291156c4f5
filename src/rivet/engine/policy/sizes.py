"""Memory sizes in Podman's syntax (``512m``, ``2g``, ``1.5g``, ``1073741824``).

Units are binary multiples, as Podman reads them (``1k`` = 1024 bytes); parsing to
bytes lets the policy compare a default with its maximum.
"""

from __future__ import annotations

import re

__all__ = ["MIN_MEMORY", "memory_bytes", "size_field"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([bkmgt]?)", re.IGNORECASE)

# Podman refuses less (the container's init alone needs a few MiB).
MIN_MEMORY = 6 << 20


def memory_bytes(text: str) -> int:
    """Bytes in ``text``; ``ValueError`` with a readable message when it is not a size."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a memory size: use a number with an optional unit b, k, m, g "
            "or t, like '512m' or '2g'"
        )
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def size_field(value: object) -> object:
    """A policy size field before validation: text in Podman's syntax becomes bytes,
    anything else is left to the field's own type check."""
    if isinstance(value, str):
        return memory_bytes(value)
    return value
