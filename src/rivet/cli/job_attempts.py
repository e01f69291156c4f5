"""How ``rivet job`` shows a job's attempts: the table of ``job show``, the headings of
``job logs`` and what ``job cancel`` says about when the cancel takes effect."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text

from rivet.cli.remote import format_ts, maybe
from rivet.cli.render import format_duration, status_text
from rivet.cli.terminal import safe
from rivet.domain.status import JobStatus
from rivet.protocol import JobView

__all__ = ["attempt_heading", "attempts_table", "cancel_message"]


def attempts_table(view: JobView, utc: bool = False) -> Table:
    """One row per attempt: runner, start, end, why it ended (and the error)."""
    table = Table(title="attempts", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("#", "runner", "started", "finished", "ended"):
        table.add_column(column, style="bold" if column == "#" else "")
    table.add_column("why", overflow="fold")
    for attempt in view.attempts:
        outcome = attempt.outcome or ("running" if view.status == "running" else "-")
        table.add_row(
            str(attempt.number),
            maybe(attempt.runner),
            format_ts(attempt.started_at, utc),
            format_ts(attempt.finished_at, utc),
            status_text(outcome),
            maybe(attempt.error),
        )
    return table


def attempt_heading(view: JobView, number: int | None) -> Text:
    """The line ``job logs`` prints before each attempt's lines when there are several."""
    found = next((a for a in view.attempts if a.number == number), None)
    text = Text(f"── attempt {number if number is not None else '?'}", style="bold")
    if found is not None:
        text.append_text(safe(f" on {found.runner or '?'}"))
        if found.outcome is not None:
            text.append(f" ({found.outcome})", style="dim")
    text.append(" ──", style="bold")
    return text


def cancel_message(view: JobView, now: datetime) -> Text:
    """What a cancel did: ended the job, or asked its runner; and if that runner is
    gone, that the job ends when its lease runs out (and when that is)."""
    line = safe(f"job {view.id}: ")
    if JobStatus(view.status).finished:
        line.append(view.status, style="yellow")
        return line
    line.append("cancel requested", style="yellow")
    expires = view.lease_expires_at
    left = (expires - now).total_seconds() if expires is not None else None
    runner = view.runner or "its runner"
    if left is not None:
        line.append_text(
            safe(
                f" ({runner} stops it and removes its containers; if {runner} is gone, the "
                f"job ends when its lease runs out at {format_ts(expires)}, in "
                f"{format_duration(max(left, 0.0))})",
                "dim",
            )
        )
    else:
        line.append(" (the runner stops it and removes its containers)", style="dim")
    return line
