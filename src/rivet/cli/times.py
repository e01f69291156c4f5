"""How the CLI shows a moment: in tables with its zone, in log lines short but never
ambiguous.

- Tables (``job list``, ``job show``, ``pipeline list``…): ``2026-12-02 10:31:07+01:00``
  in the local zone, or ``2026-12-02 09:31:07Z`` with ``--utc``: a time copied out of
  a terminal says which zone it was in.
- Log lines: ``10:31:07.482`` (``09:31:07.482Z`` with ``--utc``), preceded by the date
  (``2026-12-01 23:59:58.120``) when the log is not all of today: when it began on an
  earlier day or spans days. A printer that meets a line of another day while it
  prints starts showing dates from that line on, so a job that runs past midnight
  says so.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

__all__ = ["LogClock", "format_log_time", "format_timestamp", "spans_days"]


def _shown(ts: datetime, utc: bool) -> datetime:
    if ts.tzinfo is None:  # what the server sends carries its zone; a bare one is UTC
        ts = ts.replace(tzinfo=UTC)
    if utc:
        return ts.astimezone(UTC)
    try:
        return ts.astimezone()
    except (ValueError, OverflowError):
        # TZ names no zone Python can use (``TZ=abc999`` is a POSIX rule with a
        # 999-hour offset): show UTC, which still says its zone, not a traceback.
        return ts.astimezone(UTC)


def format_timestamp(ts: datetime | None, *, utc: bool = False) -> str:
    """``YYYY-MM-DD HH:MM:SS+HH:MM`` local, ``YYYY-MM-DD HH:MM:SSZ`` in UTC, ``-`` for None."""
    if ts is None:
        return "-"
    shown = _shown(ts, utc)
    text = shown.strftime("%Y-%m-%d %H:%M:%S")
    if utc:
        return text + "Z"
    offset = shown.strftime("%z")  # +0100
    return f"{text}{offset[:3]}:{offset[3:]}"


def format_log_time(ts: datetime, *, utc: bool = False, dated: bool = False) -> str:
    """``HH:MM:SS.mmm`` (``Z`` after it in UTC), with ``YYYY-MM-DD `` first if ``dated``."""
    shown = _shown(ts, utc)
    text = shown.strftime("%H:%M:%S.") + f"{shown.microsecond // 1000:03d}"
    if utc:
        text += "Z"
    return f"{shown:%Y-%m-%d} {text}" if dated else text


def spans_days(start: datetime | None, end: datetime | None, *, utc: bool = False) -> bool:
    """Whether a log from ``start`` to ``end`` (None: now) is not all of today, in the
    zone it is shown in: it began before today, or on another day than it ended."""
    if start is None:
        return False
    first = _shown(start, utc).date()
    last = _shown(end or datetime.now(UTC), utc).date()
    return first != last or first != _today(utc)


def _today(utc: bool) -> date:
    return _shown(datetime.now(UTC), utc).date()


class LogClock:
    """The times of one printed log: dated from the start when ``dated``, and from the
    first line of a day other than today on (never undated again, so the column keeps
    one width)."""

    def __init__(self, *, utc: bool = False, dated: bool = False) -> None:
        self.utc = utc
        self.dated = dated
        self._today = _today(utc)

    def __call__(self, ts: datetime) -> str:
        if not self.dated and _shown(ts, self.utc).date() != self._today:
            self.dated = True
        return format_log_time(ts, utc=self.utc, dated=self.dated)

    @property
    def width(self) -> int:
        """The width of a time as printed now: for a marker that has none."""
        return 12 + (1 if self.utc else 0) + (11 if self.dated else 0)
