"""The definition fields that bound how a job runs: ``lease``, ``timeout`` (pipeline and
stage) and ``retry``; each problem names the field and the line, like every other
field (see :mod:`rivet.lua.validation`, which calls these).

The bounds are :mod:`rivet.domain.reliability`'s, so a definition the server stores is
one its reaper and the runner can act on.
"""

from __future__ import annotations

from typing import Any

from rivet.domain.reliability import (
    MAX_BACKOFF,
    MAX_LEASE,
    MAX_RETRIES,
    MAX_TIMEOUT,
    MIN_LEASE,
    RETRY_CAUSES,
    RetryPolicy,
)
from rivet.errors import Problem
from rivet.lua.lua_values import array_values, is_array, is_table, key_text, raw, render, type_name

__all__ = ["RETRY_FIELDS", "retry_policy", "seconds"]

RETRY_FIELDS = ("max", "on", "backoff")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds(
    value: Any, field: str, low: float, high: float, problems: list[Problem], line: int | None
) -> float | None:
    """A duration in seconds within ``[low, high]``, or None (absent or wrong)."""
    if value is None:
        return None
    if not _number(value) or value != value:  # NaN is not a duration
        problems.append(
            Problem(field, f"expected a number of seconds, got {type_name(value)}", line)
        )
        return None
    if not low <= value <= high:
        problems.append(
            Problem(field, f"must be between {low:g} and {high:g} seconds, got {value:g}", line)
        )
        return None
    return float(value)


def lease(value: Any, problems: list[Problem], line: int | None) -> float | None:
    return seconds(value, "lease", MIN_LEASE, MAX_LEASE, problems, line)


def timeout(value: Any, field: str, problems: list[Problem], line: int | None) -> float | None:
    return seconds(value, field, MIN_LEASE, MAX_TIMEOUT, problems, line)


def retry_policy(value: Any, problems: list[Problem], line: int | None) -> RetryPolicy | None:
    """``retry = { max = N, on = { "lost", ... }, backoff = S }``: every problem at once."""
    if value is None:
        return None
    if not is_table(value) or (is_array(value) and len(raw(value)) > 0):
        problems.append(
            Problem(
                "retry",
                f"expected a table {{ max = ..., on = ..., backoff = ... }}, got "
                f"{type_name(value)}",
                line,
            )
        )
        return None
    spec = raw(value)
    before = len(problems)
    for key in spec:
        if key not in RETRY_FIELDS:
            problems.append(
                Problem(
                    f"retry.{key_text(key)}",
                    f"unknown field (allowed: {', '.join(RETRY_FIELDS)})",
                    line,
                )
            )
    most = spec["max"]
    if most is None:
        problems.append(Problem("retry.max", "is required (retries after the first attempt)", line))
    elif not isinstance(most, int) or isinstance(most, bool) or not 0 <= most <= MAX_RETRIES:
        problems.append(
            Problem(
                "retry.max", f"must be an integer from 0 to {MAX_RETRIES}, got {render(most)}", line
            )
        )
    causes = ("lost",)
    on = spec["on"]
    if on is not None:
        if not is_table(on) or not is_array(on) or len(raw(on)) == 0:
            problems.append(
                Problem(
                    "retry.on",
                    f"expected a non-empty list of {_causes()}, got {type_name(on)}",
                    line,
                )
            )
        else:
            found = []
            for position, item in enumerate(array_values(on), start=1):
                if item not in RETRY_CAUSES:
                    problems.append(
                        Problem(
                            f"retry.on[{position}]",
                            f"must be one of {_causes()}, got {render(item)}",
                            line,
                        )
                    )
                elif item not in found:
                    found.append(item)
            causes = tuple(found)
    backoff = seconds(spec["backoff"], "retry.backoff", 0, MAX_BACKOFF, problems, line)
    if len(problems) > before:
        return None
    return RetryPolicy(max=int(most), on=causes, backoff=5.0 if backoff is None else backoff)


def _causes() -> str:
    return ", ".join(f'"{cause}"' for cause in RETRY_CAUSES)
