"""Peak memory of a block of code or of a child process, for hostile tests that must
show a cap holds: a memory assertion (bounded by a generous factor), never a timing one.

``PeakRss`` resets this process's peak-RSS counter (``/proc/self/clear_refs``, value 5)
and reads ``VmHWM`` afterwards, so it sees a spike however short; ``peak_rss_of``
reads the peak of another process (its ``VmHWM``, for a runner that keeps running).
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from types import TracebackType

MiB = 1 << 20


def _status_kib(field: str, pid: int | str = "self") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None, f"no {field} in /proc/{pid}/status"
    return int(match.group(1))


def rss_of(pid: int) -> int:
    """Bytes resident now."""
    return _status_kib("VmRSS", pid) * 1024


def peak_rss_of(pid: int) -> int:
    """The highest resident size the process ever had, in bytes."""
    return _status_kib("VmHWM", pid) * 1024


class PeakRss:
    """``with PeakRss() as peak: ...`` then ``peak.growth``: bytes by which this
    process's resident size peaked above its size when the block began."""

    def __init__(self) -> None:
        self.base = 0
        self.growth = 0

    def __enter__(self) -> PeakRss:
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # peak := current
        self.base = _status_kib("VmRSS") * 1024
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.growth = _status_kib("VmHWM") * 1024 - self.base
