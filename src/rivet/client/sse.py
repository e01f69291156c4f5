"""A minimal Server-Sent Events reader (the subset ``/api/jobs/{id}/logs/stream`` uses).

Fields ``id``, ``event``, ``data`` and ``retry`` are understood, ``:`` lines are
comments (keep-alives), a blank line dispatches the event. See the WHATWG
"event stream interpretation" rules; unknown fields are ignored as they require.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SseEvent", "parse_sse"]


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events from the decoded lines of a ``text/event-stream`` body.

    ``retry`` alone (no data) is reported as an event named ``retry`` so callers can
    honour it; an event without ``data`` is otherwise dropped.
    """
    event = ""
    data: list[str] = []
    event_id: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data), event_id)
            event, data, event_id = "", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            yield SseEvent("retry", "", None, int(value))
    if data:
        yield SseEvent(event or "message", "\n".join(data), event_id)
