"""The signals that ask a Rivet process to stop, handled alike everywhere.

``rivet run``, the runner, ``rivet up`` and ``rivet server`` treat SIGTERM (``kill``,
systemd, a container stop) and SIGHUP (the terminal went away, an SSH session
dropped) exactly like Ctrl-C (SIGINT): each command's own first-signal behaviour,
which always ends with the job's containers removed (the server: waiting claims and
log streams ended, the application shut down). Left at their defaults, SIGTERM and
SIGHUP would kill the process at once and leave containers running (or cut off the
server's requests).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "handling_stop_signals", "signal_name"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], Any]


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; the number for a signal Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextmanager
def handling_stop_signals(handler: Handler) -> Iterator[None]:
    """``handler`` for every stop signal while the block runs, then the previous
    handlers again. Main thread only (Python delivers signals there)."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
