"""Object ids (uuid4 hex) and their resolution from a user-typed unique prefix.

A prefix may be typed in the dashed 8-4-4-4-12 form of a UUID too
(``3f2a9c1d-5e6f-…``, or the start of it), as other tools print ids: dashes exactly
where that form has them are dropped; a dash anywhere else makes it no id."""

from __future__ import annotations

import string
import uuid

from sqlalchemy import Column, Table, and_, func, select
from sqlalchemy.engine import Connection

from rivet.errors import AmbiguousIdError, NotFoundError

__all__ = ["MIN_PREFIX", "looks_like_id", "new_id", "resolve_prefix"]

MIN_PREFIX = 4
_HEX = frozenset(string.hexdigits.lower())
_UUID_DASHES = frozenset({8, 13, 18, 23})  # where str(uuid.UUID(...)) has its dashes


def _undashed(text: str) -> str:
    """``text`` without the dashes of a UUID's dashed form, if it is (the start of) one."""
    dashes_in_place = all((ch == "-") == (i in _UUID_DASHES) for i, ch in enumerate(text))
    if "-" in text and len(text) <= 36 and dashes_in_place:
        return text.replace("-", "")
    return text


def new_id() -> str:
    return uuid.uuid4().hex


def looks_like_id(text: str) -> bool:
    """True if ``text`` could be an id prefix (hex, at least :data:`MIN_PREFIX` chars)."""
    text = _undashed(text)
    return MIN_PREFIX <= len(text) <= 32 and set(text.lower()) <= _HEX


def resolve_prefix(conn: Connection, table: Table, prefix: str, kind: str) -> str:
    """The one id in ``table`` starting with ``prefix``.

    Raises ``NotFoundError`` if none (or the prefix is too short / not hex) and
    :class:`AmbiguousIdError` if several match.
    """
    if not looks_like_id(prefix):
        raise NotFoundError(
            f"no {kind} {prefix!r}: ids are hex, give at least {MIN_PREFIX} characters"
        )
    prefix = _undashed(prefix).lower()
    column: Column[str] = table.c.id
    # The range lets the primary-key index answer; LIKE keeps it exact under any collation.
    # 'g' sorts after every hex digit, so [prefix, prefix+'g') holds every extension.
    condition = and_(column >= prefix, column < prefix + "g", column.like(prefix + "%"))
    ids = list(conn.execute(select(column).where(condition).limit(2)).scalars())
    if not ids:
        raise NotFoundError(f"no {kind} with id {prefix!r}")
    if len(ids) > 1:
        count = conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
        raise AmbiguousIdError(kind, prefix, int(count))
    return ids[0]
