"""Unpacking a job's source archive (``rivet job launch --source``) into its fresh
workspace, before anything has run there.

The archive comes from whoever launched the job, so it goes through
:mod:`rivet.engine.archives`, the same safe unpacking the ``archive`` plugin uses:
every entry is checked before anything is written (absolute names, ``..``, links
pointing out, devices, FIFOs and set-id bits refused, naming the entry), entries,
total size and ratio to the archive's size capped against bombs, writes relative to
a directory descriptor that never follow a link, and what was created removed again
on failure. An error is :class:`~rivet.engine.archives.ArchiveError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from rivet.engine.archives import ArchiveLimits, extract

__all__ = ["MAX_MEMBERS", "MAX_RATIO", "unpack_source"]

MAX_MEMBERS = 100_000
MAX_RATIO = 200


def unpack_source(archive: Path, workspace: Path, max_bytes: int) -> tuple[int, int]:
    """Extract ``archive`` into ``workspace``; (files, bytes) extracted."""
    limits = ArchiveLimits(max_total_bytes=max_bytes, max_ratio=MAX_RATIO, max_entries=MAX_MEMBERS)
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with archive.open("rb") as f:
            entries = extract(f, fd, limits)
    finally:
        os.close(fd)
    files = [e for e in entries if e.kind == "file"]
    return len(files), sum(e.size for e in files)
