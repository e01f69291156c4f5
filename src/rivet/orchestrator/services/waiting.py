"""Why a queued job has no runner: :func:`explain_wait`, and its pure core :func:`describe_wait`.

A job waits silently when no runner offers what its pipeline requires; this module
turns the runners the server knows into one sentence the CLI prints once while it
follows the job (``rivet job launch --follow``, ``rivet job logs --follow``) and
``rivet job show`` prints for a queued job, plus counts a program can use (a queue
timeout, the web UI). It only reads: nothing here changes a job or a runner.

What it can know, and what not:

- *online* means seen within :data:`ONLINE_WITHIN` (a polling runner checks in at
  every long-poll, which lasts at most 60 s); a removed runner never counts;
- *matching* uses the tags and plugins the server stored for each runner (the ones
  the claim matches, :mod:`rivet.jobqueue`); a runner whose runtime lacks a stored
  plugin narrows its offer at claim time, which the server does not record;
- *busy* means running at least one job: the server does not know a runner's
  concurrency, so a busy runner may still have a free slot (it then claims the job
  within its next poll, and the job stops waiting).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.engine import Connection

from rivet.protocol import JobWait, RunnerView
from rivet.store import jobs as job_store
from rivet.store import runners as runner_store
from rivet.store.portable import utcnow

__all__ = ["ONLINE_WITHIN", "describe_wait", "explain_wait"]

# Longer than the longest long-poll (60 s) plus the check-in throttle: a runner that is
# polling is never counted offline.
ONLINE_WITHIN = timedelta(seconds=90)


def explain_wait(conn: Connection, job_id: str, now: datetime | None = None) -> JobWait | None:
    """Why the job ``job_id`` (a full id) is still queued, or None when it is not queued.

    Reads the job's required tags and plugins (copied from its pipeline version at
    launch) and every runner not removed, then :func:`describe_wait`. Raises
    ``NotFoundError`` for an unknown job. Call it inside any read transaction."""
    required = job_store.queued_requirements(conn, job_id)
    if required is None:
        return None
    tags, plugins = required
    return describe_wait(tags, plugins, runner_store.list_runners(conn), now or utcnow())


def describe_wait(
    required_tags: Mapping[str, str],
    required_plugins: Sequence[str],
    runners: Sequence[RunnerView],
    now: datetime,
) -> JobWait:
    """The explanation for a job requiring ``required_tags``/``required_plugins``
    given ``runners`` (removed ones are ignored) at ``now``: pure, for tests and for
    callers that already hold the runners."""
    present = [r for r in runners if r.removed_at is None]
    online = [r for r in present if r.last_seen is not None and now - r.last_seen <= ONLINE_WITHIN]
    matching = [r for r in online if _matches(r, required_tags, required_plugins)]
    busy = [r for r in matching if r.current_jobs]
    wanted = _wanted(required_tags, required_plugins)
    reason: Literal["no_runner_online", "no_match", "all_busy", "free_runner"]
    if not online:
        reason = "no_runner_online"
        known = len(present)
        why = (
            f"no runner is online: none of the {_runners(known)} registered was seen in "
            f"the last {int(ONLINE_WITHIN.total_seconds())} s"
            if known
            else "no runner is registered; start one with 'rivet up' or 'rivet runner'"
        )
    elif not matching:
        reason = "no_match"
        why = (
            "the only online runner does not match"
            if len(online) == 1
            else f"none of the {len(online)} online runners match"
        )
    elif len(busy) == len(matching):
        reason = "all_busy"
        why = (
            "the 1 matching runner is busy"
            if len(matching) == 1
            else f"all {len(matching)} matching runners are busy"
        )
    else:
        reason = "free_runner"
        free = len(matching) - len(busy)
        why = f"{free} matching runner{' is' if free == 1 else 's are'} free and should take it"
    return JobWait(
        message=f"waiting for a runner{wanted} ({why})",
        reason=reason,
        required_tags=dict(required_tags),
        required_plugins=list(required_plugins),
        online=len(online),
        matching=len(matching),
        busy=len(busy),
    )


def _matches(runner: RunnerView, tags: Mapping[str, str], plugins: Sequence[str]) -> bool:
    # The claim's rule (rivet.jobqueue.base.Offer): every required tag and plugin offered.
    return all(runner.tags.get(k) == v for k, v in tags.items()) and set(plugins) <= set(
        runner.plugins
    )


def _wanted(tags: Mapping[str, str], plugins: Sequence[str]) -> str:
    parts = []
    if tags:
        parts.append(" with " + ", ".join(f"{k}={v}" for k, v in tags.items()))
    if plugins:
        parts.append((" and" if tags else " with") + " plugins " + ", ".join(plugins))
    return "".join(parts)


def _runners(count: int) -> str:
    return f"{count} runner" + ("" if count == 1 else "s")
