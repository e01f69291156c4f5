"""Stage markers placed among a job's stored lines by time (``rivet.cli.follow``)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from rivet.cli.follow import StoredOrder
from rivet.cli.render import LogPrinter
from rivet.cli.times import LogClock
from rivet.protocol import JobView, LogLine, StageView

T0 = datetime(2026, 3, 4, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def view(*stages: StageView, status: str = "failed") -> JobView:
    return JobView(
        id="0" * 32,
        pipeline="p",
        pipeline_id="1" * 32,
        version=1,
        status=status,
        inputs={},
        created_at=T0,
        stages=list(stages),
    )


def rendered(job: JobView, lines: list[LogLine]) -> list[str]:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    order = StoredOrder(LogPrinter(console, clock=LogClock(dated=True)), job)
    for line in lines:
        order.line(line)
    order.flush()
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return [row[24:] for row in out.splitlines()]  # after the dated time (or its blank)


def test_markers_go_between_the_lines_they_came_between() -> None:
    job = view(
        StageView(name="a", status="succeeded", started_at=at(0), finished_at=at(2), duration=2),
        StageView(name="longer-name", status="failed", started_at=at(3), finished_at=at(5)),
        StageView(name="never", status="skipped"),
    )
    lines = [
        LogLine(seq=1, ts=at(1), stage="a", message="one"),
        # the runner's clock read this line a little before the stage's start: the
        # stage's own "started" still comes first
        LogLine(seq=2, ts=at(2.9), stage="longer-name", message="two"),
        LogLine(seq=3, ts=at(6), stage=None, message="after"),
    ]
    assert rendered(job, lines) == [
        "a           -- started",
        "a           info        one",
        "a           -- succeeded in 2.00s",
        "longer-name -- started",
        "longer-name info        two",
        "longer-name -- failed",
        "never       -- skipped",
        "job         info        after",
    ]


def test_a_marker_learnt_later_is_not_printed_twice() -> None:
    running = StageView(name="a", status="running", started_at=at(0))
    order_view = view(running, status="running")
    console = Console(file=io.StringIO(), width=200, color_system=None)
    order = StoredOrder(LogPrinter(console, clock=LogClock(dated=True)), order_view)
    order.line(LogLine(seq=1, ts=at(1), stage="a", message="one"))
    done = StageView(name="a", status="succeeded", started_at=at(0), finished_at=at(2))
    order.update(view(done))
    order.update(view(done))
    order.flush()
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert [row[24:] for row in out.splitlines()] == [
        "a   -- started",
        "a   info        one",
        "a   -- succeeded",
    ]
