"""Wire models of job logs, re-exported by :mod:`rivet.protocol`: the lines a runner
sends (``LogBatch``, capped per line and per batch) and the pages clients read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from rivet import limits

__all__ = ["Level", "LogBatch", "LogLine", "LogPage", "Stream"]

Level = Literal["debug", "info", "warning", "error"]
Stream = Literal["stdout", "stderr"]


class LogLine(BaseModel):
    seq: int = Field(ge=1, description="per-job sequence number, from 1, no gaps")
    ts: datetime
    stage: str | None = None
    level: Level = "info"
    message: str
    stream: Stream | None = Field(
        default=None,
        description="the command's pipe the line came from; null for lines Rivet or the "
        "pipeline's Lua logged",
    )
    attempt: int | None = Field(
        default=None, description="which attempt of the job logged it (set by the server)"
    )


class LogPage(BaseModel):
    job_id: str
    lines: list[LogLine]
    next_after: int = Field(description="pass as ?after= to get the following lines")
    finished: bool


def _line_fits(line: LogLine) -> LogLine:
    # Checked here, not on LogLine: answers carry LogLine too, and lines stored before
    # the cap existed must still be readable.
    if line.seq > limits.MAX_INT32:
        raise ValueError(f"seq may be at most {limits.MAX_INT32}")
    if len(line.message) > limits.MAX_LOG_MESSAGE:
        raise ValueError(f"message may have at most {limits.MAX_LOG_MESSAGE} characters")
    if line.stage is not None and len(line.stage) > limits.MAX_NAME:
        raise ValueError(f"stage may have at most {limits.MAX_NAME} characters")
    return line


class LogBatch(BaseModel):
    lines: list[Annotated[LogLine, AfterValidator(_line_fits)]] = Field(
        max_length=limits.MAX_LOG_LINES,
        description=f"at most {limits.MAX_LOG_LINES} lines, each message at most "
        f"{limits.MAX_LOG_MESSAGE} characters",
    )
