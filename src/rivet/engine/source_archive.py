"""Unpacking a job's source archive (``rivet job launch --source``) into its fresh
workspace, before anything has run there.

Safe by construction, because the archive comes from whoever launched the job:
Python's ``tarfile`` extraction filter ``"data"`` refuses absolute names, ``..``
escapes, links pointing out of the target, device files and FIFOs, and clears
set-id bits; on top of it every member is checked *before* anything is written —
at most :data:`MAX_MEMBERS` entries, their sizes together at most ``max_bytes``,
and at most :data:`MAX_RATIO` times the compressed size (a decompression bomb is
refused from its headers, not after filling the disk). An error names the entry.

Note: the plugins branch brings a general safe-extraction module for the ``archive``
plugin; once it is merged this module should call it instead of carrying its own
rules (the rules above are the same).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from rivet.errors import RivetError

__all__ = ["MAX_MEMBERS", "MAX_RATIO", "SourceArchiveError", "unpack_source"]

MAX_MEMBERS = 100_000
MAX_RATIO = 200


class SourceArchiveError(RivetError):
    """The job's source archive is refused (an unsafe entry, over a cap, unreadable)."""


def unpack_source(archive: Path, workspace: Path, max_bytes: int) -> tuple[int, int]:
    """Extract the tar.gz ``archive`` into ``workspace``; (files, bytes) extracted."""
    compressed = archive.stat().st_size
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = _checked(tar, compressed, max_bytes)
            for member in members:
                try:
                    tar.extract(member, workspace, filter="data", set_attrs=True)
                except tarfile.FilterError as exc:
                    raise SourceArchiveError(f"entry {member.name!r}: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SourceArchiveError(f"the source archive cannot be read: {exc}") from None
    files = [m for m in members if m.isfile()]
    return len(files), sum(m.size for m in files)


def _checked(tar: tarfile.TarFile, compressed: int, max_bytes: int) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    limit = min(max_bytes, max(compressed, 1) * MAX_RATIO)
    for member in tar:
        members.append(member)
        if len(members) > MAX_MEMBERS:
            raise SourceArchiveError(f"the source archive has more than {MAX_MEMBERS} entries")
        if not (member.isfile() or member.isdir() or member.issym()):
            raise SourceArchiveError(
                f"entry {member.name!r}: only files, directories and symlinks are unpacked"
            )
        if member.name.startswith("/") or ".." in member.name.split("/"):
            raise SourceArchiveError(
                f"entry {member.name!r}: absolute paths and '..' are not unpacked"
            )
        total += member.size
        if total > limit:
            raise SourceArchiveError(
                f"entry {member.name!r}: the archive unpacks to more than {limit} bytes "
                f"(at most {MAX_RATIO}× its compressed size and {max_bytes} bytes)"
            )
        try:
            tarfile.data_filter(member, str(Path("/nonexistent-rivet-check")))
        except tarfile.FilterError as exc:
            raise SourceArchiveError(f"entry {member.name!r}: {exc}") from None
    return members
