"""The exec agent's wire protocol, runner side. ``rivet-agent.c`` defines the same
constants (``tests/unit/engine/test_agent_protocol.py`` compares the two files).

Every frame is a 12-byte header and a payload::

    u32 length | u8 type | u8 stream | u16 reserved (0) | u32 request id   (big-endian)

The runner speaks first (HELLO with :data:`VERSION`); the agent answers READY or
FATAL. Then, per command: START (argv, environment, cwd, window) → DATA and EOF per
stream (stdout 1, stderr 2) → EXIT; or ERROR when it could not start. CREDIT gives
the agent more room on one stream (it never sends more DATA than granted), KILL asks
for SIGKILL of the command's process group, PING is answered by PONG.

The agent lives in the job's trust domain, so :func:`check_header` and the client
treat what it sends as untrusted: sizes are capped per type before anything is read.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from rivet.errors import ContainerError

__all__ = [
    "DATA",
    "EOF",
    "ERROR",
    "EXIT",
    "EXIT_NORMAL",
    "EXIT_SIGNAL",
    "FATAL",
    "HEADER",
    "MAGIC",
    "MAX_COMMANDS",
    "MAX_DATA",
    "MAX_MESSAGE",
    "MAX_REQUEST_FRAME",
    "MAX_WINDOW",
    "PONG",
    "READY",
    "STDERR",
    "STDOUT",
    "VERSION",
    "WINDOW",
    "ProtocolError",
    "check_header",
    "encode_start",
    "frame",
    "hello",
    "parse_exit",
    "parse_ready",
]

VERSION = 1
MAGIC = b"RIVETAGT"
HEADER = struct.Struct(">IBBHI")

# Runner → agent.
HELLO = 1
START = 2
CREDIT = 3
KILL = 4
PING = 5
# Agent → runner.
READY = 64
DATA = 65
EOF = 66
EXIT = 67
ERROR = 68
PONG = 69
FATAL = 70

STDOUT = 1
STDERR = 2
EXIT_NORMAL = 0
EXIT_SIGNAL = 1

# The largest frame the agent accepts (a START: argv and environment, which
# process.run caps at 1 MiB) and the largest payloads it sends.
MAX_REQUEST_FRAME = 4 << 20
MAX_DATA = 65536
MAX_MESSAGE = 1024
MAX_COMMANDS = 256
MAX_WINDOW = 1 << 20
# Bytes of one stream the runner holds for a command before the agent stops reading
# the command's pipe (which then blocks the command): the back-pressure window.
WINDOW = 128 << 10

_READY = struct.Struct(">8sIIIII")
_EXIT = struct.Struct(">B3xI")
_START = struct.Struct(">III")
# Largest payload per type the runner accepts from an agent.
_MAX_PAYLOAD = {
    READY: _READY.size,
    DATA: MAX_DATA,
    EOF: 0,
    EXIT: _EXIT.size,
    ERROR: MAX_MESSAGE,
    PONG: 0,
    FATAL: MAX_MESSAGE,
}
_STREAMED = (DATA, EOF)


class ProtocolError(ContainerError):
    """The agent sent something the protocol does not allow."""


def frame(kind: int, request_id: int = 0, payload: bytes = b"", stream: int = 0) -> bytes:
    return HEADER.pack(len(payload), kind, stream, 0, request_id) + payload


def hello() -> bytes:
    return frame(HELLO, 0, MAGIC + struct.pack(">I", VERSION))


def encode_start(
    request_id: int, argv: Sequence[str], env: Sequence[str], cwd: str, window: int = WINDOW
) -> bytes:
    """A START frame; ``env`` holds ``NAME=value`` entries. Raises ContainerError for a
    NUL in any string (it would end the string in C) or a request over the agent's
    frame limit."""
    strings = [cwd, *argv, *env]
    encoded = []
    for text in strings:
        data = text.encode("utf-8", "surrogateescape")
        if b"\0" in data:
            raise ContainerError("a command's argument, environment or cwd contains a NUL byte")
        encoded.append(data)
    payload = _START.pack(window, len(argv), len(env)) + b"\0".join(encoded) + b"\0"
    if len(payload) > MAX_REQUEST_FRAME:
        raise ContainerError(
            "the command's arguments and environment are too long for the system "
            "(E2BIG); pass big data through a file in the workspace"
        )
    return frame(START, request_id, payload)


def check_header(header: bytes) -> tuple[int, int, int, int]:
    """``(length, type, stream, request id)`` of a header from the agent, once its type,
    stream and length are allowed; ProtocolError otherwise."""
    length, kind, stream, reserved, request_id = HEADER.unpack(header)
    limit = _MAX_PAYLOAD.get(kind)
    if limit is None:
        raise ProtocolError(f"unknown frame type {kind}")
    if reserved != 0:
        raise ProtocolError("reserved header bytes are not zero")
    if length > limit:
        raise ProtocolError(f"a frame of type {kind} with {length} bytes (at most {limit})")
    if (stream in (STDOUT, STDERR)) != (kind in _STREAMED):
        raise ProtocolError(f"frame type {kind} with stream {stream}")
    return length, kind, stream, request_id


def parse_ready(payload: bytes) -> int:
    """The agent's pid from a READY payload; ProtocolError for another version or
    limits other than this runner's."""
    if len(payload) != _READY.size:
        raise ProtocolError(f"a READY of {len(payload)} bytes")
    magic, version, pid, commands, request, data = _READY.unpack(payload)
    if magic != MAGIC:
        raise ProtocolError("READY without the agent's magic")
    if version != VERSION:
        raise ProtocolError(f"the agent speaks protocol {version}, this runner {VERSION}")
    if (commands, request, data) != (MAX_COMMANDS, MAX_REQUEST_FRAME, MAX_DATA):
        raise ProtocolError("the agent's limits differ from this runner's")
    return int(pid)


def parse_exit(payload: bytes) -> int:
    """An EXIT payload as an exit code: the command's code, or 128 + signal number
    when a signal ended it (what ``podman exec`` reports)."""
    if len(payload) != _EXIT.size:
        raise ProtocolError(f"an EXIT of {len(payload)} bytes")
    kind, value = _EXIT.unpack(payload)
    if kind == EXIT_NORMAL and 0 <= value <= 255:
        return int(value)
    if kind == EXIT_SIGNAL and 1 <= value <= 64:
        return 128 + int(value)
    raise ProtocolError(f"an EXIT of kind {kind} with value {value}")


def credit(request_id: int, stream: int, size: int) -> bytes:
    return frame(CREDIT, request_id, struct.pack(">I", size), stream)


def kill(request_id: int) -> bytes:
    return frame(KILL, request_id)


def ping(request_id: int = 0) -> bytes:
    return frame(PING, request_id)
