"""``[process]`` policy: which binaries ``process.run`` may start, timeouts, and how
much output a job may capture.

Binary rules look at ``argv[0]`` only. They are a guardrail against mistakes and
casual misuse, not a sandbox: a shell, an interpreter, ``env``, ``xargs`` or
``busybox`` can start anything, so denying ``curl`` means little unless ``sh``,
``bash``, ``env``, ``busybox``… are denied too (or an allow-list is used). The
container's limits, its network mode and the image rules are what actually confine
a command.
"""

from __future__ import annotations

import posixpath
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rivet.engine.limits import CAPTURE_SHARE
from rivet.engine.policy.sizes import size_field
from rivet.engine.policy.violation import PolicyViolation

__all__ = [
    "DEFAULT_MAX_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MIN_CAPTURE_BYTES",
    "ProcessPolicy",
    "binary_matches",
]

# One hour bounds a hung command; six hours is the longest job GitHub-hosted CI
# runs, so a build that needs more is unusual enough to ask the runner admin.
DEFAULT_TIMEOUT = 3600.0
DEFAULT_MAX_TIMEOUT = 21600.0


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
# Less would refuse the output of `git rev-parse HEAD` with its error message.
MIN_CAPTURE_BYTES = 1024


def binary_matches(pattern: str, argv0: str) -> bool:
    """Whether a binary rule matches ``argv[0]``.

    A pattern without ``/`` (``curl``, ``python3*``) is a glob on the program's base
    name, so it matches ``curl``, ``/usr/bin/curl`` and ``./curl`` alike. A pattern
    with ``/`` (``/usr/bin/git``) is a glob on the whole normalized path, so it
    matches ``/usr/bin/git`` and ``/usr/bin/../bin/git`` but not ``git`` or
    ``/tmp/git``.
    """
    path = posixpath.normpath(argv0)
    if "/" in pattern:
        return fnmatchcase(path, posixpath.normpath(pattern))
    return fnmatchcase(posixpath.basename(path), pattern)


class ProcessPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_binaries: tuple[str, ...] | None = None
    denied_binaries: tuple[str, ...] = ()
    default_timeout: Seconds | None = DEFAULT_TIMEOUT
    max_timeout: Seconds | None = DEFAULT_MAX_TIMEOUT
    # Bytes of captured stdout/stderr a job may hold at once; absent: a quarter of
    # the Lua memory limit (the captured text becomes a Lua string). No "0 = off":
    # without a cap, one command's output could take the runner's memory.
    max_capture_bytes: Annotated[int, Field(strict=True)] | None = None

    @field_validator("max_capture_bytes", mode="before")
    @classmethod
    def _capture_size(cls, value: object) -> object:
        return size_field(value)

    @field_validator("max_capture_bytes")
    @classmethod
    def _capture_at_least(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_CAPTURE_BYTES:
            raise ValueError(
                f"must be at least {MIN_CAPTURE_BYTES} bytes (there is no 'no limit': "
                "leave the key out for the default, a quarter of the Lua memory limit)"
            )
        return value

    @field_validator("default_timeout", "max_timeout", mode="before")
    @classmethod
    def _zero_is_none(cls, value: object) -> object:
        # TOML has no null: 0 is how a policy file says "no timeout" / "no maximum".
        return None if value == 0 and not isinstance(value, bool) else value

    @field_validator("allowed_binaries", "denied_binaries")
    @classmethod
    def _patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            if not pattern.strip():
                raise ValueError("a binary pattern must not be empty")
        return value

    @model_validator(mode="after")
    def _default_within_max(self) -> ProcessPolicy:
        if (
            self.default_timeout is not None
            and self.max_timeout is not None
            and self.default_timeout > self.max_timeout
        ):
            raise ValueError(
                f"process.default_timeout ({self.default_timeout:g} s) exceeds "
                f"process.max_timeout ({self.max_timeout:g} s)"
            )
        return self

    def check_binary(self, argv0: str) -> None:
        """Raise :class:`PolicyViolation` when ``argv0`` may not be started."""
        for pattern in self.denied_binaries:
            if binary_matches(pattern, argv0):
                rule = "process.denied_binaries"
                shown = f"'{argv0}'" if pattern == argv0 else f"'{argv0}' (rule '{pattern}')"
                raise PolicyViolation(rule, f"policy {rule} forbids {shown}")
        if self.allowed_binaries is not None and not any(
            binary_matches(pattern, argv0) for pattern in self.allowed_binaries
        ):
            rule = "process.allowed_binaries"
            allowed = ", ".join(self.allowed_binaries) or "nothing"
            raise PolicyViolation(
                rule, f"policy {rule} does not include '{argv0}' (allowed: {allowed})"
            )

    def capture_limit(self, lua_memory_bytes: int) -> int:
        """The effective ``max_capture_bytes`` for a job whose Lua state may use
        ``lua_memory_bytes``."""
        if self.max_capture_bytes is not None:
            return self.max_capture_bytes
        return max(MIN_CAPTURE_BYTES, lua_memory_bytes // CAPTURE_SHARE)

    def timeout_for(self, requested: float | None) -> float | None:
        """The timeout to run with: ``requested``, or the default when there is none.

        A request above the maximum is refused rather than clamped, so a pipeline never
        believes it has more time than it gets.
        """
        if requested is None:
            return self.default_timeout
        if self.max_timeout is not None and requested > self.max_timeout:
            rule = "process.max_timeout"
            raise PolicyViolation(
                rule,
                f"timeout {requested:g} s exceeds policy {rule} ({self.max_timeout:g} s)",
            )
        return requested
