"""``[fs]`` policy for the ``fs`` module: per-file and per-job write limits, read cap,
and caps on the paths it handles.

Sizes are bytes, given as an integer (``67108864``) or in Podman's size syntax
(``"64m"``, ``"1g"``: binary units); ``0`` means no limit (TOML has no null). The
limits cover what the ``fs`` module writes; commands run by ``process.run`` write
to the workspace directly and are bounded by the container's own limits instead.

Path caps (``max_depth``, ``max_path_bytes``, ``max_name_bytes``) always apply; they
keep every path the fs module takes or makes usable by the kernel (PATH_MAX 4096,
NAME_MAX 255) and by tools run on the workspace, and bound the walks of ``fs.copy``
and ``fs.glob``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rivet.engine.policy.sizes import size_field
from rivet.engine.policy.violation import PolicyViolation

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_JOB_BYTES",
    "DEFAULT_MAX_NAME_BYTES",
    "DEFAULT_MAX_PATH_BYTES",
    "DEFAULT_MAX_READ_BYTES",
    "FsPolicy",
    "format_size",
]

MiB = 1 << 20
GiB = 1 << 30
# 64 MiB holds any generated config, report or manifest a pipeline writes itself
# (bigger artifacts are produced by commands in containers); 1 GiB per job stops a
# runaway loop from filling the runner's disk. Reads are capped at the same 64 MiB
# because the file must fit in the Lua state (256 MiB by default) with room to spare.
DEFAULT_MAX_FILE_BYTES = 64 * MiB
DEFAULT_MAX_JOB_BYTES = 1 * GiB
DEFAULT_MAX_READ_BYTES = 64 * MiB
# Linux's own PATH_MAX and NAME_MAX; 128 levels is several times what real trees
# (node_modules, Java packages) reach, and keeps the copy/glob walks shallow.
DEFAULT_MAX_PATH_BYTES = 4096
DEFAULT_MAX_NAME_BYTES = 255
DEFAULT_MAX_DEPTH = 128

Size = Annotated[int, Field(ge=0, strict=True)]


def format_size(size: int) -> str:
    """``67108864`` → ``64 MiB``; sizes that are not whole KiB/MiB/GiB stay in bytes."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


class FsPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_bytes: Size = DEFAULT_MAX_FILE_BYTES
    max_job_bytes: Size = DEFAULT_MAX_JOB_BYTES
    max_read_bytes: Size = DEFAULT_MAX_READ_BYTES
    # No "0 = unlimited" here: the walks that use them must stay bounded.
    max_path_bytes: Annotated[int, Field(ge=1, le=65536, strict=True)] = DEFAULT_MAX_PATH_BYTES
    max_name_bytes: Annotated[int, Field(ge=1, le=255, strict=True)] = DEFAULT_MAX_NAME_BYTES
    max_depth: Annotated[int, Field(ge=1, le=512, strict=True)] = DEFAULT_MAX_DEPTH

    @field_validator("max_file_bytes", "max_job_bytes", "max_read_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return size_field(value)

    def check_file_size(self, size: int) -> None:
        """Refuse a file that would end up ``size`` bytes long."""
        limit = self.max_file_bytes
        if limit and size > limit:
            rule = "fs.max_file_bytes"
            raise PolicyViolation(
                rule, f"the file would be {size} bytes, over policy {rule} ({format_size(limit)})"
            )

    def check_job_total(self, written: int, adding: int) -> None:
        """Refuse writing ``adding`` more bytes when the job already wrote ``written``."""
        limit = self.max_job_bytes
        if limit and written + adding > limit:
            rule = "fs.max_job_bytes"
            raise PolicyViolation(
                rule,
                f"writing {adding} bytes would bring this job's fs writes to "
                f"{written + adding} bytes, over policy {rule} ({format_size(limit)}; "
                f"{written} bytes written so far)",
            )

    def check_read_size(self, size: int) -> None:
        limit = self.max_read_bytes
        if limit and size > limit:
            rule = "fs.max_read_bytes"
            raise PolicyViolation(
                rule, f"the file is {size} bytes, over policy {rule} ({format_size(limit)})"
            )
