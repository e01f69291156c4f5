"""One readable phrase per pydantic error in a policy file, naming the dotted key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

__all__ = ["describe_error"]


def describe_error(model: type[BaseModel], err: ErrorDetails, prefix: tuple[str, ...]) -> str:
    """``container.pull: must be 'never', 'missing' or 'always', got 'sometimes'``."""
    loc = tuple(str(part) for part in err["loc"] if not isinstance(part, int))
    key = ".".join(prefix + loc)
    items = [part for part in err["loc"] if isinstance(part, int)]
    if items:
        key += f" (item {items[-1] + 1})"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = ", ".join(_fields_at(model, loc[:-1]))
        what = "section" if len(loc) == 1 else "key"
        return f"{key}: unknown {what} (known: {known})"
    if kind == "value_error":
        message = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        # A cross-key check on a section names its keys itself.
        if len(loc) <= 1 and message.startswith(f"{loc[0]}." if loc else ""):
            return ".".join(prefix) + ": " + message if prefix else message
        return f"{key}: {message}"
    message = err["msg"].replace("Input should be", "must be")
    if kind in ("tuple_type", "list_type"):
        message = "must be a list"
    elif kind == "model_type":
        message = "must be a table"
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and kind != "missing":
        message += f", got {_toml(value)}"
    return f"{key}: {message}"


def _fields_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    current = model
    for part in loc:
        field = current.model_fields.get(part)
        annotation: Any = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields)


def _toml(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)
