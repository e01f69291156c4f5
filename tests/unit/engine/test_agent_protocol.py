"""The exec agent's protocol and build, without containers: the C source and the
Python side agree on every constant, the source compiles warning-free and static,
frames from the agent are refused by type, size and stream before use, and the
stream buffer gives credit back as it is read (never holding more than granted)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from rivet.engine.agent import build
from rivet.engine.agent import protocol as p
from rivet.engine.agent.streams import StreamBuffer, shown
from rivet.engine.backends.catatonit import is_static_elf
from rivet.errors import ContainerError

SOURCE = build.source_bytes().decode()


def c_define(name: str) -> str:
    match = re.search(rf"^#define {name} (.+)$", SOURCE, re.MULTILINE)
    assert match, f"#define {name} missing from rivet-agent.c"
    return match.group(1).strip()


def c_number(name: str) -> int:
    value = c_define(name).strip("()").replace("u", "")
    if "<<" in value:
        left, right = value.split("<<")
        return int(left) << int(right)
    return int(value)


@pytest.mark.parametrize(
    ("c_name", "value"),
    [
        ("AGENT_VERSION", p.VERSION),
        ("HEADER_SIZE", p.HEADER.size),
        ("MAX_REQUEST_FRAME", p.MAX_REQUEST_FRAME),
        ("MAX_DATA", p.MAX_DATA),
        ("MAX_MESSAGE", p.MAX_MESSAGE),
        ("MAX_COMMANDS", p.MAX_COMMANDS),
        ("MAX_WINDOW", p.MAX_WINDOW),
        ("T_HELLO", p.HELLO),
        ("T_START", p.START),
        ("T_CREDIT", p.CREDIT),
        ("T_KILL", p.KILL),
        ("T_PING", p.PING),
        ("T_READY", p.READY),
        ("T_DATA", p.DATA),
        ("T_EOF", p.EOF),
        ("T_EXIT", p.EXIT),
        ("T_ERROR", p.ERROR),
        ("T_PONG", p.PONG),
        ("T_FATAL", p.FATAL),
        ("STREAM_STDOUT", p.STDOUT),
        ("STREAM_STDERR", p.STDERR),
        ("EXIT_NORMAL", p.EXIT_NORMAL),
        ("EXIT_SIGNAL", p.EXIT_SIGNAL),
    ],
)
def test_c_and_python_agree(c_name: str, value: int) -> None:
    assert c_number(c_name) == value


def test_magic_and_agent_marker_agree() -> None:
    from rivet.engine.backends.podman_agent import AGENT_ID_VAR, AGENT_IN_CONTAINER

    assert c_define("AGENT_MAGIC") == f'"{p.MAGIC.decode()}"'
    assert c_define("AGENT_ID_VAR") == f'"{AGENT_ID_VAR}="'
    assert AGENT_IN_CONTAINER == "/.rivet-agent"
    assert p.WINDOW <= p.MAX_WINDOW and p.MAX_DATA <= p.WINDOW


def test_the_source_compiles_static_and_warning_free(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler; scripts/setup.sh installs gcc"
    out = tmp_path / "agent"
    src = tmp_path / "rivet-agent.c"
    src.write_bytes(build.source_bytes())
    flags = [*build.COMPILE_FLAGS, "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wformat=2"]
    proc = subprocess.run(
        [cc, *flags, "-o", str(out), str(src)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert is_static_elf(out)
    version = subprocess.run([str(out), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"rivet-agent protocol {p.VERSION}"
    usage = subprocess.run([str(out), "extra"], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "started by the Rivet runner" in usage.stderr


# -- frames from the agent are checked before use ----------------------------------------


def header(length: int, kind: int, stream: int = 0, reserved: int = 0, rid: int = 1) -> bytes:
    return p.HEADER.pack(length, kind, stream, reserved, rid)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (header(0, 7), "unknown frame type 7"),
        (header(0, p.START), "unknown frame type 2"),  # a runner → agent type
        (header(p.MAX_DATA + 1, p.DATA, p.STDOUT), "at most 65536"),
        (header(0xFFFFFFFF, p.DATA, p.STDOUT), "at most 65536"),
        (header(p.MAX_MESSAGE + 1, p.ERROR), "at most 1024"),
        (header(1, p.EOF, p.STDOUT), "at most 0"),
        (header(9, p.EXIT), "at most 8"),
        (header(1, p.DATA, 0), "with stream 0"),
        (header(1, p.DATA, 3), "with stream 3"),
        (header(0, p.EXIT, p.STDOUT), "with stream 1"),
        (header(0, p.PONG, 0, reserved=1), "reserved"),
    ],
)
def test_bad_headers_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(p.ProtocolError, match=re.escape(message)):
        p.check_header(raw)


def test_good_headers_pass() -> None:
    assert p.check_header(header(p.MAX_DATA, p.DATA, p.STDERR, rid=9)) == (
        p.MAX_DATA,
        p.DATA,
        p.STDERR,
        9,
    )
    assert p.check_header(header(0, p.PONG))[1] == p.PONG


def test_exit_and_ready_payloads_are_validated() -> None:
    exit_frame = struct.Struct(">B3xI")
    assert p.parse_exit(exit_frame.pack(p.EXIT_NORMAL, 3)) == 3
    assert p.parse_exit(exit_frame.pack(p.EXIT_SIGNAL, 9)) == 137
    for kind, value in ((p.EXIT_NORMAL, 256), (p.EXIT_SIGNAL, 0), (p.EXIT_SIGNAL, 65), (2, 0)):
        with pytest.raises(p.ProtocolError):
            p.parse_exit(exit_frame.pack(kind, value))
    ready = struct.Struct(">8sIIIII")
    good = (p.MAGIC, p.VERSION, 42, p.MAX_COMMANDS, p.MAX_REQUEST_FRAME, p.MAX_DATA)
    assert p.parse_ready(ready.pack(*good)) == 42
    with pytest.raises(p.ProtocolError, match="speaks protocol 2, this runner 1"):
        p.parse_ready(ready.pack(p.MAGIC, 2, 42, *good[3:]))
    with pytest.raises(p.ProtocolError, match="magic"):
        p.parse_ready(ready.pack(b"XXXXXXXX", *good[1:]))
    with pytest.raises(p.ProtocolError, match="limits"):
        p.parse_ready(ready.pack(*good[:3], 1, *good[4:]))


def test_start_frames_refuse_nul_and_oversize() -> None:
    frame = p.encode_start(5, ["sh", "-c", "true"], ["A=1"], "/workspace")
    length, kind, _, _, rid = p.HEADER.unpack(frame[: p.HEADER.size])
    assert (kind, rid, length) == (p.START, 5, len(frame) - p.HEADER.size)
    assert frame.endswith(b"/workspace\0sh\0-c\0true\0A=1\0")
    with pytest.raises(ContainerError, match="NUL"):
        p.encode_start(1, ["a\0b"], [], "/")
    with pytest.raises(ContainerError, match="E2BIG"):
        p.encode_start(1, ["x" * (p.MAX_REQUEST_FRAME + 1)], [], "/")


def test_untrusted_text_is_one_bounded_line() -> None:
    assert shown(b"bad\x1b[31m\nline\x00\xff") == "bad [31m line \ufffd"
    assert len(shown("x" * 1000)) == 301


# -- back-pressure -----------------------------------------------------------------------


def test_stream_buffer_gives_room_back_as_it_is_read() -> None:
    given: list[int] = []
    buf = StreamBuffer(given.append)
    half = p.WINDOW // 2
    for _ in range(4):
        assert buf.feed(b"x" * (half // 2)) == 0
    target = bytearray(half // 2)
    assert buf.readinto(target) == half // 2
    assert given == []  # a quarter window read: still held back
    assert buf.readinto(target) == half // 2
    assert given == [half]  # half a window: given back
    buf.readinto(target)
    buf.readinto(target)
    assert given == [half, half]  # ran dry: everything given back
    buf.end()
    assert buf.readinto(target) == 0


def test_a_discarded_buffer_returns_everything_and_drops_later_chunks() -> None:
    given: list[int] = []
    buf = StreamBuffer(given.append)
    buf.feed(b"abc")
    buf.feed(b"defg")
    target = bytearray(1)
    buf.readinto(target)
    assert buf.discard() == 7
    assert buf.feed(b"later") == 5
    assert buf.readinto(target) == 0


# -- build ---------------------------------------------------------------------------------


def test_build_caches_by_source_and_refuses_untrusted_files(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    found = build.locate(cache)
    assert found.problem is None and found.path is not None
    assert found.path.parent == cache and found.path.name.startswith("rivet-agent-")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(found.path.stat().st_mode) == 0o755
    assert is_static_elf(found.path)
    inode = found.path.stat().st_ino
    assert build.locate(cache).path == found.path
    assert found.path.stat().st_ino == inode  # not rebuilt
    assert [p.name for p in cache.iterdir()] == [found.path.name]  # no scratch left
    # A binary others could have changed is not used: it is rebuilt.
    os.chmod(found.path, 0o777)
    assert build.locate(cache).path == found.path
    assert found.path.stat().st_ino != inode
    assert stat.S_IMODE(found.path.stat().st_mode) == 0o755


def test_build_problems_are_reasons_not_exceptions(tmp_path: Path) -> None:
    open_cache = tmp_path / "open"
    open_cache.mkdir(mode=0o777)
    os.chmod(open_cache, 0o777)
    problem = build.locate(open_cache).problem
    assert problem is not None and "writable by others" in problem
    missing = build.locate(tmp_path / "c", compiler="/nonexistent/cc").problem
    assert missing is not None and "no C compiler (/nonexistent/cc)" in missing
    failing = build.locate(tmp_path / "d", compiler="/bin/false").problem
    assert failing is not None and "compiling the exec agent with /bin/false failed" in failing
    assert list((tmp_path / "d").iterdir()) == []
