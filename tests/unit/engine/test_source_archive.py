"""Unpacking a job's source archive (rivet.engine.source_archive, through the shared
rivet.engine.archives) refuses archive tricks, naming the entry, before anything is
written; the archives module has its own, fuller tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from rivet.engine.archives import ArchiveError
from rivet.engine.source_archive import unpack_source


def archive(tmp_path: Path, *entries: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "src.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for entry in entries:
            tar.addfile(entry, io.BytesIO(data) if entry.isfile() else None)
    return path


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **fields: object
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_a_normal_archive_unpacks(tmp_path: Path) -> None:
    path = archive(tmp_path, entry("src/a.py", size=5, mode=0o755), data=b"hello")
    (tmp_path / "ws").mkdir()
    assert unpack_source(path, tmp_path / "ws", 10**6) == (1, 5)
    assert (tmp_path / "ws" / "src" / "a.py").read_bytes() == b"hello"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (entry("../escape", size=1), "../escape"),
        (entry("/etc/x", size=1), "/etc/x"),
        (entry("link", tarfile.SYMTYPE, linkname="/etc/passwd"), "link"),
        (entry("up", tarfile.SYMTYPE, linkname="../../outside"), "up"),
        (entry("hard", tarfile.LNKTYPE, linkname="/etc/shadow"), "hard"),
        (entry("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), "dev"),
        (entry("fifo", tarfile.FIFOTYPE), "fifo"),
    ],
)
def test_tricks_are_refused_naming_the_entry_and_nothing_is_written(
    tmp_path: Path, bad: tarfile.TarInfo, why: str
) -> None:
    path = archive(tmp_path, entry("first.txt", size=1), bad, data=b"x")
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(ArchiveError, match=f"entry '{why}'"):
        unpack_source(path, ws, 10**6)
    assert list(ws.iterdir()) == []  # checked before the first write
    assert not (tmp_path / "escape").exists()


def test_a_setuid_entry_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path, entry("tool", size=1, mode=0o4755), data=b"x")
    (tmp_path / "ws").mkdir()
    with pytest.raises(ArchiveError, match="entry 'tool': has the set-user-ID"):
        unpack_source(path, tmp_path / "ws", 10**6)
    assert list((tmp_path / "ws").iterdir()) == []


def test_a_decompression_bomb_is_refused_from_its_headers(tmp_path: Path) -> None:
    big = 50 * 1024 * 1024  # zeros compress about 1000:1, over the 200× ratio
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(entry("zeros", size=big), io.BytesIO(bytes(big)))
    (tmp_path / "ws").mkdir()
    with pytest.raises(ArchiveError, match="zeros"):
        unpack_source(path, tmp_path / "ws", 10**9)
    assert list((tmp_path / "ws").iterdir()) == []


def test_the_absolute_cap_applies(tmp_path: Path) -> None:
    path = archive(tmp_path, entry("a", size=1000), data=b"\x01" * 1000)
    (tmp_path / "ws").mkdir()
    with pytest.raises(ArchiveError, match="999"):
        unpack_source(path, tmp_path / "ws", 999)


def test_garbage_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ArchiveError):
        unpack_source(path, tmp_path, 10**6)
