"""rivet.engine.archives: hostile archives are refused, naming the entry, before
anything is written; good ones unpack exactly (tar, tar.gz, tar.zst, zip)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from rivet.engine.archives import (
    ArchiveError,
    ArchiveLimits,
    detect_format,
    extract,
    list_entries,
)


def _tar(*members: tuple[tarfile.TarInfo, bytes | None], mode: str = "w") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.fixture
def dest(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "dest"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield root, fd
    finally:
        os.close(fd)


def _refused(archive: io.BytesIO, dest: tuple[Path, int], *needles: str) -> None:
    root, fd = dest
    with pytest.raises(ArchiveError) as caught:
        extract(archive, fd)
    for needle in needles:
        assert needle in str(caught.value)
    assert sorted(os.listdir(root)) == [], "nothing may be written for a refused archive"


def test_a_good_tar_unpacks_files_dirs_and_inside_links(dest: tuple[Path, int]) -> None:
    root, fd = dest
    d = tarfile.TarInfo("pkg")
    d.type = tarfile.DIRTYPE
    d.mode = 0o755
    archive = _tar(
        (d, None),
        _file("pkg/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        _file("./pkg/sub/data.txt", b"data"),
        _special("pkg/link", tarfile.SYMTYPE, "sub/data.txt"),
        _special("pkg/up", tarfile.SYMTYPE, "../pkg/run.sh"),
        _special("pkg/hard", tarfile.LNKTYPE, "pkg/run.sh"),
    )
    entries = extract(archive, fd)
    assert [e.name for e in entries] == [
        "pkg",
        "pkg/run.sh",
        "pkg/sub/data.txt",
        "pkg/link",
        "pkg/up",
        "pkg/hard",
    ]
    assert (root / "pkg/run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((root / "pkg/run.sh").stat().st_mode) == 0o755
    assert os.readlink(root / "pkg/link") == "sub/data.txt"
    assert (root / "pkg/up").read_bytes().startswith(b"#!/bin/sh")
    assert (root / "pkg/hard").stat().st_ino == (root / "pkg/run.sh").stat().st_ino
    assert not [n for n in os.listdir(root / "pkg") if n.startswith(".rivet-")]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("../evil", "'..' component"),
        ("a/../../evil", "'..' component"),
        ("/etc/evil", "absolute path"),
        ("C:/evil", "drive letter"),
        ("a\\..\\evil", "backslash"),
    ],
)
def test_escaping_names_are_refused(name: str, needle: str, dest: tuple[Path, int]) -> None:
    _refused(_tar(_file("ok.txt"), _file(name)), dest, f"entry {name!r}", needle)


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("/etc/passwd", "absolute path"),
        ("../outside", "points outside"),
        ("sub/../../x", "'..' after a name"),
    ],
)
def test_symlinks_pointing_out_are_refused(
    target: str, needle: str, dest: tuple[Path, int]
) -> None:
    _refused(_tar(_special("leak", tarfile.SYMTYPE, target)), dest, "entry 'leak'", needle)


def test_a_chain_of_inside_looking_links_cannot_escape(dest: tuple[Path, int]) -> None:
    # d/l -> .. is inside; m -> d/l/.. would be the parent of the root physically.
    archive = _tar(_special("d/l", tarfile.SYMTYPE, ".."), _special("m", tarfile.SYMTYPE, "d/l/.."))
    _refused(archive, dest, "entry 'm'", "'..' after a name")


def test_an_entry_through_an_archive_symlink_is_refused(dest: tuple[Path, int]) -> None:
    archive = _tar(_special("a", tarfile.SYMTYPE, "b"), _file("a/x"))
    _refused(archive, dest, "entry 'a/x'", "goes through 'a', a symlink")


def test_an_entry_through_a_symlink_already_in_the_destination_is_refused(
    dest: tuple[Path, int], tmp_path: Path
) -> None:
    root, fd = dest
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "a").symlink_to(outside)
    with pytest.raises(ArchiveError, match="entry 'a/x': goes through 'a', which is not a dir"):
        extract(_tar(_file("a/x", b"pwned")), fd)
    assert list(outside.iterdir()) == []


def test_hard_links_pointing_out_are_refused(dest: tuple[Path, int]) -> None:
    _refused(_tar(_special("h", tarfile.LNKTYPE, "/etc/passwd")), dest, "entry 'h'", "absolute")
    _refused(_tar(_special("h", tarfile.LNKTYPE, "../x")), dest, "'..' component")
    _refused(_tar(_special("h", tarfile.LNKTYPE, "nothere")), dest, "not a file earlier")


@pytest.mark.parametrize(
    ("kind", "what"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "fifo")],
)
def test_devices_and_fifos_are_refused(kind: bytes, what: str, dest: tuple[Path, int]) -> None:
    _refused(_tar(_special("dev/null2", kind)), dest, "entry 'dev/null2'", f"is a {what}")


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o1777])
def test_setuid_setgid_and_sticky_bits_are_refused(mode: int, dest: tuple[Path, int]) -> None:
    _refused(_tar(_file("ok"), _file("bin/su", b"x", mode)), dest, "entry 'bin/su'", "set-user-ID")


def test_a_gzip_bomb_is_refused_by_ratio(dest: tuple[Path, int]) -> None:
    archive = _tar(_file("zeros", b"\0" * (8 << 20)), mode="w:gz")
    assert len(archive.getvalue()) < 100_000
    _refused(archive, dest, "entry 'zeros'", "archive.max_ratio")


def test_the_total_size_cap(dest: tuple[Path, int]) -> None:
    root, fd = dest
    archive = _tar(_file("a", b"1" * 600), _file("b", b"2" * 600))
    with pytest.raises(ArchiveError, match=r"entry 'b': .*archive.max_total_bytes \(1000\)"):
        extract(archive, fd, ArchiveLimits(max_total_bytes=1000))
    assert os.listdir(root) == []


def test_the_entry_count_cap(dest: tuple[Path, int]) -> None:
    archive = _tar(*(_file(f"f{i}") for i in range(5)))
    with pytest.raises(ArchiveError, match=r"entry 'f3': .* more than 3 entries"):
        extract(archive, dest[1], ArchiveLimits(max_entries=3))


def test_a_file_cannot_replace_a_directory(dest: tuple[Path, int]) -> None:
    d = tarfile.TarInfo("x")
    d.type = tarfile.DIRTYPE
    _refused(_tar((d, None), _file("x")), dest, "entry 'x'", "replace a directory")


def test_a_reserve_refusal_removes_what_the_call_created(dest: tuple[Path, int]) -> None:
    root, fd = dest

    def reserve(size: int, name: str) -> None:
        if name == "d/second":
            raise ArchiveError(f"{name}: over budget")

    with pytest.raises(ArchiveError, match="over budget"):
        extract(_tar(_file("d/first"), _file("d/second")), fd, reserve=reserve)
    assert os.listdir(root) == []


def test_zip_and_zstd_archives(dest: tuple[Path, int]) -> None:
    root, fd = dest
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("z/a.txt", "alpha")
    extract(buf, fd)
    assert (root / "z/a.txt").read_text() == "alpha"

    raw = _tar(_file("zst.txt", b"zstd!"))
    packed = io.BytesIO(zstandard.ZstdCompressor().compress(raw.getvalue()))
    assert detect_format(packed.getvalue()[:512]) == "tar.zst"
    assert [e.name for e in list_entries(packed)] == ["zst.txt"]
    extract(packed, fd)
    assert (root / "zst.txt").read_bytes() == b"zstd!"


def test_zip_traversal_symlink_and_setuid_are_refused(dest: tuple[Path, int]) -> None:
    for name, attr, data, needle in [
        ("../../evil", 0o100644, b"x", "'..' component"),
        ("link", 0o120777, b"/etc/passwd", "absolute path"),
        ("suid", 0o104755, b"x", "set-user-ID"),
        ("dev", 0o020644, b"", "is a device"),
    ]:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = attr << 16
            z.writestr(info, data)
        _refused(buf, dest, f"entry {name!r}", needle)


def test_not_an_archive() -> None:
    with pytest.raises(ArchiveError, match="not a tar"):
        list_entries(io.BytesIO(b"hello world"))
