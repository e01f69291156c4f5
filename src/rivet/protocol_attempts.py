"""Wire models of attempts (issue 10), re-exported by :mod:`rivet.protocol`: what a job
shows of each claim, the body of a heartbeat, and a runner's restart report. Kept
apart so that ``protocol.py`` stays within the module size rule.

Every runner job route takes ``?attempt=N`` (the assignment's ``attempt``). An attempt
the server has ended (lease expired, past its deadline, reported dead) is refused
with 409 ``attempt_ended`` naming the attempt and why; the runner then stops the job.
A heartbeat renews the attempt's lease (``JobAssignment.lease_seconds``) and may carry
a :class:`Heartbeat` body saying why the log cannot be delivered.
``POST /api/runner/restarted`` (:class:`RestartReport` → :class:`RestartAnswer`): a
runner that starts runs nothing, so every attempt still running on it ends as lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from rivet import limits

__all__ = ["AttemptOutcome", "AttemptView", "Heartbeat", "RestartAnswer", "RestartReport"]

AttemptOutcome = Literal["succeeded", "failed", "cancelled", "lost", "timed_out"]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME)]
_ErrorText = Annotated[str, StringConstraints(max_length=limits.MAX_ERROR)]


class AttemptView(BaseModel):
    """One claim of a job: who ran it, when, and why it ended (null while it runs)."""

    number: int
    runner: str | None = None
    runner_id: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    error: str | None = None


class Heartbeat(BaseModel):
    """Optional body of a heartbeat: what keeps the runner from delivering the log."""

    log_problem: _ErrorText | None = Field(
        default=None,
        description="e.g. 'log upload: HTTP 507: the server's disk is full'; null once "
        "the log goes through again",
    )


class RestartReport(BaseModel):
    """A runner starting up: the jobs whose leftovers (containers, workspaces) of an
    earlier life it removed. The server ends every attempt still running on it."""

    jobs: list[_Name] = Field(default_factory=list, max_length=10_000)


class RestartAnswer(BaseModel):
    ended: list[str] = Field(
        default_factory=list, description="jobs whose attempt the server ended as lost"
    )
